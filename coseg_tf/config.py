"""Configuration: the original YAML schema, validated, with defaults and overrides.

Configs are plain nested dicts in the schema of the original implementation
(`dataset_params`, `model_params`, `train_params`, `visualizer_params`), so a user's
existing YAML file loads unchanged. Every key is declared in `DEFAULTS`; an unknown key
is an error naming its dotted path, because a typo silently ignored costs a training run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml
from absl import logging

from coseg_tf.errors import CosegError

# The --mixed_precision choices of every command that trains (see trainer.resolve_precision).
PRECISIONS = ("auto", "off", "mixed_bfloat16", "mixed_float16")
VARIANTS = ("naive", "shift_only", "affine_only", "v_backprop", "full")

# Every key of the schema with its default. A value that is itself a dict is a section
# whose keys are validated recursively.
DEFAULTS: dict[str, Any] = {
    "dataset_params": {
        "root_dir": None,
        "frame_shape": [256, 256, 3],
        "id_sampling": False,
        "pairs_list": None,
        "augmentation_params": {
            "flip_param": {"horizontal_flip": False, "time_flip": False},
            "jitter_param": {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0},
        },
        # Seed of the 80/20 train/test split of a root without train/ and test/ folders.
        "split_seed": 0,
        # Source and target are two different frames (the original may draw the same frame twice).
        "distinct_frames": True,
        # Per-process memory for decoded videos (mp4/gif/stacked images); 0 decodes for every pair.
        "decoded_cache_mb": 1024,
    },
    "model_params": {
        # One of VARIANTS (paper Table 1(b)); None keeps the flags below as written.
        "variant": None,
        "common_params": {
            "num_segments": 10,
            "num_channels": 3,
            "estimate_affine_part": True,
            # The original synchronises batch norm across GPUs.
            "sync_batch_norm": True,
        },
        "segmentation_module_params": {
            "temperature": 0.1,
            "block_expansion": 32,
            "max_features": 1024,
            "num_blocks": 5,
            "scale_factor": 0.25,
        },
        "reconstruction_module_params": {
            "block_expansion": 64,
            "max_features": 512,
            "num_down_blocks": 2,
            "num_bottleneck_blocks": 6,
            # Kernel of the first conv, whose features are warped when num_down_blocks is 0.
            "first_kernel_size": 7,
            "estimate_visibility": True,
            # Stop the gradient through the target background in Eq. (4).
            "visibility_stop_gradient": True,
            # False: the `naive` baseline, no motion model.
            "use_motion": True,
        },
    },
    "train_params": {
        "num_epochs": 100,
        "num_repeats": 1,
        "epoch_milestones": [],
        "lr_segmentation": 2.0e-4,
        "lr_reconstruction": 2.0e-4,
        "adam_betas": [0.5, 0.999],
        "batch_size": 20,
        "scales": [1, 0.5, 0.25, 0.125],
        "checkpoint_freq": 50,
        # "imagenet" (keras.applications download), a path to a weights file, or "none".
        "vgg_weights": "imagenet",
        "transform_params": {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5},
        "loss_weights": {"equivariance": 10.0, "perceptual": [10.0, 10.0, 10.0, 10.0, 10.0]},
        # Training stops after this many consecutive steps with a non-finite loss or gradient
        # (each is skipped: no update applied).
        "max_nonfinite_steps": 20,
        # Stage 1 of two: the segmenter trains at `factor` x lr_segmentation for the first
        # `epochs` epochs (the milestones still apply); then both optimisers restart (Adam's
        # moments and step counts zeroed), as a new run from the warm-up's weights: the
        # paper's start from a pretrained keypoint detector. A fast-learning segmenter from
        # scratch gives one channel every foreground pixel before the parts' motions differ,
        # and the other channels die; keeping Adam's state across the switch lost more of them
        # (synthetic, one run each: foreground NMI 0.062 against 0.251 with the restart).
        "segmentation_warmup": {"epochs": 0, "factor": 1.0},
    },
    "visualizer_params": {"kp_size": 5, "draw_border": True, "colormap": "gist_rainbow"},
}

# Keys of the original schema that nothing in coseg-tf reads: accepted so that the original's
# YAML files load, and named in a warning when set to anything but their default.
UNREAD: dict[str, str] = {
    "dataset_params.pairs_list": "a list of fixed source/driving video pairs; no coseg-tf command reads one",
    "visualizer_params.draw_border": "training images are drawn without part borders",
    "visualizer_params.colormap": "training images use coseg-tf's own part colours",
}

# Other spellings of the same key, as found in the original's YAML files and trainer.
ALIASES: dict[str, str] = {
    "train_params.lr_segmentation_module": "train_params.lr_segmentation",
    "train_params.lr_reconstruction_module": "train_params.lr_reconstruction",
    "dataset_params.image_shape": "dataset_params.frame_shape",
}

# Keys that the original configs place in `common_params` but that belong to one module.
_SEGMENTER_KEYS = ("num_segments", "num_channels", "estimate_affine_part", "sync_batch_norm")
_GENERATOR_KEYS = ("num_segments", "num_channels", "sync_batch_norm")

_VARIANT_FLAGS = {
    "naive": dict(
        estimate_affine_part=False, estimate_visibility=False, visibility_stop_gradient=True, use_motion=False
    ),
    "shift_only": dict(
        estimate_affine_part=False, estimate_visibility=False, visibility_stop_gradient=True, use_motion=True
    ),
    "affine_only": dict(
        estimate_affine_part=True, estimate_visibility=False, visibility_stop_gradient=True, use_motion=True
    ),
    "v_backprop": dict(
        estimate_affine_part=True, estimate_visibility=True, visibility_stop_gradient=False, use_motion=True
    ),
    "full": dict(
        estimate_affine_part=True, estimate_visibility=True, visibility_stop_gradient=True, use_motion=True
    ),
}


class ConfigError(CosegError):
    """A config file or override that does not fit the schema."""


class OverrideError(ConfigError):
    """A `section.key=value` override (`--set`) that does not fit: named as given, not by file."""


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        dotted = f"{path}.{key}" if path else str(key)
        dotted = ALIASES.get(dotted, dotted)
        key = dotted.rsplit(".", 1)[-1]
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"unknown config key '{dotted}' (known here: {known})")
        if isinstance(defaults[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{dotted}' must be a mapping, got {value!r}")
            out[key] = _merge(defaults[key], value, dotted)
        else:
            out[key] = value
    return out


def _validate(config: dict[str, Any]) -> None:
    model = config["model_params"]
    variant = model["variant"]
    if variant is not None and variant not in VARIANTS:
        raise ConfigError(f"model_params.variant must be one of {VARIANTS}, got {variant!r}")
    k = model["common_params"]["num_segments"]
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"model_params.common_params.num_segments must be a positive int, got {k!r}")
    shape = config["dataset_params"]["frame_shape"]
    if len(shape) != 3 or shape[2] != 3:
        raise ConfigError(f"dataset_params.frame_shape must be [height, width, 3], got {shape!r}")
    warmup = config["train_params"]["segmentation_warmup"]
    if not (isinstance(warmup["epochs"], int) and warmup["epochs"] >= 0 and float(warmup["factor"]) > 0):
        raise ConfigError(
            f"train_params.segmentation_warmup needs epochs >= 0 (an int) and factor > 0, got {warmup!r}"
        )
    n_perceptual = len(config["train_params"]["loss_weights"]["perceptual"])
    if n_perceptual != 5:
        raise ConfigError(
            "train_params.loss_weights.perceptual needs 5 weights "
            f"(VGG19 relu1_1..relu5_1), got {n_perceptual}"
        )


def build_config(
    given: Mapping[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validates `given` against the schema, fills defaults and applies `key=value` overrides."""
    config = _merge(DEFAULTS, given or {}, "")
    for override in overrides:
        try:
            config = _merge(DEFAULTS, _override_to_dict(config, override), "")
        except OverrideError:
            raise
        except ConfigError as e:
            raise OverrideError(f"override {override!r}: {e}") from None
    try:
        _validate(config)
    except ConfigError as e:
        if not overrides:
            raise
        raise ConfigError(f"{e} (after the overrides {list(overrides)})") from None
    for dotted, why in UNREAD.items():
        section, key = dotted.split(".")
        if config[section][key] != DEFAULTS[section][key]:
            logging.warning("config key '%s' is set but not used: %s", dotted, why)
    return config


