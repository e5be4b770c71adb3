"""Weights of the original PyTorch implementation: state dicts onto our Keras modules.

Two checkpoint layouts are read: the paper's own (`segmentation_module`,
`reconstruction_module`) and First Order Motion Model's (`kp_detector`, `generator`), which
the paper fine-tunes from. A state-dict key is resolved on the Keras module by its path
(`predictor.encoder.down_blocks.0.conv.weight`), because our attribute names mirror the
original's; every error names the key at fault.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import keras
import numpy as np

from coseg_tf import geometry
from coseg_tf.errors import CosegError

# FOMM's names for the segmenter's heads.
_FOMM_SEGMENTER_NAMES = {"kp": "shift", "jacobian": "affine", "semantic_seg": "segmentation"}
# FOMM networks that have no counterpart here (the dense motion network is replaced by Eq. 2-4).
_FOMM_ONLY_PREFIXES = ("dense_motion_network.",)
_BATCH_NORM_PARAMS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


class WeightImportError(CosegError):
    """A state dict that does not fit the model (unknown key, wrong shape)."""


@dataclasses.dataclass
class ImportReport:
    """What a weight import did: keys loaded, keys ignored, and weights left at initialisation."""

    loaded: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line for the log: how many arrays were loaded, ignored and left at initialisation.

        Returns:
          The summary.
        """
        text = f"loaded {len(self.loaded)} arrays"
        if self.ignored:
            text += f"; ignored {len(self.ignored)} with no counterpart ({', '.join(self.ignored[:5])}...)"
        if self.missing:
            text += f"; left at initialisation: {', '.join(self.missing)}"
        return text


def _resolve(module: keras.layers.Layer, path: list[str], key: str) -> Any:
    node: Any = module
    for part in path:
        if part.isdigit() and isinstance(node, list | tuple):
            index = int(part)
            if index >= len(node):
                raise WeightImportError(
                    f"state-dict key '{key}': index {index} out of range "
                    f"(the model has {len(node)} blocks there)"
                )
            node = node[index]
        elif getattr(node, part, None) is not None:
            node = getattr(node, part)
        else:
            raise WeightImportError(
                f"state-dict key '{key}' has no counterpart in {module.name} "
                f"(no '{part}' in {type(node).__name__})"
            )
    return node


# A conv kernel's axes: PyTorch [out, in, kh, kw] -> Keras [kh, kw, in, out], and back.
_KERNEL_TO_KERAS = (2, 3, 1, 0)
_KERNEL_TO_TORCH = (3, 2, 0, 1)


def _variable_of(layer: Any, param: str, key: str) -> tuple[Any, bool]:
    """The Keras variable of a state-dict parameter and whether it is a conv kernel."""
    if isinstance(layer, keras.layers.Conv2D) and param in ("weight", "bias"):
        return (layer.kernel, True) if param == "weight" else (layer.bias, False)
    if isinstance(layer, keras.layers.BatchNormalization) and param in _BATCH_NORM_PARAMS:
        return getattr(layer, _BATCH_NORM_PARAMS[param]), False
    raise WeightImportError(
        f"state-dict key '{key}': parameter '{param}' does not fit {type(layer).__name__}"
    )


def _to_keras(layer: Any, param: str, value: np.ndarray, key: str) -> tuple[Any, np.ndarray]:
    variable, is_kernel = _variable_of(layer, param, key)
    return variable, np.transpose(value, _KERNEL_TO_KERAS) if is_kernel else value


def state_dict_variables(
    module: keras.Model, keys: list[str], *, fomm: bool = False
) -> dict[str, tuple[Any, bool]]:
    """The Keras variable behind each state-dict key, and whether it is a conv kernel.

    The inverse direction of `assign_state_dict`: with `to_torch_layout` it reads a module's
    values (or anything shaped like them, e.g. gradients) back under the original's names.

    Args:
        module: a built segmenter or generator.
        keys: state-dict keys of the original (`num_batches_tracked` and the fixed
            anti-aliasing kernel `down.weight` have no variable and are left out).
        fomm: whether the keys use First Order Motion Model's head names.

    Returns:
        {key: (variable, is_kernel)}.

    Raises:
        WeightImportError: if a key has no counterpart in the module.
    """
    out = {}
    for key in keys:
        if key.endswith("num_batches_tracked") or key == "down.weight":
            continue
        *path, param = _keras_path(key, fomm)
        out[key] = _variable_of(_resolve(module, path, key), param, key)
    return out


def to_torch_layout(value: Any, is_kernel: bool) -> np.ndarray:
    """A Keras-layout array (a variable's value or its gradient) in PyTorch's layout.

    Args:
      value: The array.
      is_kernel: Whether it is a conv kernel ([kh, kw, in, out] -> [out, in, kh, kw]); other arrays keep
        their layout.

    Returns:
      The array in PyTorch's layout.
    """
    value = np.asarray(value)
    return np.transpose(value, _KERNEL_TO_TORCH) if is_kernel else value


