"""Checkpoints of a training run: what they hold, resuming, initial and final weights.

A run's checkpoints are `tf.train.Checkpoint(model_variables={variable.path: variable}, ...)`
under `<model_dir>/checkpoints/`, written by the trainer's `tf.train.CheckpointManager`; its
end result is `<model_dir>/final/` (`save_final`). `check_run_dir` and `model_mismatch` keep a
run from resuming, or starting from, another model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from coseg_tf import config as config_lib
from coseg_tf import model_files
from coseg_tf.errors import CosegError
from coseg_tf.model import CosegModel
from coseg_tf.weights import load_original_weights


class RunMismatchError(CosegError):
    """A model directory or checkpoint that holds another run or another model than requested."""


def model_variables(model: keras.Model) -> dict[str, Any]:
    """Every variable of the model keyed by its Keras path, for `tf.train.Checkpoint`.

    Checkpointing the model object itself is not enough: tf.train.Checkpoint does not follow
    Keras 3 layers kept in Python lists (the blocks of the hourglass and of the generator),
    so their batch-norm statistics would silently be left out.

    Args:
        model: a built model.

    Returns:
        {variable.path: variable} over all of `model.weights`.

    Raises:
        ValueError: two variables share a path.
    """
    variables: dict[str, Any] = {}
    for variable in model.weights:
        if variable.path in variables:
            raise ValueError(f"two model variables share the path {variable.path!r}")
        variables[variable.path] = variable
    return variables


def _checkpoint_key(variable_path: str) -> str:
    """The key of a `model_variables` entry in a checkpoint (tf.train escapes '.' and '/')."""
    escaped = variable_path.replace(".", "..").replace("/", ".S")
    return f"model_variables/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"


def model_mismatch(path: str, variables: Mapping[str, Any]) -> str | None:
    """How a readable checkpoint's model differs from `variables` (None: it is the same model).

    Args:
      path: A checkpoint prefix whose index reads.
      variables: The model's variables keyed by Keras path, as `model_variables` gives.

    Returns:
      The first variable the checkpoint lacks or holds with another shape, described, or None.

    Raises:
      tf.errors.OpError: If the checkpoint's index cannot be read (a damaged checkpoint).
    """
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    for name, variable in variables.items():
        saved = shapes.get(_checkpoint_key(name))
        if saved is None:
            return f"it has no variable {name}"
        if list(saved) != list(variable.shape):
            return f"its {name} has shape {list(saved)}, the model's {list(variable.shape)}"
    return None


def restore_newest_readable(
    checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager
) -> str | None:
    """Restores the newest checkpoint that reads back completely; older ones are fallbacks.

    TensorFlow writes a checkpoint's files first and its index (`checkpoint`) last, so a
    crash while writing leaves the previous checkpoint as the latest. A newest checkpoint
    that is damaged anyway (a truncated or overwritten file) is skipped with a warning. A
    checkpoint that reads but holds another model (other variables or shapes) is no damage:
    falling back would silently start the run afresh over it.

    Args:
      checkpoint: The objects to restore; its `model_variables` are compared first.
      manager: The manager of the run's checkpoints.

    Returns:
      The restored checkpoint's path, or None if none reads back.

    Raises:
      RunMismatchError: If a checkpoint holds a different model.
    """
    variables = getattr(checkpoint, "model_variables", {})
    for path in reversed(manager.checkpoints):
        try:
            mismatch = model_mismatch(path, variables)
        except tf.errors.OpError:
            mismatch = None  # damaged: the restore below says how and falls back
        if mismatch:
            raise RunMismatchError(
                f"checkpoint {path} holds a different model ({mismatch}): train into another "
                "--model_dir, or resume with the run's own config"
            )
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError, OSError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            logging.warning("checkpoint %s is unreadable (%s); trying the previous one", path, first_line)
            continue
        return path
    return None


def load_initial_weights(model: CosegModel, path: str) -> str:
    """Loads the weights a run starts from (`--init_weights`).

    Args:
        model: the built model to load into.
        path: what `model_files.resolve_model_path` reads: original weights (`.pth.tar`,
            `.pth`, `.npz`), a run folder or its `final/` folder, a `.keras` file, or a
            checkpoint (a prefix, or a folder of checkpoints).

    Returns:
        What was loaded, for the log.

    Raises:
        FileNotFoundError: nothing at `path`.
        RunMismatchError: `path` holds another model (other variables or shapes).
        ModelLoadError: `path` holds no weights to train on (a SavedModel, a TFLite model,
            a segmenter saved alone).
    """
    try:
        found = model_files.resolve_model_path(path)
    except model_files.ModelLoadError as e:
        raise FileNotFoundError(f"--init_weights {path}: not found ({e})") from None
    if found.kind == "original":
        report = load_original_weights(model.segmenter, model.generator, found.path)
        return f"original weights {found.path}: {report.summary()}"
    if found.kind == "keras":
        return _load_keras_weights(model, found.path)
    if found.kind == "checkpoint":
        variables = model_variables(model)
        mismatch = model_mismatch(found.path, variables)
        if mismatch:
            raise RunMismatchError(f"--init_weights {found.path} holds a different model ({mismatch})")
        status = tf.train.Checkpoint(model_variables=variables).restore(found.path).expect_partial()
        status.assert_existing_objects_matched()
        return f"model weights from checkpoint {found.path}"
    raise model_files.ModelLoadError(
        f"--init_weights {found.path} is an exported model ({found.kind}); pass the run, its final "
        "model or a checkpoint"
    )


def _load_keras_weights(model: CosegModel, keras_path: str) -> str:
    """The modules' weights from a `.keras` model: its `.weights.h5` twins when `save_final`
    wrote them beside it (no deserialisation), else the model file itself."""
    folder = os.path.dirname(keras_path)
    pair = [os.path.join(folder, f"{name}.weights.h5") for name in ("segmenter", "generator")]
    try:
        if all(tf.io.gfile.exists(p) for p in pair):
            model.segmenter.load_weights(pair[0])
            model.generator.load_weights(pair[1])
            return f"final weights from {folder}"
        loaded = model_files.load_model(keras_path)
        if loaded.generator is None:
            raise model_files.ModelLoadError(
                f"--init_weights {keras_path} holds the segmenter alone; training needs the generator too"
            )
        model.segmenter.set_weights(loaded.segmenter.get_weights())
        model.generator.set_weights(loaded.generator.get_weights())
    except model_files.ModelLoadError:
        raise
    except ValueError as e:  # Keras names the layer whose weights do not fit
        raise RunMismatchError(f"--init_weights {folder} holds a different model: {e}") from None
    return f"model weights from {keras_path}"


def save_final(model: CosegModel, config: Mapping[str, Any], directory: str) -> str:
    """The trained modules where the export step looks: `<model_dir>/final/`.

    Args:
        model: the trained model.
        config: the run's config, saved beside it.
        directory: usually `<model_dir>/final`; created.

    Returns:
        `directory`, now holding `segmenter.keras` (the inference network alone, loadable with
        keras.models.load_model), `model.keras` (everything, losses included), both modules'
        `.weights.h5` and `config.yaml`.
    """
    tf.io.gfile.makedirs(directory)
    model.segmenter.save(f"{directory}/segmenter.keras")
    model.save(f"{directory}/model.keras")
    model.segmenter.save_weights(f"{directory}/segmenter.weights.h5")
    model.generator.save_weights(f"{directory}/generator.weights.h5")
    config_lib.save_config(config, f"{directory}/config.yaml")
    return directory


def check_run_dir(model_dir: str, config: Mapping[str, Any]) -> None:
    """Refuses to resume a run directory whose saved config describes another run.

    Resuming with another config would restore nothing (other shapes) or train the old
    weights under new settings, and overwrite the run's checkpoints and `config.yaml`.

    Args:
      model_dir: The run directory (`config.yaml` in it, if a run was started there).
      config: The config the command would train with.

    Raises:
      RunMismatchError: If `<model_dir>/config.yaml` differs from `config` in a key that is
        not in `config.RESUMABLE_KEYS` (the message names every such key), or is not a
        YAML mapping.
    """
    path = f"{model_dir.rstrip('/')}/config.yaml"
    try:
        saved = config_lib.read_yaml_mapping(path)
    except FileNotFoundError:
        return  # no run started there yet
    except config_lib.ConfigError as e:
        raise RunMismatchError(f"{e}; is {model_dir} a run?") from None
    differences = config_lib.run_config_differences(saved, config)
    if differences:
        raise RunMismatchError(
            f"{model_dir} holds a run with another config ({path}); differing keys: "
            f"{'; '.join(differences)}. Use another --model_dir, or the run's own config to resume it"
        )


__all__ = [
    "RunMismatchError",
    "check_run_dir",
    "load_initial_weights",
    "model_mismatch",
    "model_variables",
    "restore_newest_readable",
    "save_final",
]
