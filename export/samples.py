"""Images for the agreement checks and for int8 calibration.

Drawn from the data pipeline (`coseg_tf.data.make_pair_dataset`) when the config's
`root_dir` exists, else from image files given on the command line. Both give frame pairs
(source, target), which the part-swap checks need. Augmentation is switched off: the
checks and the calibration should see frames as they will be served.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf.errors import CosegError


class NoSamplesError(CosegError):
    """Neither the data pipeline nor image files gave any frames."""


def _without_augmentation(dataset_params: dict[str, Any]) -> dict[str, Any]:
    params = copy.deepcopy(dataset_params)
    params["augmentation_params"] = copy.deepcopy(
        config_lib.DEFAULTS["dataset_params"]["augmentation_params"]
    )
    return params


def pipeline_pairs(
    config: dict[str, Any], count: int, split: str = "test", seed: int = 0
) -> np.ndarray | None:
    """[count, 2, H, W, 3] float32 pairs from the data pipeline, or None without a dataset.

    Falls back from `split` to "train" when the dataset has no such split.

    Args:
      config: The model's config (`dataset_params.root_dir`, ...); augmentation is turned off.
      count: Number of pairs.
      split: The split to read first.
      seed: Seed of the pipeline's draws.

    Returns:
      float32 [count, 2, H, W, 3] in [0, 1], or None when there is no dataset or no usable split.
    """
    params = config["dataset_params"]
    root = params.get("root_dir")
    if not root or not tf.io.gfile.isdir(str(root)):
        return None
    from coseg_tf.data import DatasetError, make_pair_dataset

    params = _without_augmentation(params)
    for name in dict.fromkeys([split, "train"]):
        try:
            dataset = make_pair_dataset(
                params, split=name, batch_size=1, seed=seed, shuffle=True, drop_remainder=False
            )
        except DatasetError as e:
            logging.warning("no %s frames for the export checks: %s", name, e)
            continue
        pairs = [
            np.stack([batch["source"][0].numpy(), batch["target"][0].numpy()])
            for batch in dataset.repeat().take(count)
        ]
        if pairs:
            return np.stack(pairs).astype(np.float32)
    return None


def _decode_file(path: str, size: tuple[int, int]) -> np.ndarray:
    data = tf.io.read_file(path)
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as e:
        raise NoSamplesError(f"cannot decode sample image {path}: {e.message}") from None
    return resize(tf.cast(image, tf.float32)[tf.newaxis].numpy() / 255.0, size)[0]


def file_pairs(patterns: Sequence[str], size: tuple[int, int], count: int) -> np.ndarray | None:
    """[count, 2, H, W, 3] pairs of consecutive image files (sorted, cycled), or None.

    Args:
      patterns: Glob patterns of image files (local or cloud).
      size: (H, W) to resize the images to.
      count: Number of pairs.

    Returns:
      float32 [count, 2, H, W, 3] in [0, 1], or None when no file matches.
    """
    paths = sorted({p for pattern in patterns for p in tf.io.gfile.glob(pattern)})
    if not paths:
        return None
    frames = [_decode_file(p, size) for p in paths[: count + 1]]
    pairs = [np.stack([frames[i % len(frames)], frames[(i + 1) % len(frames)]]) for i in range(count)]
    return np.stack(pairs).astype(np.float32)


def random_pairs(size: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """Smooth random frames: for timing and for float checks of untrained models only.

    Args:
      size: (H, W) of the frames.
      count: Number of pairs.
      seed: Seed of the draw.

    Returns:
      float32 [count, 2, H, W, 3] in [0, 1].
    """
    rng = np.random.default_rng(seed)
    coarse = rng.random((count * 2, 8, 8, 3)).astype(np.float32)
    frames = tf.image.resize(coarse, size, method="bicubic").numpy().clip(0.0, 1.0)
    return frames.reshape(count, 2, *size, 3)


def sample_pairs(
    config: dict[str, Any],
    count: int,
    *,
    split: str = "test",
    image_patterns: Sequence[str] = (),
    allow_random: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, str]:
    """Pairs at the config's frame size and where they came from (pipeline, files or random).

    Args:
      config: The model's config (its `dataset_params.frame_shape` gives the size).
      count: Number of pairs.
      split: The data pipeline's split to read first.
      image_patterns: Glob patterns of image files, used first when given.
      allow_random: Whether to fall back to `random_pairs`.
      seed: Seed of the draws.

    Returns:
      (float32 [count, 2, H, W, 3] in [0, 1], "image files", "data pipeline" or "random images").

    Raises:
      NoSamplesError: Neither files nor the pipeline gave pairs and `allow_random` is False.
    """
    size = tuple(int(d) for d in config["dataset_params"]["frame_shape"][:2])
    pairs = file_pairs(image_patterns, size, count) if image_patterns else None
    if pairs is not None:
        return pairs, "image files"
    pairs = pipeline_pairs(config, count, split, seed)
    if pairs is not None:
        return resize(pairs.reshape(-1, *pairs.shape[2:]), size).reshape(count, 2, *size, 3), "data pipeline"
    if allow_random:
        return random_pairs(size, count, seed), "random images"
    raise NoSamplesError(
        "no sample images: set dataset_params.root_dir to an existing dataset or pass --images"
    )


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N, h, w, 3] float frames to `size` (anti-aliased bilinear); unchanged when already there.

    Args:
      frames: float [N, h, w, 3] in [0, 1].
      size: (H, W) to resize to.

    Returns:
      float32 [N, H, W, 3] clipped to [0, 1] (`frames` itself when already that size).
    """
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    out = tf.image.resize(frames, size, method="bilinear", antialias=True)
    return np.clip(out.numpy(), 0.0, 1.0).astype(np.float32)
