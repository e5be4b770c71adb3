"""A small synthetic data set and a briefly trained tiny model, for the export tests and smoke runs.

Label agreement between Keras and a quantised model is only meaningful when the soft part
maps are confident: a randomly initialised segmenter outputs nearly uniform softmaxes whose
argmax flips with any rounding. The unsupervised training of the paper needs far more steps
than a test can afford, so the tiny segmenter is instead fitted *supervised* for a few
dozen steps to the part labels of synthetic "puppets" (four coloured parts moving over a
background). That gives maps as sharp as a trained model's (which is what the quantisation
checks need) while staying honest about what was trained: the segmentation head and the
hourglass, not the shift/affine heads nor the generator (both left at initialisation; the
float checks of part swap do not depend on training).
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf.data import synthetic, video_io
from coseg_tf.model import CosegModel, build_modules
from coseg_tf.testing import built_once, run_module

# The puppet's parts, in label order after the background (0).
PARTS = ("torso", "head", "left_arm", "right_arm")
_COLOURS = np.array([[0.85, 0.25, 0.2], [0.95, 0.8, 0.55], [0.2, 0.55, 0.9], [0.3, 0.8, 0.35]], np.float32)


def puppet_colours(rng: np.random.Generator) -> np.ndarray:
    """One puppet's part colours [K+1, 3] (row 0 unused: the background is a gradient)."""
    jitter = rng.uniform(-0.08, 0.08, size=(len(PARTS), 3)).astype(np.float32)
    return np.concatenate([np.zeros((1, 3), np.float32), np.clip(_COLOURS + jitter, 0, 1)])


def _box(cx: float, cy: float, half_x: float, half_y: float) -> np.ndarray:
    return np.array(
        [
            [cx - half_x, cy - half_y],
            [cx + half_x, cy - half_y],
            [cx + half_x, cy + half_y],
            [cx - half_x, cy + half_y],
        ]
    )


def render_puppet(
    size: int, rng: np.random.Generator, colours: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One frame [size, size, 3] float in [0, 1] and its labels [size, size] (0 = background).

    The four parts are convex polygons filled by the synthetic data's rasteriser, flat
    coloured: flat parts make the supervised fit quick and the part swap checks exact.
    """
    cx, cy = 0.5 + rng.uniform(-0.12, 0.12), 0.55 + rng.uniform(-0.1, 0.1)
    raise_left, raise_right = rng.uniform(-0.15, 0.15, size=2)
    angles = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
    head = np.stack([cx + 0.1 * np.cos(angles), cy - 0.3 + 0.1 * np.sin(angles)], axis=-1)
    parts = (  # label order of PARTS; a later part covers an earlier one
        _box(cx, cy, 0.12, 0.2),
        head,
        _box(cx - 0.22, cy - 0.08 + raise_left, 0.1, 0.04),
        _box(cx + 0.22, cy - 0.08 + raise_right, 0.1, 0.04),
    )
    layers = [(label, (polygon * size)[None]) for label, polygon in enumerate(parts, start=1)]
    labels = synthetic.rasterise(layers, size, num_frames=1)[0].astype(np.int32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    background = np.stack([0.2 + 0.5 * yy, 0.3 + 0.2 * xx, 0.45 - 0.2 * yy], axis=-1)
    colours = puppet_colours(rng) if colours is None else colours
    image = np.where(labels[..., None] > 0, colours[labels], background)
    image = image + rng.normal(0.0, 0.02, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32), labels


def write_dataset(root: str, size: int = 64, videos: int = 3, frames: int = 6, seed: int = 0) -> str:
    """Frame-folder videos under `root/train` and `root/test`, readable by the data pipeline."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for v in range(videos):
            colours = puppet_colours(rng)
            images = [render_puppet(size, rng, colours)[0] for _ in range(frames)]
            video = np.round(np.stack(images) * 255).astype(np.uint8)
            video_io.write_video(os.path.join(root, split, f"puppet{v}"), video, folder=True)
    return root


def tiny_config(root_dir: str | None = None) -> dict[str, Any]:
    """The packaged tiny config (64x64, K = 4), pointed at `root_dir`."""
    config = config_lib.load_config(config_lib.packaged_config_path("tiny"))
    config["dataset_params"]["root_dir"] = root_dir
    return config


def build_tiny_model(config: dict[str, Any]) -> CosegModel:
    """Segmenter + generator of `config`, built, in a CosegModel without the perceptual loss."""
    segmenter, generator = build_modules(config)
    model = CosegModel(segmenter, generator, perceptual=None, name="coseg")
    model.built = True
    return model


def fit_segmenter(segmenter: keras.Model, steps: int = 80, batch: int = 8, seed: int = 0) -> float:
    """Supervised fit of the segmentation maps to the puppet labels; returns the final pixel accuracy."""
    rng = np.random.default_rng(seed)
    size = 64
    optimizer = keras.optimizers.Adam(3e-3)
    scale = int(round(1 / segmenter.scale_factor))

    @tf.function
    def step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            seg = segmenter(images, training=True)["segmentation"]
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, tf.cast(seg, tf.float32))
            )
        # The shift/affine heads get no gradient from this loss; leave them out.
        variables = [
            v for v in segmenter.trainable_variables if "/shift/" not in v.path and "/affine/" not in v.path
        ]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    def draw() -> tuple[np.ndarray, np.ndarray]:
        pairs = [render_puppet(size, rng) for _ in range(batch)]
        images = np.stack([p[0] for p in pairs])
        labels = np.stack([p[1][::scale, ::scale] for p in pairs])
        return images, labels

    for _ in range(steps):
        step(*draw())
    images, labels = draw()
    predicted = np.argmax(segmenter(images, training=False)["segmentation"].numpy(), axis=-1)
    return float(np.mean(predicted == labels))


