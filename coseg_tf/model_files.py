"""Model files: the segmenter and generator from any of our model files or an original checkpoint.

Inference (`coseg_tf.inference`), the exporter (`coseg_tf.export`) and the trainer's initial
weights read models through this module.

Three sources are read: a `.keras` file (the trainer's `<model_dir>/final/model.keras`, a
`CosegModel`, or a bare `SegmentationModule` such as `final/segmenter.keras`), a tf.train
checkpoint (a prefix, or a folder whose latest checkpoint is used, `<model_dir>/checkpoints/`
included) in the trainer's layout `Checkpoint(model_variables={variable.path: variable})`
(an object-graph `Checkpoint(model=CosegModel)` is read only if complete), and an original
`.pth.tar`/`.pth`/`.npz`. A run folder means its `final/model.keras` when there is one.
A config gives the frame size (and, for checkpoints and original weights, the
architecture); by default the trainer's `config.yaml` next to the model or one folder up.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import zipfile
from typing import Any

import keras
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf import weights as weights_lib
from coseg_tf.errors import CosegError
from coseg_tf.generator import ReconstructionModule
from coseg_tf.model import CosegModel, build_modules
from coseg_tf.pth_reader import ORIGINAL_SUFFIXES
from coseg_tf.segmenter import SegmentationModule

# What a model path can point to (`resolve_model_path`).
KINDS = ("keras", "checkpoint", "original", "saved_model", "tflite")


class ModelLoadError(CosegError):
    """A model path, config or checkpoint that cannot be turned into modules to export."""


@dataclasses.dataclass
class LoadedModel:
    """What the exporter needs: the config, the built modules and where they came from."""

    config: dict[str, Any]
    segmenter: SegmentationModule
    generator: ReconstructionModule | None
    source: str

    @property
    def frame_size(self) -> tuple[int, int]:
        """The config's frame size (height, width): the input size the model was built for."""
        shape = self.config["dataset_params"]["frame_shape"]
        return int(shape[0]), int(shape[1])

    @property
    def num_segments(self) -> int:
        """K, the number of parts the segmenter predicts (background not counted)."""
        return int(self.segmenter.num_segments)


def _default_config_path(model_path: str) -> str | None:
    """The trainer's `<model_dir>/config.yaml` for `<model_dir>/final/model.keras` or a checkpoint."""
    path = model_path.rstrip("/")
    here = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
    for folder in (here, os.path.dirname(here)):
        candidate = os.path.join(folder, "config.yaml")
        if folder and tf.io.gfile.exists(candidate):
            return candidate
    return None


def _read_config(model_path: str, config_path: str | None, required: bool) -> dict[str, Any] | None:
    path = config_path or _default_config_path(model_path)
    if path is None:
        if required:
            raise ModelLoadError(
                f"no config for {model_path}: pass --config (the trainer writes <model_dir>/config.yaml)"
            )
        return None
    return config_lib.load_config(path)


def _keras_without_vgg_download(path: str, workdir: str) -> str:
    """A copy of a `.keras` file whose perceptual loss builds a randomly initialised VGG19.

    A CosegModel saved with `vgg_weights: imagenet` (or a local VGG file) would otherwise
    download (or look for) VGG weights while deserialising, before the file's own weights
    (which include the VGG's) are read over them. Inference needs no VGG anyway.
    """
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        changed = _disable_vgg_download(config)
        if not changed:
            return path
        out = os.path.join(workdir, "model.keras")
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as copy:
            for item in archive.infolist():
                data = archive.read(item.filename)
                if item.filename == "config.json":
                    data = json.dumps(config).encode()
                copy.writestr(item, data)
    return out


def _disable_vgg_download(node: Any) -> bool:
    changed = False
    if isinstance(node, dict):
        if node.get("class_name") == "PerceptualLoss" and isinstance(node.get("config"), dict):
            if node["config"].get("vgg_weights") != "none":
                node["config"]["vgg_weights"] = "none"
                changed = True
        for value in node.values():
            changed |= _disable_vgg_download(value)
    elif isinstance(node, list):
        for value in node:
            changed |= _disable_vgg_download(value)
    return changed


def _check_matches_config(segmenter: SegmentationModule, config: dict[str, Any], path: str) -> None:
    expected = config_lib.segmenter_kwargs(config)
    for key in ("num_segments", "scale_factor", "estimate_affine_part"):
        if getattr(segmenter, key) != expected[key]:
            raise ModelLoadError(
                f"{path}: the model's {key} is {getattr(segmenter, key)!r} but the config says "
                f"{expected[key]!r}; pass the config the model was trained with (--config)"
            )


