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

from coseg_tf import fileio
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
        # False: the two frame indices are drawn with replacement and sorted, as the original
        # (a pair may be one frame twice). True: always two different frames.
        "distinct_frames": False,
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
        # The perceptual VGG19 (losses.PerceptualLoss): "torchvision" (the original's, with its
        # input convention; a local `.pth`/`.npz` of it), "imagenet" (Keras' Caffe-converted
        # one; a local `.h5`), or "none" (random, for smoke runs).
        "vgg_weights": "torchvision",
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


# The smallest side VGG19 reads at relu5_1: four 2x2 max poolings come before it.
_VGG_MIN_SIZE = 16

# Ranges of the numeric keys, checked after their types (see _check_types): dotted key ->
# (lowest allowed value, whether it is allowed itself). Keys not listed take any value of
# their type.
_RANGES: dict[str, tuple[float, bool]] = {
    "dataset_params.decoded_cache_mb": (0, True),
    "model_params.common_params.num_segments": (1, True),
    "model_params.segmentation_module_params.temperature": (0, False),
    "model_params.segmentation_module_params.block_expansion": (1, True),
    "model_params.segmentation_module_params.max_features": (1, True),
    "model_params.segmentation_module_params.num_blocks": (1, True),
    "model_params.reconstruction_module_params.block_expansion": (1, True),
    "model_params.reconstruction_module_params.max_features": (1, True),
    "model_params.reconstruction_module_params.num_down_blocks": (0, True),
    "model_params.reconstruction_module_params.num_bottleneck_blocks": (0, True),
    "model_params.reconstruction_module_params.first_kernel_size": (1, True),
    "train_params.num_epochs": (1, True),
    "train_params.num_repeats": (1, True),
    "train_params.lr_segmentation": (0, False),
    "train_params.lr_reconstruction": (0, False),
    "train_params.batch_size": (1, True),
    "train_params.checkpoint_freq": (1, True),
    "train_params.max_nonfinite_steps": (1, True),
    "train_params.transform_params.sigma_affine": (0, True),
    "train_params.transform_params.sigma_tps": (0, True),
    "train_params.transform_params.points_tps": (1, True),
    "train_params.loss_weights.equivariance": (0, True),
    "visualizer_params.kp_size": (1, True),
}


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    return "a string" if isinstance(default, str) else "a list"


def _fits(value: Any, default: Any) -> bool:
    """Whether `value` has the type of `default` (an int where a number is expected is fine)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _as_number(value: Any, default: Any) -> Any:
    """YAML 1.1 reads `2e-4` (no dot) as a string: a number-typed key takes it as the number."""
    if isinstance(default, float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_types(config: dict[str, Any], defaults: Mapping[str, Any], path: str) -> None:
    """Every key whose default is not None has the default's type (lists: their items too)."""
    for key, default in defaults.items():
        dotted = f"{path}.{key}" if path else key
        if isinstance(default, dict):
            _check_types(config[key], default, dotted)
            continue
        if default is None:
            continue
        value = config[key] = _as_number(config[key], default)
        if not _fits(value, default):
            raise ConfigError(f"{dotted} must be {_type_name(default)}, got {value!r}")
        if isinstance(default, list) and default:
            # A list of numbers may hold ints (`scales: [1, 0.5]`); of ints, only ints.
            item = next((d for d in default if isinstance(d, float)), default[0])
            items = [_as_number(v, item) for v in value]
            if not all(_fits(v, item) for v in items):
                raise ConfigError(f"{dotted} must be a list, each item {_type_name(item)}, got {value!r}")
            config[key] = items
        low = _RANGES.get(dotted)
        if low is not None and (value < low[0] or (value == low[0] and not low[1])):
            relation = ">=" if low[1] else ">"
            raise ConfigError(f"{dotted} must be {relation} {low[0]}, got {value!r}")


def _downscale_stride(scale: Any, key: str) -> int:
    """1/scale for a scale of 1 or 1/n (what `geometry.antialias_downsample` takes)."""
    stride = round(1.0 / scale) if 0 < scale <= 1 else 0
    if stride < 1 or abs(stride * scale - 1.0) > 1e-6:
        raise ConfigError(f"{key} must be 1 or 1/n for an integer n (0.5, 0.25, ...), got {scale!r}")
    return stride


