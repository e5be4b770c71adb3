"""Pair augmentation of the original `augmentation_params`, as stateless TF ops.

Both frames of a pair get the same random draw (one flip decision, one set of jitter
factors), so the motion between them is untouched; time flip swaps source and target. As in
the original, the time flip is drawn first (p = 0.5) and the horizontal flip (p = 0.5) only
for a pair that was not reversed in time.
Randomness comes from a per-example int64 seed (stateless ops), which keeps the pipeline
deterministic under parallel `map` for a given pipeline seed.

Colour jitter follows the torchvision-style jitter of the original: brightness and contrast
are multiplicative factors drawn from [max(0, 1 - p), 1 + p] (contrast around the mean gray
level of each frame), saturation likewise, hue a shift in [-p, p] turns of the colour wheel.
The enabled ops run in a random order drawn per pair, as the original's jitter does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

# Stream ids of the per-example seed, one per random decision.
_TIME_FLIP, _H_FLIP, _BRIGHTNESS, _CONTRAST, _SATURATION, _HUE, _JITTER_ORDER = range(1, 8)
# ITU-R 601 luma weights, as tf.image.rgb_to_grayscale.
_GRAY_WEIGHTS = tf.constant([0.2989, 0.5870, 0.1140], tf.float32)


def _stream_seed(seed: tf.Tensor, stream: int) -> tf.Tensor:
    """The stateless seed of one random decision of the pair seeded `seed`."""
    return tf.stack([tf.cast(seed, tf.int64), tf.constant(stream, tf.int64)])


def _uniform(seed: tf.Tensor, stream: int, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    return tf.random.stateless_uniform([], _stream_seed(seed, stream), minval=low, maxval=high)


def _factor_range(amount: float) -> tuple[float, float]:
    return max(0.0, 1.0 - amount), 1.0 + amount


def has_augmentation(aug_params: Mapping[str, Any]) -> bool:
    """Whether `aug_params` enables any flip or colour jitter.

    Args:
      aug_params: The config's `augmentation_params` (`flip_param`, `jitter_param`).

    Returns:
      True if a flip is on or a jitter amount is above 0.
    """
    flips = aug_params.get("flip_param", {})
    jitter = aug_params.get("jitter_param", {})
    return any(bool(v) for v in flips.values()) or any(float(v) > 0 for v in jitter.values())


def augment_pair(
    frames: tf.Tensor, seed: tf.Tensor, aug_params: Mapping[str, Any]
) -> tuple[tf.Tensor, tf.Tensor]:
    """Augments float32 [2, H, W, 3] frames in [0, 1] (source, target) with one draw.

    Returns the frames and whether source and target were swapped (time flip).

    Args:
      frames: float32 [2, H, W, 3] (source, target) in [0, 1].
      seed: The pair's stateless seed, int [2].
      aug_params: The config's `augmentation_params`.

    Returns:
      (augmented float32 [2, H, W, 3] frames in [0, 1], bool scalar: time-flipped).
    """
    flips = aug_params.get("flip_param", {})
    jitter = aug_params.get("jitter_param", {})
    swapped = tf.constant(False)
    if flips.get("time_flip"):
        swapped = _uniform(seed, _TIME_FLIP) < 0.5
        frames = tf.cond(swapped, lambda: tf.reverse(frames, axis=[0]), lambda: frames)
    if flips.get("horizontal_flip"):
        # As the original: a pair reversed in time is not also mirrored (mirrored in 1/4 of the
        # pairs when both flips are on, in 1/2 with the horizontal flip alone).
        flip = tf.logical_and(tf.logical_not(swapped), _uniform(seed, _H_FLIP) < 0.5)
        frames = tf.cond(flip, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
    ops = jitter_ops(seed, jitter)
    if ops:
        order = jitter_order(seed, len(ops))
        for position in range(len(ops)):
            # Each branch closes over the frames of the previous position (default argument).
            branches = [lambda op=op, x=frames: op(x) for op in ops]
            frames = tf.switch_case(order[position], branches)
    return frames, swapped


def jitter_ops(seed: tf.Tensor, jitter: Mapping[str, Any]) -> list[Callable[[tf.Tensor], tf.Tensor]]:
    """The enabled colour-jitter ops (brightness, contrast, saturation, hue order), factors drawn.

    Each maps float32 [2, H, W, 3] frames in [0, 1] to jittered frames, clipped to [0, 1].

    Args:
      seed: The pair's stateless seed, int [2].
      jitter: The config's `jitter_param` (`brightness`, `contrast`, `saturation`, `hue`; 0 disables).

    Returns:
      The ops, one per enabled jitter.
    """
    ops: list[Callable[[tf.Tensor], tf.Tensor]] = []
    brightness = float(jitter.get("brightness", 0.0))
    if brightness > 0:
        b = _uniform(seed, _BRIGHTNESS, *_factor_range(brightness))
        ops.append(lambda frames: tf.clip_by_value(frames * b, 0.0, 1.0))
    contrast = float(jitter.get("contrast", 0.0))
    if contrast > 0:
        c = _uniform(seed, _CONTRAST, *_factor_range(contrast))

        def adjust_contrast(frames: tf.Tensor) -> tf.Tensor:
            # Mean gray level per frame, from the channel means (gray is linear in RGB).
            mean = tf.tensordot(tf.reduce_mean(frames, axis=[1, 2]), _GRAY_WEIGHTS, axes=1)[
                :, None, None, None
            ]
            return tf.clip_by_value((frames - mean) * c + mean, 0.0, 1.0)

        ops.append(adjust_contrast)
    saturation = float(jitter.get("saturation", 0.0))
    if saturation > 0:
        s = _uniform(seed, _SATURATION, *_factor_range(saturation))
        ops.append(lambda frames: tf.clip_by_value(tf.image.adjust_saturation(frames, s), 0.0, 1.0))
    hue = float(jitter.get("hue", 0.0))
    if hue > 0:
        h = _uniform(seed, _HUE, -min(hue, 0.5), min(hue, 0.5))
        ops.append(lambda frames: tf.clip_by_value(tf.image.adjust_hue(frames, h), 0.0, 1.0))
    return ops


def jitter_order(seed: tf.Tensor, num_ops: int) -> tf.Tensor:
    """A random permutation of range(num_ops) for this pair: the order the jitter ops run in.

    Args:
      seed: The pair's stateless seed, int [2].
      num_ops: Number of jitter ops.

    Returns:
      int32 [num_ops] permutation.
    """
    return tf.argsort(tf.random.stateless_uniform([num_ops], _stream_seed(seed, _JITTER_ORDER)))


def finish_pair(
    frames_u8: tf.Tensor,
    seed: tf.Tensor,
    aug_params: Mapping[str, Any],
    name: tf.Tensor | None = None,
    indices: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """uint8 [2, H, W, 3] pair -> augmented float32 example dict (shared by both readers).

    With `name`, adds the metadata keys `video` and `frame_indices` (source first, so they
    follow a time flip).

    Args:
      frames_u8: uint8 [2, H, W, 3] (source, target).
      seed: The pair's stateless seed, int [2].
      aug_params: The config's `augmentation_params`.
      name: The video's name, or None for no metadata.
      indices: The pair's frame indices [2] (read only with `name`).

    Returns:
      {"source", "target"} float32 [H, W, 3] in [0, 1], plus `video` and `frame_indices` with `name`.
    """
    frames = tf.cast(frames_u8, tf.float32) * (1.0 / 255.0)
    swapped = tf.constant(False)
    if has_augmentation(aug_params):
        frames, swapped = augment_pair(frames, seed, aug_params)
    out = {"source": frames[0], "target": frames[1]}
    if name is not None:
        out["video"] = name
        out["frame_indices"] = tf.cond(swapped, lambda: tf.reverse(indices, [0]), lambda: indices)
    return out