def _load_keras(path: str, config_path: str | None) -> LoadedModel:
    with tempfile.TemporaryDirectory() as workdir:
        try:
            model = keras.saving.load_model(_keras_without_vgg_download(path, workdir), compile=False)
        except zipfile.BadZipFile as e:  # truncated or not a .keras file at all
            raise ModelLoadError(f"{path} is not a readable .keras file ({e})") from e
    if isinstance(model, CosegModel):
        segmenter, generator = model.segmenter, model.generator
    elif isinstance(model, SegmentationModule):
        segmenter, generator = model, None
    else:
        raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a CosegModel or SegmentationModule")
    config = _read_config(path, config_path, required=False)
    if config is None:
        raise ModelLoadError(
            f"no config for {path}: the .keras file does not record the frame size; pass --config "
            "(the trainer writes <model_dir>/config.yaml next to final/)"
        )
    _check_matches_config(segmenter, config, path)
    return LoadedModel(config, segmenter, generator, f"keras:{path}")


def checkpoint_prefix(path: str) -> str | None:
    """A checkpoint prefix as given, or the latest checkpoint of a folder or of its `checkpoints/`.

    Args:
        path: a tf.train checkpoint prefix, or a folder.

    Returns:
        The prefix, or None for a folder without a checkpoint.
    """
    if not tf.io.gfile.isdir(path):
        return path
    for folder in (path, os.path.join(path, "checkpoints")):
        latest = tf.train.latest_checkpoint(folder)
        if latest:
            return latest
    return None


def _check_complete(prefix: str, modules: dict[str, keras.Model]) -> None:
    """Refuses an object-graph checkpoint (`Checkpoint(model=...)`) that lacks module weights.

    Restoring matches objects, and such a checkpoint restores "fine" while leaving the
    missing sub-layers at their random initialisation: under Keras 3, layers kept in Python
    lists (our down/up/bottleneck blocks) are not children in tf.train.Checkpoint's object
    graph, so `Checkpoint(model=CosegModel)` stores only a fraction of the weights.
    """
    keys = [name for name, _ in tf.train.list_variables(prefix)]
    for name, module in modules.items():
        stored = sum(key.startswith(f"model/{name}/") for key in keys)
        expected = len(module.weights)
        if stored < expected:
            raise ModelLoadError(
                f"checkpoint {prefix} holds {stored} of the {expected} weights of the {name}: "
                "tf.train.Checkpoint(model=...) does not reach Keras 3 layers kept in Python lists, "
                "so the rest would stay random. Export from the run's final/model.keras instead."
            )


def _restore_by_path(prefix: str, segmenter: keras.Model, generator: keras.Model) -> str | None:
    """The trainer's layout: `Checkpoint(model_variables={variable.path: variable})`.

    Returns None when every weight of both modules was restored, else why not.
    """
    variables = {v.path: v for module in (segmenter, generator) for v in module.weights}
    try:
        status = tf.train.Checkpoint(model_variables=variables).restore(prefix)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        return str(e)[:300]
    return None


def _load_checkpoint(path: str, prefix: str, config_path: str | None) -> LoadedModel:
    config = _read_config(path, config_path, required=True)
    segmenter, generator = build_modules(config)
    keys = {name for name, _ in tf.train.list_variables(prefix)}
    if any(key.startswith("model_variables/") for key in keys):
        problem = _restore_by_path(prefix, segmenter, generator)
        if problem:
            raise ModelLoadError(
                f"checkpoint {prefix} does not hold every weight of the model the config "
                f"describes (wrong --config?): {problem}"
            )
        return LoadedModel(config, segmenter, generator, f"checkpoint:{prefix}")
    # An object-graph checkpoint, Checkpoint(model=CosegModel(...), ...).
    model = CosegModel(segmenter, generator, perceptual=None, name="coseg")
    try:
        status = tf.train.Checkpoint(model=model).restore(prefix)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ModelLoadError(
            f"checkpoint {prefix} does not hold every weight of the model the config describes "
            f"(wrong --config?): {str(e)[:500]}"
        ) from None
    _check_complete(prefix, {"segmenter": segmenter, "generator": generator})
    return LoadedModel(config, segmenter, generator, f"checkpoint:{prefix}")