def _size_fits(size: int, stride: int, hourglass: int, generator: int, smallest: int) -> bool:
    # The segmenter's downsampling gives ceil(size / stride) pixels; its hourglass halves
    # them and doubles them back, so they must halve without remainder.
    return -(-size // stride) % hourglass == 0 and size % generator == 0 and size >= smallest


def frame_size_problem(
    config: Mapping[str, Any], height: int, width: int, training: bool = True
) -> str | None:
    """Why the model of `config` cannot take `height` x `width` frames (None if it can).

    The segmenter downsamples the frame by 1/scale_factor (to ceil(size x scale_factor)), and
    its hourglass halves that `num_blocks` times and doubles it back, concatenating each
    level with its skip: both sides must halve without remainder. The generator halves the
    frame `num_down_blocks` times and doubles it back to the frame. In training, the
    perceptual loss passes the smallest pyramid scale of the frame through VGG19 up to
    relu5_1 (four 2x2 poolings), so that scale must keep 16 pixels.

    Args:
      config: A validated config.
      height: Frame height in pixels.
      width: Frame width in pixels.
      training: Also check what training needs (the generator's and the loss's sizes).

    Returns:
      One sentence naming the sizes that work and why, or None.
    """
    seg = config["model_params"]["segmentation_module_params"]
    stride = _downscale_stride(seg["scale_factor"], "model_params.segmentation_module_params.scale_factor")
    hourglass = 2 ** int(seg["num_blocks"])
    generator, smallest = 1, 1
    if training:
        generator = 2 ** int(config["model_params"]["reconstruction_module_params"]["num_down_blocks"])
        scales = config["train_params"]["scales"]
        smallest = max(_VGG_MIN_SIZE * _downscale_stride(min(scales), "train_params.scales"), 1)
    bad = [s for s in (height, width) if not _size_fits(s, stride, hourglass, generator, smallest)]
    if not bad:
        return None
    reasons = [
        f"ceil(size x scale_factor {seg['scale_factor']}) must be a multiple of 2^num_blocks = {hourglass} "
        "(the segmenter's hourglass)"
    ]
    if generator > 1:
        reasons.append(f"the size a multiple of 2^num_down_blocks = {generator} (the generator)")
    if smallest > 1:
        reasons.append(f"at least {smallest} (VGG19 at the smallest loss scale {min(scales)})")
    suggestions = []
    for size in sorted(set(bad)):
        below = next(
            (s for s in range(size - 1, 0, -1) if _size_fits(s, stride, hourglass, generator, smallest)), None
        )
        above = next(
            s
            for s in range(size + 1, max(size, smallest) + stride * hourglass * generator + 1)
            if _size_fits(s, stride, hourglass, generator, smallest)
        )
        nearest = [str(s) for s in (below, above) if s is not None]
        suggestions.append(f"{' or '.join(nearest)} instead of {size}")
    return (
        f"frame size {height}x{width} does not fit this model: {'; '.join(reasons)}; "
        f"sizes that work: {', '.join(suggestions)}"
    )


def check_frame_size(config: Mapping[str, Any]) -> None:
    """Refuses a config whose model cannot be trained at its `dataset_params.frame_shape`.

    `build_config` leaves this out because it also fills partial configs (a data set's
    parameters alone); `load_config` and the trainer check it.

    Args:
      config: A validated config.

    Raises:
      ConfigError: If the frame size does not fit; the message says which sizes do and why.
    """
    shape = config["dataset_params"]["frame_shape"]
    problem = frame_size_problem(config, shape[0], shape[1])
    if problem:
        raise ConfigError(f"dataset_params.frame_shape {shape!r}: {problem}")


def _validate(config: dict[str, Any]) -> None:
    _check_types(config, DEFAULTS, "")
    model = config["model_params"]
    variant = model["variant"]
    if variant is not None and variant not in VARIANTS:
        raise ConfigError(f"model_params.variant must be one of {VARIANTS}, got {variant!r}")
    root = config["dataset_params"]["root_dir"]
    if root is not None and not isinstance(root, str):
        raise ConfigError(f"dataset_params.root_dir must be a path (a string), got {root!r}")
    shape = config["dataset_params"]["frame_shape"]
    if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
        raise ConfigError(f"dataset_params.frame_shape must be [height, width, 3], got {shape!r}")
    train = config["train_params"]
    for key, bounds in (("adam_betas", (0.0, 1.0)),):
        betas = train[key]
        if len(betas) != 2 or not all(bounds[0] <= b < bounds[1] for b in betas):
            raise ConfigError(f"train_params.{key} must be two numbers in [0, 1), got {betas!r}")
    if not train["scales"]:
        raise ConfigError("train_params.scales must list at least one scale, e.g. [1, 0.5]")
    for scale in train["scales"]:
        _downscale_stride(scale, "train_params.scales")
    if any(m < 0 for m in train["epoch_milestones"]):
        raise ConfigError(
            f"train_params.epoch_milestones must be epochs >= 0, got {train['epoch_milestones']!r}"
        )
    if any(w < 0 for w in train["loss_weights"]["perceptual"]):
        raise ConfigError(
            f"train_params.loss_weights.perceptual must be >= 0, got {train['loss_weights']['perceptual']!r}"
        )
    warmup = train["segmentation_warmup"]
    if not (isinstance(warmup["epochs"], int) and warmup["epochs"] >= 0 and float(warmup["factor"]) > 0):
        raise ConfigError(
            f"train_params.segmentation_warmup needs epochs >= 0 (an int) and factor > 0, got {warmup!r}"
        )
    n_perceptual = len(train["loss_weights"]["perceptual"])
    if n_perceptual != 5:
        raise ConfigError(
            "train_params.loss_weights.perceptual needs 5 weights "
            f"(VGG19 relu1_1..relu5_1), got {n_perceptual}"
        )


def build_config(
    given: Mapping[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validates `given` against the schema, fills defaults and applies `key=value` overrides.

    Args:
      given: A partial config (sections of key/values), or None for the defaults.
      overrides: `section.key=value` strings applied in order after `given`.

    Returns:
      The complete config: every section and key of the schema.

    Raises:
      OverrideError: An override is malformed or names an unknown key or a bad value.
      ConfigError: `given` does not fit the schema (the message names the overrides, if any).
    """
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


def read_yaml_mapping(path: str) -> dict[str, Any]:
    """Reads a YAML file whose top level is a mapping, as a config file is.

    Args:
      path: Any `tf.io.gfile` path.

    Returns:
      The mapping, unvalidated; an empty file gives `{}`.

    Raises:
      FileNotFoundError: If there is no file at `path`.
      ConfigError: If the file is not YAML (the message names the line and column) or its
        top level is not a mapping.
    """
    # Local files are read without importing TensorFlow, so a command refuses a bad config at once.
    if not fileio.exists(path) or fileio.isdir(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with fileio.open_file(path, "r") as f:
        try:
            given = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: {_yaml_problem(e)}") from None
    if not isinstance(given, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return dict(given)


def load_config(path: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Reads a YAML config (any `tf.io.gfile` path) and returns the validated config.

    Args:
      path: The YAML file (local or a `tf.io.gfile` URL).
      overrides: `section.key=value` strings applied after the file.

    Returns:
      The complete, validated config.

    Raises:
      OverrideError: An override does not apply.
      ConfigError: The file's config does not fit the schema or the frame size does not suit the model
        (the message starts with `path`).
    """
    given = read_yaml_mapping(path)
    try:
        config = build_config(given, overrides)
        check_frame_size(config)
    except OverrideError:
        raise
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return config


def save_config(config: Mapping[str, Any], path: str) -> None:
    """Writes the resolved config as YAML, so that a run can be reproduced from its logs.

    Args:
      config: The config to write.
      path: The YAML file to write (local or a `tf.io.gfile` URL).
    """
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
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise OverrideError(f"override {override!r}: the value is not YAML ({_yaml_problem(e)})") from None
    return out


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error on one line: where (line, column, counted from 1) and what."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return f"YAML syntax error: {problem}"
    return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _module_kwargs(config: Mapping[str, Any], section: str, common_keys: tuple[str, ...]) -> dict[str, Any]:
    """A module's constructor arguments: its common keys, its own section, its variant flags."""
    model = config["model_params"]
    kwargs = {key: model["common_params"][key] for key in common_keys}
    kwargs.update(model[section])
    if model["variant"] is not None:
        kwargs.update({k: v for k, v in _VARIANT_FLAGS[model["variant"]].items() if k in kwargs})
    return kwargs


def segmenter_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of `SegmentationModule` from a config, variant applied.

    Args:
      config: A complete config.

    Returns:
      Keyword arguments of `SegmentationModule`.
    """
    return _module_kwargs(config, "segmentation_module_params", _SEGMENTER_KEYS)


def generator_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of `ReconstructionModule` from a config, variant applied.

    Args:
      config: A complete config.

    Returns:
      Keyword arguments of `ReconstructionModule`.
    """
    return _module_kwargs(config, "reconstruction_module_params", _GENERATOR_KEYS)


def config_path(name_or_path: str | None) -> str | None:
    """What a command's `--config` names: a YAML path (any `tf.io.gfile` path) or a packaged config.

    Args:
      name_or_path: An existing file, a `scheme://` path, a path ending in `.yaml`/`.yml`, the
        name of a packaged config (e.g. `synthetic`, `vox-256-sem-10segments`), or None.

    Returns:
      The path to read (None for None: the command's default applies).

    Raises:
      FileNotFoundError: If it is neither a path nor a packaged config's name.
    """
    if name_or_path is None:
        return None
    if fileio.is_url(name_or_path) or fileio.exists(name_or_path) or name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    return packaged_config_path(name_or_path)


def packaged_config_path(name: str) -> str:
    """Path of a config shipped with the package, e.g. `synthetic` or `vox-256-sem-10segments`.

    Args:
      name: The config's name, without `.yaml`.

    Returns:
      Path of the YAML file.

    Raises:
      FileNotFoundError: No packaged config has that name (the message lists those there are).
    """
    import importlib.resources

    folder = importlib.resources.files("coseg_tf.configs")
    path = folder / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise FileNotFoundError(f"no packaged config named {name!r}; available: {available}")
    return str(path)