def fit_generator(
    segmenter: keras.Model, generator: keras.Model, steps: int = 60, batch: int = 4, seed: int = 1
) -> float:
    """L1 reconstruction of a target frame from a source frame of the same puppet (segmenter frozen).

    Only so that the part-swap outputs have contrast: an initial decoder outputs ~0.5
    everywhere, where any export error would hide. Returns the final mean |error|.
    """
    rng = np.random.default_rng(seed)
    optimizer = keras.optimizers.Adam(3e-3)

    @tf.function
    def step(source: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        seg_source = segmenter(source, training=False)
        seg_target = segmenter(target, training=False)
        with tf.GradientTape() as tape:
            out = generator(
                {"source": source, "seg_source": seg_source, "seg_target": seg_target}, training=True
            )
            loss = tf.reduce_mean(tf.abs(tf.cast(out["prediction"], tf.float32) - target))
        variables = generator.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    loss = tf.constant(np.inf)
    for _ in range(steps):
        pairs = []
        for _ in range(batch):
            colours = puppet_colours(rng)
            pairs.append((render_puppet(64, rng, colours)[0], render_puppet(64, rng, colours)[0]))
        loss = step(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    return float(loss)


_CACHE: dict[str, Any] = {}


def trained_run(base: str) -> dict[str, Any]:
    """Once per `base`: puppet data and a fitted tiny model saved as the trainer saves a run.

    Writes `<base>/data` (train/test frame folders) and `<base>/run` laid out as the
    trainer's model_dir: `config.yaml` (root_dir pointing at the data), `final/model.keras`
    (+ `final/config.yaml`) and `checkpoints/` with the trainer's variables-by-path checkpoint.
    A process that finds them written (by an earlier process on the same `base`) reads them.
    Returns the paths and the in-memory model.
    """
    key = f"run:{base}"
    if key in _CACHE:
        return _CACHE[key]
    run_dir = os.path.join(base, "run")
    keras_path = os.path.join(run_dir, "final", "model.keras")
    fit_path = os.path.join(run_dir, "fit.json")
    with built_once(fit_path) as build:
        if build:
            keras.utils.set_random_seed(0)
            root = write_dataset(os.path.join(base, "data"))
            config = tiny_config(root)
            model = build_tiny_model(config)
            fit = {"pixel_accuracy": fit_segmenter(model.segmenter)}
            fit["reconstruction_l1"] = fit_generator(model.segmenter, model.generator)
            os.makedirs(os.path.join(run_dir, "final"), exist_ok=True)
            config_lib.save_config(config, os.path.join(run_dir, "config.yaml"))
            config_lib.save_config(config, os.path.join(run_dir, "final", "config.yaml"))
            model.save(keras_path)
            from coseg_tf.checkpoints import model_variables

            # The trainer's checkpoint layout (its own function, so a format change shows here).
            tf.train.Checkpoint(model_variables=model_variables(model)).save(
                os.path.join(run_dir, "checkpoints", "ckpt")
            )
            with open(fit_path, "w") as f:
                json.dump(fit, f)
        else:
            config = config_lib.load_config(os.path.join(run_dir, "config.yaml"))
            root = config["dataset_params"]["root_dir"]
            model = build_tiny_model(config)
            model.load_weights(keras_path)
            with open(fit_path) as f:
                fit = json.load(f)
    _CACHE[key] = {
        "data": root,
        "run_dir": run_dir,
        "config_path": os.path.join(run_dir, "config.yaml"),
        "keras_path": keras_path,
        "model": model,
        "config": config,
        **fit,
    }
    return _CACHE[key]


def run_export(args: list[str]) -> Any:
    """`coseg-export ARGS` as a user runs it, in a fresh process (conversions take minutes)."""
    return run_module("coseg_tf.export.main", args, timeout=600)


def full_export(base: str) -> dict[str, Any]:
    """Once per `base`: `coseg-export` of `trained_run(base)` with every artifact at 64x64."""
    key = f"export:{base}"
    if key in _CACHE:
        return _CACHE[key]
    run = trained_run(base)
    out = os.path.join(base, "exported")
    record = os.path.join(base, "export_process.json")
    with built_once(record) as build:
        if build:
            args = ["--model", run["keras_path"], "--output_dir", out, "--tflite_size", "64"]
            result = run_export(args)
            with open(record, "w") as f:
                json.dump(
                    {
                        "args": result.args,
                        "returncode": result.returncode,
                        "stdout": result.stdout,
                        "stderr": result.stderr,
                    },
                    f,
                )
        with open(record) as f:
            result = subprocess.CompletedProcess(**json.load(f))
    _CACHE[key] = {"result": result, "output_dir": out, "run": run}
    return _CACHE[key]