def _load_original(path: str, config_path: str | None) -> LoadedModel:
    config = _read_config(path, config_path, required=True)
    segmenter, generator = build_modules(config)
    report = weights_lib.load_original_weights(segmenter, generator, path)
    if report.missing:
        raise ModelLoadError(f"{path}: {report.summary()}")
    return LoadedModel(config, segmenter, generator, f"original:{path}")


def run_dir_keras(path: str, *, segmenter_alone: bool = False) -> str | None:
    """The `.keras` file that stands for a trainer run folder.

    Args:
        path: a folder.
        segmenter_alone: whether a segmenter saved on its own (`final/segmenter.keras`) may
            stand for the run when it has no final model (inference needs no generator).

    Returns:
        `final/model.keras` or `model.keras` under `path`, else the segmenter alone if
        allowed, else None.
    """
    alone = ("final/segmenter.keras",) if segmenter_alone else ()
    for candidate in ("final/model.keras", "model.keras", *alone):
        if tf.io.gfile.exists(os.path.join(path, candidate)):
            return os.path.join(path, candidate)
    return None


def saved_model_version(path: str) -> str | None:
    """The SavedModel a folder stands for.

    Args:
        path: a SavedModel folder, or a folder of numbered versions (TF Serving's layout, as
            coseg-export writes it).

    Returns:
        `path` itself, the newest version holding a `saved_model.pb`, or None for neither.
    """
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    if not tf.io.gfile.isdir(path):
        return None
    versions = [n.rstrip("/") for n in tf.io.gfile.listdir(path) if re.fullmatch(r"\d+/?", n)]
    for version in sorted(versions, key=int, reverse=True):
        candidate = os.path.join(path, version)
        if tf.io.gfile.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    return None


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """What a model path points to: `kind` (one of `KINDS`) and the `path` to read it from
    (the file, the SavedModel version folder or the checkpoint prefix)."""

    kind: str
    path: str


def resolve_model_path(path: str, *, segmenter_alone: bool = False) -> ModelFile:
    """What a model path points to: the one place that decides it, for every reader.

    Args:
        path: a `.tflite` file; a SavedModel, or a folder of numbered SavedModel versions
            (the newest is taken); a trainer run folder (its final `.keras` model, see
            `run_dir_keras`, else its latest checkpoint, `checkpoints/` included); a `.keras`
            file; an original `.pth.tar`/`.pth`/`.tar`/`.npz`; a tf.train checkpoint prefix.
        segmenter_alone: whether a segmenter saved on its own stands for a run folder.

    Returns:
        The kind of model file and where to read it.

    Raises:
        ModelLoadError: nothing is at `path`, or a folder holds no model.
    """
    path = path.rstrip("/") or path
    if not tf.io.gfile.exists(path) and not tf.io.gfile.exists(path + ".index"):
        raise ModelLoadError(f"model path not found: {path}")
    if path.endswith(".tflite"):
        return ModelFile("tflite", path)
    saved = saved_model_version(path)
    if saved is not None:
        return ModelFile("saved_model", saved)
    if tf.io.gfile.isdir(path) and (keras_path := run_dir_keras(path, segmenter_alone=segmenter_alone)):
        return ModelFile("keras", keras_path)
    if path.endswith(".keras"):
        return ModelFile("keras", path)
    if path.endswith(ORIGINAL_SUFFIXES):
        return ModelFile("original", path)
    prefix = checkpoint_prefix(path)
    if prefix is None:
        raise ModelLoadError(f"no model in {path}: no .keras file, SavedModel or tf.train checkpoint")
    return ModelFile("checkpoint", prefix)


def load_model(model_path: str, config_path: str | None = None) -> LoadedModel:
    """Reads the segmenter, and the generator when the file has one, into Keras modules.

    Args:
        model_path: a run folder, `.keras` file, checkpoint or original weights (see
            `resolve_model_path`; SavedModels and TFLite files hold no Keras modules).
        config_path: the run's config; by default the trainer's `config.yaml` beside the model
            or one folder up. Checkpoints and original weights need one.

    Returns:
        The config, the modules and where they came from.

    Raises:
        ModelLoadError: the path, its config or its weights do not make the model.
    """
    found = resolve_model_path(model_path)
    if found.kind == "keras":
        return _load_keras(found.path, config_path)
    if found.kind == "original":
        return _load_original(found.path, config_path)
    if found.kind == "checkpoint":
        return _load_checkpoint(model_path, found.path, config_path)
    what = "a SavedModel" if found.kind == "saved_model" else "a TFLite model"
    raise ModelLoadError(
        f"{found.path} is {what}, which holds no Keras modules; pass the run folder, its .keras "
        "file or a checkpoint"
    )