def _keras_path(key: str, fomm: bool) -> list[str]:
    parts = key.split(".")
    if parts[0] == "bottleneck" and re.fullmatch(r"r\d+", parts[1]):
        parts[1] = parts[1][1:]
    if fomm and parts[0] in _FOMM_SEGMENTER_NAMES:
        parts[0] = _FOMM_SEGMENTER_NAMES[parts[0]]
    return parts


def assign_state_dict(
    module: keras.Model,
    state_dict: dict[str, np.ndarray],
    *,
    fomm: bool = False,
    report: ImportReport | None = None,
) -> ImportReport:
    """Copies a PyTorch state dict onto a built module; returns what was loaded and what not.

    Args:
      module: The built Keras module (segmenter or generator).
      state_dict: PyTorch-layout arrays by state-dict key.
      fomm: Whether the keys are FOMM's (kp_detector/generator) rather than the paper's.
      report: A report to add to (e.g. the segmenter's, when loading the generator), or None for a new one.

    Returns:
      The report: loaded keys, ignored keys and variables left at initialisation.

    Raises:
      WeightImportError: The module is not built, or an array does not fit its variable's shape.
    """
    if not module.built:
        raise WeightImportError(f"{module.name} must be built (called once) before importing weights")
    report = report or ImportReport()
    assigned: set[int] = set()
    for key, value in state_dict.items():
        value = np.asarray(value)
        if key.endswith("num_batches_tracked"):
            continue
        if fomm and key.startswith(_FOMM_ONLY_PREFIXES):
            report.ignored.append(key)
            continue
        if key == "down.weight":
            _check_antialias_kernel(module, value, key)
            continue
        *path, param = _keras_path(key, fomm)
        variable, array = _to_keras(_resolve(module, path, key), param, value, key)
        if tuple(variable.shape) != array.shape:
            raise WeightImportError(
                f"state-dict key '{key}': shape {tuple(value.shape)} does not fit the "
                f"model's {tuple(variable.shape)} (after layout change); "
                "do the config's num_segments and widths match the checkpoint?"
            )
        variable.assign(array.astype(variable.dtype))
        assigned.add(id(variable))
        report.loaded.append(key)
    for variable in module.weights:
        if id(variable) not in assigned and "seed_generator" not in variable.path:
            report.missing.append(variable.path)
    return report


def _check_antialias_kernel(module: keras.Model, value: np.ndarray, key: str) -> None:
    scale = getattr(module, "scale_factor", 1)
    if scale == 1:
        raise WeightImportError(
            f"state-dict key '{key}': the checkpoint downsamples its input but the config's scale_factor is 1"
        )
    expected, _ = geometry.gaussian_kernel(scale)
    if value.shape[-2:] != expected.shape or not np.allclose(value[0, 0], expected, atol=1e-6):
        raise WeightImportError(
            f"state-dict key '{key}': anti-aliasing kernel of shape {value.shape} "
            f"does not match scale_factor {scale}"
        )


def split_checkpoint(checkpoint: dict[str, Any], path: str) -> tuple[dict, dict, bool]:
    """(segmenter state dict, generator state dict, is_fomm) of an original checkpoint object.

    Args:
      checkpoint: The checkpoint's top-level mapping.
      path: The checkpoint's path, for the message.

    Returns:
      (segmenter state dict, generator state dict, True if FOMM's layout).

    Raises:
      WeightImportError: The checkpoint has neither layout.
    """
    if "segmentation_module" in checkpoint and "reconstruction_module" in checkpoint:
        return checkpoint["segmentation_module"], checkpoint["reconstruction_module"], False
    if "kp_detector" in checkpoint and "generator" in checkpoint:
        return checkpoint["kp_detector"], checkpoint["generator"], True
    raise WeightImportError(
        f"{path}: neither the paper's layout (segmentation_module, "
        "reconstruction_module) nor FOMM's (kp_detector, generator); "
        f"top-level keys: {sorted(checkpoint)}"
    )


def read_original_checkpoint(path: str) -> dict[str, Any]:
    """Reads an original checkpoint: a `.pth.tar`/`.pth` (without PyTorch) or an `.npz`.

    An `.npz` holds `<module>/<state-dict key>` arrays, module being one of the layouts' names.

    Args:
      path: The checkpoint file.

    Returns:
      The checkpoint's top-level mapping (an `.npz` nested by module).
    """
    from coseg_tf.pth_reader import read_state_file

    state = read_state_file(path)
    if not path.endswith(".npz"):
        return state
    nested: dict[str, dict[str, np.ndarray]] = {}
    for name, value in state.items():
        module, _, key = name.partition("/")
        nested.setdefault(module, {})[key] = value
    return nested


def load_original_weights(segmenter: keras.Model, generator: keras.Model | None, path: str) -> ImportReport:
    """Loads an original checkpoint into built modules; the generator may be None (inference).

    Args:
      segmenter: The built segmenter.
      generator: The built generator, or None.
      path: The original checkpoint (`.pth.tar`, `.pth` or `.npz`).

    Returns:
      What was loaded, ignored and left at initialisation.
    """
    seg_state, gen_state, fomm = split_checkpoint(read_original_checkpoint(path), path)
    report = assign_state_dict(segmenter, seg_state, fomm=fomm)
    if generator is not None:
        assign_state_dict(generator, gen_state, fomm=fomm, report=report)
    return report