def load_config(path: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Reads a YAML config (any `tf.io.gfile` path) and returns the validated config."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with tf.io.gfile.GFile(path, "r") as f:
        given = yaml.safe_load(f) or {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    try:
        return build_config(given, overrides)
    except OverrideError:
        raise
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def save_config(config: Mapping[str, Any], path: str) -> None:
    """Writes the resolved config as YAML, so that a run can be reproduced from its logs."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "w") as f:
        yaml.safe_dump(dict(config), f, sort_keys=False)


# Keys a resumed run may change: where the data is and how long and how verbosely to train.
# Any other difference from a run's saved config.yaml describes another run.
RESUMABLE_KEYS = (
    "dataset_params.root_dir",
    "dataset_params.decoded_cache_mb",
    "train_params.num_epochs",
    "train_params.checkpoint_freq",
    "train_params.max_nonfinite_steps",
    "visualizer_params.kp_size",
)


def _flatten(config: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def run_config_differences(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ between a run's saved config and a requested one.

    A key missing from `saved` (a config written before the key existed) counts at its
    default. Keys in `RESUMABLE_KEYS` are not compared.

    Args:
      saved: The config read from a run's `config.yaml`.
      requested: The config of the command that would resume the run.

    Returns:
      One `key: saved -> requested` entry per differing key, sorted by key.
    """
    defaults = _flatten(DEFAULTS)
    old, new = _flatten(saved), _flatten(requested)
    differences = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_KEYS:
            continue
        before, after = old.get(key, defaults.get(key)), new.get(key, defaults.get(key))
        if before != after:
            differences.append(f"{key}: {before!r} -> {after!r}")
    return differences


def _override_to_dict(config: Mapping[str, Any], override: str) -> dict[str, Any]:
    if "=" not in override:
        raise OverrideError(f"override {override!r} is not of the form section.key=value")
    dotted, raw = override.split("=", 1)
    out = copy.deepcopy(dict(config))
    node = out
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise OverrideError(f"override {override!r}: '{part}' is not a config section")
        node = node[part]
    node[parts[-1]] = yaml.safe_load(raw)
    return out


def _module_kwargs(config: Mapping[str, Any], section: str, common_keys: tuple[str, ...]) -> dict[str, Any]:
    """A module's constructor arguments: its common keys, its own section, its variant flags."""
    model = config["model_params"]
    kwargs = {key: model["common_params"][key] for key in common_keys}
    kwargs.update(model[section])
    if model["variant"] is not None:
        kwargs.update({k: v for k, v in _VARIANT_FLAGS[model["variant"]].items() if k in kwargs})
    return kwargs


def segmenter_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of `SegmentationModule` from a config, variant applied."""
    return _module_kwargs(config, "segmentation_module_params", _SEGMENTER_KEYS)


def generator_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of `ReconstructionModule` from a config, variant applied."""
    return _module_kwargs(config, "reconstruction_module_params", _GENERATOR_KEYS)


def packaged_config_path(name: str) -> str:
    """Path of a config shipped with the package, e.g. `synthetic` or `vox-256-sem-10segments`."""
    import importlib.resources

    folder = importlib.resources.files("coseg_tf.configs")
    path = folder / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise FileNotFoundError(f"no packaged config named {name!r}; available: {available}")
    return str(path)
