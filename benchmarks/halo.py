"""Boundary halo diagnosis: does the objective or the optimisation put the 1-px halo there?

The quality benchmark finds `full` marking a ring of background around the figure as
foreground. For each trained run, on frame pairs of the held-out synthetic videos, this
measures:

- soft foreground (the sum of the K part channels) on the true mask's outer ring (background
  pixels 4-adjacent to it), its inner ring, and the background further out;
- the reconstruction losses (the config's perceptual loss, and L1) with the predicted
  segmentations, and with the outer ring set to background in the target, the source and
  both: if the cleaned maps reconstruct better, the objective does not want the halo;
- the gradient of the perceptual loss w.r.t. each outer-ring pixel's background log-odds, in
  the target (it reaches the target maps through the flow, Eq. 3) and in the source (through
  the visibility, Eq. 4): its mean, the share of pixels where it favours background, and the
  share where it is zero. A local gradient can disagree with the cleaning's loss change: the
  bilinear sampler only sees the source's pixels next to where the flow points.

With `vgg_weights: none` the perceptual loss is a random VGG19 drawn from `--seed`, not the
one of training (it is not saved); L1 does not depend on it.

    python benchmarks/halo.py --data_dir=runs/quality_paper/data \\
        --runs=full=runs/quality_paper/full/model,full_k1=runs/quality_paper/full_k1/model

Prints a table and writes it as `--output` (JSON) and beside it as Markdown (`.md`).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
from absl import app, flags, logging

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """The flags, defined when run as a script (the tests import the functions)."""
    flags.DEFINE_list("runs", [], "Runs as name=model_dir (a coseg-train --model_dir, with final/).")
    flags.DEFINE_string("data_dir", None, "Synthetic data root (with ground_truth/ and a video layout).")
    flags.DEFINE_string("layout", "png", "Video folder under --data_dir.")
    flags.DEFINE_integer("pairs_per_video", 8, "Random (source, target) frame pairs per test video.")
    flags.DEFINE_integer("seed", 0, "Seed of the pairs and of a random perceptual VGG.")
    flags.DEFINE_string(
        "output", "benchmarks/results/halo.json", "JSON report path; the table goes beside it (.md)."
    )


CLEANINGS = ("predicted", "clean_target", "clean_source", "clean_both")


def rings(masks: np.ndarray) -> dict[str, np.ndarray]:
    """Outer ring (background 4-adjacent to the mask), inner ring (mask 4-adjacent to
    background; the frame edge counts as background) and far background, of masks [N, H, W]."""
    masks = np.asarray(masks, bool)
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
    neighbours = [padded[:, 1:-1, :-2], padded[:, 1:-1, 2:], padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]]
    touches_fg = np.any(neighbours, axis=0)
    all_fg = np.all(neighbours, axis=0)
    outer = ~masks & touches_fg
    return {"outer": outer, "inner": masks & ~all_fg, "far": ~masks & ~outer}


def held_out_pairs(data_dir: str, layout: str, per_video: int, seed: int):
    """Yields (source frames, target frames, source masks, target masks) per held-out video."""
    from coseg_tf import fileio
    from coseg_tf.data import video_io

    info = json.loads(fileio.read_bytes(fileio.join(data_dir, "ground_truth", "info.json")))
    size = int(info["size"])
    rng = np.random.default_rng(seed)
    videos = video_io.list_videos(fileio.join(data_dir, layout, "test"))
    if not videos:
        raise app.UsageError(f"no test videos under {data_dir}/{layout}/test")
    for source in videos:
        frames = video_io.load_frames(source, (size, size)).astype(np.float32) / 255.0
        gt_path = fileio.join(data_dir, "ground_truth", "test", f"{source.name}.npz")
        with np.load(io.BytesIO(fileio.read_bytes(gt_path))) as gt:
            masks = gt["mask"]
        pairs = np.stack([rng.choice(len(frames), 2, replace=False) for _ in range(per_video)])
        yield frames[pairs[:, 0]], frames[pairs[:, 1]], masks[pairs[:, 0]], masks[pairs[:, 1]]


def load_model(model_dir: str, seed: int):
    """The training model of a run (config from model_dir), with its final weights."""
    import keras

    from coseg_tf import config as config_lib
    from coseg_tf import model as model_lib
    from coseg_tf.checkpoints import load_initial_weights

    config = config_lib.load_config(os.path.join(model_dir, "config.yaml"))
    keras.utils.set_random_seed(seed)  # a random perceptual VGG (vgg_weights: none) is this seed's
    model = model_lib.build_model(config, seed=seed)
    load_initial_weights(model, os.path.join(model_dir, "final"))
    return model


def _cleaned(seg: dict[str, Any], ring: np.ndarray) -> dict[str, Any]:
    """The segmenter's dict with the ring's pixels set to background (one-hot channel 0)."""
    import tensorflow as tf

    segmentation = seg["segmentation"]
    background = tf.one_hot(tf.zeros(ring.shape, tf.int32), segmentation.shape[-1])
    return dict(seg, segmentation=tf.where(ring[..., None], background, segmentation))


def _tilted(segmentation, log_odds):
    """softmax(log Y + e * [1, 0, ..., 0]): Y itself at e = 0, more background for e > 0."""
    import tensorflow as tf

    bump = tf.pad(log_odds[..., None], [[0, 0], [0, 0], [0, 0], [0, segmentation.shape[-1] - 1]])
    return tf.nn.softmax(tf.math.log(segmentation + 1e-8) + bump, axis=-1)


def _gradient_summary(gradient: np.ndarray) -> dict[str, float]:
    """d loss / d background log-odds over ring pixels: negative means more background helps."""
    return {
        "mean": float(gradient.mean()),
        "favours_background": float((gradient < 0).mean()),
        "zero": float((gradient == 0).mean()),
    }


def diagnose(model, batches) -> dict[str, Any]:
    """The ring profile, the losses per cleaning and the outer-ring gradient of one run."""
    import tensorflow as tf

    soft = {"outer": [], "inner": [], "far": []}
    losses = {name: {"perceptual": [], "l1": []} for name in CLEANINGS}
    gradients = {"source": [], "target": []}
    num_pairs = 0
    for source, target, source_masks, target_masks in batches:
        num_pairs += len(source)
        seg_source = model.segmenter(source, training=False)
        seg_target = model.segmenter(target, training=False)
        ring_source = rings(source_masks)
        ring_target = rings(target_masks)
        foreground = seg_target["segmentation"][..., 1:].numpy().sum(-1)
        for where in soft:
            soft[where].append(foreground[ring_target[where]])
        clean_source = _cleaned(seg_source, ring_source["outer"])
        clean_target = _cleaned(seg_target, ring_target["outer"])
        cleaned = {
            "predicted": (seg_source, seg_target),
            "clean_target": (seg_source, clean_target),
            "clean_source": (clean_source, seg_target),
            "clean_both": (clean_source, clean_target),
        }
        for name, (a, b) in cleaned.items():
            out = model.generator({"source": source, "seg_source": a, "seg_target": b}, training=False)
            losses[name]["perceptual"].append(float(model.perceptual(out["prediction"], target)))
            losses[name]["l1"].append(float(tf.reduce_mean(tf.abs(out["prediction"] - target))))
        log_odds = {"source": tf.zeros(source.shape[:3]), "target": tf.zeros(target.shape[:3])}
        with tf.GradientTape() as tape:
            tape.watch(log_odds)
            inputs = {
                "source": source,
                "seg_source": dict(
                    seg_source, segmentation=_tilted(seg_source["segmentation"], log_odds["source"])
                ),
                "seg_target": dict(
                    seg_target, segmentation=_tilted(seg_target["segmentation"], log_odds["target"])
                ),
            }
            loss = model.perceptual(model.generator(inputs, training=False)["prediction"], target)
        grads = tape.gradient(loss, log_odds, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        gradients["source"].append(grads["source"].numpy()[ring_source["outer"]])
        gradients["target"].append(grads["target"].numpy()[ring_target["outer"]])
    return {
        "soft_foreground": {where: float(np.concatenate(v).mean()) for where, v in soft.items()},
        "outer_ring_predicted_fg": float((np.concatenate(soft["outer"]) > 0.5).mean()),
        "losses": {name: {k: float(np.mean(v)) for k, v in terms.items()} for name, terms in losses.items()},
        "outer_ring_gradient": {
            frame: _gradient_summary(np.concatenate(g)) for frame, g in gradients.items()
        },
        "num_pairs": num_pairs,
    }


def table(reports: dict[str, dict[str, Any]]) -> str:
    """One row per run: ring profile, losses relative to the predicted maps, gradient."""
    lines = [
        "| run | soft fg outer / inner / far | outer > 0.5 | perceptual: predicted | target clean | "
        "source clean | both clean | L1 both clean vs predicted | ring grad favours bg: target / source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in reports.items():
        soft, losses, grad = r["soft_foreground"], r["losses"], r["outer_ring_gradient"]
        base = losses["predicted"]["perceptual"]
        relative = [
            f"{losses[c]['perceptual']:.3f} ({losses[c]['perceptual'] / base - 1:+.1%})"
            for c in CLEANINGS[1:]
        ]
        l1 = losses["clean_both"]["l1"] / losses["predicted"]["l1"] - 1
        lines.append(
            f"| `{name}` | {soft['outer']:.3f} / {soft['inner']:.3f} / {soft['far']:.4f} | "
            f"{r['outer_ring_predicted_fg']:.3f} | {base:.3f} | {' | '.join(relative)} | {l1:+.1%} | "
            f"{grad['target']['favours_background']:.2f} / {grad['source']['favours_background']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.runs or not FLAGS.data_dir:
        raise app.UsageError("give --runs=name=model_dir,... and --data_dir")
    from coseg_tf import fileio

    info = fileio.join(FLAGS.data_dir, "ground_truth", "info.json")
    if not fileio.exists(info):
        raise app.UsageError(f"--data_dir {FLAGS.data_dir} is not a synthetic set: {info} not found")
    runs = {}  # every entry checked before the minutes of work on the first
    for entry in FLAGS.runs:
        name, _, model_dir = entry.partition("=")
        if not name or not fileio.isdir(fileio.join(model_dir, "final")):
            raise app.UsageError(f"--runs entry {entry!r}: expected name=model_dir with a final/ folder")
        runs[name] = model_dir
    reports = {}
    for name, model_dir in runs.items():
        logging.info("diagnosing %s (%s)", name, model_dir)
        model = load_model(model_dir, FLAGS.seed)
        batches = held_out_pairs(FLAGS.data_dir, FLAGS.layout, FLAGS.pairs_per_video, FLAGS.seed)
        reports[name] = {"model_dir": model_dir, **diagnose(model, batches)}
    text = table(reports)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    settings = {k: FLAGS[k].value for k in ("data_dir", "layout", "pairs_per_video", "seed")}
    with open(FLAGS.output, "w") as f:
        json.dump({"settings": settings, "runs": reports}, f, indent=1)
    with open(os.path.splitext(FLAGS.output)[0] + ".md", "w") as f:
        f.write(f"Written by benchmarks/halo.py with {settings}.\n\n{text}\n")
    print(f"wrote {FLAGS.output} and its .md table")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
