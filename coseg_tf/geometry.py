"""Geometry ops: coordinate grids, soft-argmax, bilinear sampling, 2x2 inverse, anti-aliasing.

Conventions (those of the original, which the published checkpoints depend on):
coordinates are normalised to [-1, 1], x first then y, and pixel i of n sits at
2i/(n-1) - 1 (corner-aligned). Everything here uses TensorFlow builtin ops only, with
tensors of rank <= 4 where the segmenter uses them, so that it converts to TFLite
without Flex ops and runs on the GPU/NNAPI delegates.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# A 2x2 matrix whose determinant is smaller than this in magnitude is treated as having
# this determinant (sign kept), so that its inverse stays finite.
MIN_ABS_DETERMINANT = 1e-6


def make_coordinate_grid(height: int, width: int, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """[height, width, 2] grid of (x, y) pixel centres in [-1, 1], corner-aligned.

    Args:
      height: Rows of the grid.
      width: Columns of the grid.
      dtype: dtype of the grid.

    Returns:
      [height, width, 2] tensor; [..., 0] is x (left -1, right 1), [..., 1] is y (top -1, bottom 1).
    """
    # A constant, computed as the original does (2 * (i / (n - 1)) - 1 in float32): one op in the
    # graph where tf.linspace adds dozens to every trace and eager call.
    x = 2 * (np.arange(width, dtype=np.float32) / np.float32(max(width - 1, 1))) - 1
    y = 2 * (np.arange(height, dtype=np.float32) / np.float32(max(height - 1, 1))) - 1
    grid = np.stack(np.meshgrid(x, y), axis=-1)
    return tf.cast(tf.constant(grid), dtype)


def spatial_softmax(logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """Softmax over the spatial positions of each channel: [B, H, W, K] -> same shape.

    Args:
      logits: [B, H, W, K] logits.
      temperature: Divides the logits before the softmax (lower is sharper).

    Returns:
      [B, H, W, K] maps, each channel summing to 1 over H and W.
    """
    shape = tf.shape(logits)
    flat = tf.reshape(logits, (shape[0], shape[1] * shape[2], shape[3]))
    flat = tf.nn.softmax(flat / temperature, axis=1)
    return tf.reshape(flat, shape)


def spatial_sum(values: tf.Tensor) -> tf.Tensor:
    """Sum over the positions of [B, H, W, ...] -> [B, ...]: along rows, then down columns.

    One reduction over H*W positions is exact enough in TensorFlow (tree sums), but a runtime
    that adds sequentially (TFLite's kernels) then accumulates H*W roundings: at 256x256 the
    heatmap-weighted affine of a trained model drifted by 1.8e-4 of its size in float32.
    Two reductions of W and H terms keep it near TensorFlow's
    (docs/experiments/2026-11-25-export-agreement-and-tflite-speed.md).

    Args:
      values: [B, H, W, ...] tensor.

    Returns:
      [B, ...] sums over H and W.
    """
    return tf.reduce_sum(tf.reduce_sum(values, axis=2), axis=1)


def soft_argmax(heatmap: tf.Tensor) -> tf.Tensor:
    """Expected (x, y) of each channel of a normalised heatmap: [B, H, W, K] -> [B, K, 2].

    Args:
      heatmap: [B, H, W, K] maps, each channel summing to 1 over H and W.

    Returns:
      [B, K, 2] expected (x, y) in the [-1, 1] coordinates of `make_coordinate_grid`.
    """
    height, width = heatmap.shape[1], heatmap.shape[2]
    grid = make_coordinate_grid(height, width, heatmap.dtype)
    # x and y apart: rank-4 tensors only, as TFLite delegates require.
    return tf.stack([spatial_sum(heatmap * grid[tf.newaxis, :, :, c : c + 1]) for c in (0, 1)], axis=-1)


def inverse_2x2(matrix: tf.Tensor) -> tf.Tensor:
    """Closed-form inverse of [..., 2, 2] matrices that stays finite.

    A determinant below MIN_ABS_DETERMINANT in magnitude is clamped (sign kept), and
    non-finite entries are replaced by the identity first, so a near-singular or NaN
    affine predicted early in training gives a large but finite motion, not NaN.

    Args:
      matrix: [..., 2, 2] matrices.

    Returns:
      [..., 2, 2] inverses (of the identity where `matrix` had a non-finite entry).
    """
    matrix = sanitize_affine(matrix)
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    sign = tf.where(det < 0, -tf.ones_like(det), tf.ones_like(det))
    det = tf.where(tf.abs(det) < MIN_ABS_DETERMINANT, sign * MIN_ABS_DETERMINANT, det)
    row0 = tf.stack([d, -b], axis=-1)
    row1 = tf.stack([-c, a], axis=-1)
    return tf.stack([row0, row1], axis=-2) / det[..., tf.newaxis, tf.newaxis]


def sanitize_affine(matrix: tf.Tensor) -> tf.Tensor:
    """Replaces [..., 2, 2] matrices holding a non-finite entry by the identity.

    Args:
      matrix: [..., 2, 2] matrices.

    Returns:
      [..., 2, 2] matrices, finite ones unchanged.
    """
    finite = tf.reduce_all(tf.math.is_finite(matrix), axis=[-2, -1], keepdims=True)
    identity = tf.eye(2, dtype=matrix.dtype)
    return tf.where(finite, matrix, tf.broadcast_to(identity, tf.shape(matrix)))


def grid_sample(image: tf.Tensor, grid: tf.Tensor, padding_mode: str = "zeros") -> tf.Tensor:
    """Bilinear sampling of `image` [B, H, W, C] at `grid` [B, Ho, Wo, 2] (x, y in [-1, 1]).

    Corner-aligned, like PyTorch's grid_sample with align_corners=True. `padding_mode`
    "zeros" reads zeros outside the image; "border" clamps to the edge pixels. Written
    with a flat GATHER so that it converts to TFLite builtins. Non-finite coordinates
    read zeros (or the border), never NaN.

    Args:
      image: [B, H, W, C] images.
      grid: [B, Ho, Wo, 2] sampling positions (x, y) in [-1, 1] (-1 is the centre of the first pixel).
      padding_mode: "zeros" or "border".

    Returns:
      [B, Ho, Wo, C] samples, in `image`'s dtype.

    Raises:
      ValueError: `padding_mode` is neither "zeros" nor "border".
    """
    if padding_mode not in ("zeros", "border"):
        raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    image_shape = tf.shape(image)
    batch, height, width = image_shape[0], image_shape[1], image_shape[2]
    channels = image.shape[-1]
    grid = tf.cast(grid, tf.float32)
    grid = tf.where(tf.math.is_finite(grid), grid, tf.fill(tf.shape(grid), 2.0))
    w_max = tf.cast(width - 1, tf.float32)
    h_max = tf.cast(height - 1, tf.float32)
    # Keep far-away coordinates in a range where float32 index arithmetic is exact.
    x = tf.clip_by_value((grid[..., 0] + 1.0) * 0.5 * w_max, -2.0, w_max + 2.0)
    y = tf.clip_by_value((grid[..., 1] + 1.0) * 0.5 * h_max, -2.0, h_max + 2.0)
    if padding_mode == "border":
        x = tf.clip_by_value(x, 0.0, w_max)
        y = tf.clip_by_value(y, 0.0, h_max)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    x1 = x0 + 1.0
    y1 = y0 + 1.0
    wx1 = x - x0
    wx0 = 1.0 - wx1
    wy1 = y - y0
    wy0 = 1.0 - wy1

    flat = tf.reshape(tf.cast(image, tf.float32), (-1, channels))
    out_shape = tf.shape(grid)[:3]
    base = tf.reshape(tf.range(batch) * height * width, (-1, 1, 1))

    def corner(xc: tf.Tensor, yc: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
        inside = (xc >= 0.0) & (xc <= w_max) & (yc >= 0.0) & (yc <= h_max)
        weight = tf.where(inside, weight, tf.zeros_like(weight))
        xi = tf.cast(tf.clip_by_value(xc, 0.0, w_max), tf.int32)
        yi = tf.cast(tf.clip_by_value(yc, 0.0, h_max), tf.int32)
        values = tf.gather(flat, tf.reshape(base + yi * width + xi, (-1,)))
        values = tf.reshape(values, tf.concat([out_shape, [channels]], axis=0))
        return values * weight[..., tf.newaxis]

    sampled = (
        corner(x0, y0, wx0 * wy0)
        + corner(x1, y0, wx1 * wy0)
        + corner(x0, y1, wx0 * wy1)
        + corner(x1, y1, wx1 * wy1)
    )
    return tf.cast(sampled, image.dtype)


def upsample_nearest_2x(x: tf.Tensor) -> tf.Tensor:
    """Nearest-neighbour x2 upsampling of [B, H, W, C] with rank-4 ops only.

    Concatenating a tensor with itself on the channels and reading it as twice the width
    repeats every column; the same on the width doubles the rows. `tf.repeat` would lower
    to rank-5 tensors (which the TFLite GPU/NNAPI delegates reject) and
    RESIZE_NEAREST_NEIGHBOR is not an XNNPACK op; this keeps the segmenter one partition.

    Args:
      x: [B, H, W, C] tensor with a static C.

    Returns:
      [B, 2H, 2W, C] tensor.
    """
    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], x.shape[-1]
    columns = tf.reshape(tf.concat([x, x], axis=-1), (batch, height, 2 * width, channels))
    return tf.reshape(tf.concat([columns, columns], axis=2), (batch, 2 * height, 2 * width, channels))


def resize_bilinear(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Bilinear resize with half-pixel centres (PyTorch interpolate, align_corners=False).

    Args:
      image: [B, H, W, C] images.
      height: Output height.
      width: Output width.

    Returns:
      [B, height, width, C] images in `image`'s dtype (`image` itself when already that size).
    """
    if image.shape[1] == height and image.shape[2] == width:
        return image
    return tf.cast(tf.image.resize(image, (height, width), method="bilinear"), image.dtype)


def gaussian_kernel(scale: float) -> tuple[np.ndarray, int]:
    """The anti-aliasing kernel for downsampling by `scale`, and its half size (padding).

    sigma = (1/scale - 1)/2 and size 2*round(4*sigma) + 1, normalised to sum to one.

    Args:
      scale: Downsampling factor in (0, 1), e.g. 0.25.

    Returns:
      (float32 [size, size] kernel, size // 2).
    """
    sigma = (1.0 / scale - 1.0) / 2.0
    size = 2 * round(sigma * 4) + 1
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    kernel = np.outer(g, g)
    return (kernel / kernel.sum()).astype(np.float32), size // 2


def antialias_downsample(image: tf.Tensor, scale: float) -> tf.Tensor:
    """Gaussian blur then every (1/scale)-th pixel from the first: [B, H, W, C] at `scale`.

    The blur uses zero padding of half the kernel on each side, as the original.

    Args:
      image: [B, H, W, C] images with a static C.
      scale: 1, or 1/n for an integer n > 1.

    Returns:
      [B, ~H*scale, ~W*scale, C] images (`image` itself for scale 1).

    Raises:
      ValueError: `scale` is not 1/n for an integer n > 1.
    """
    if scale == 1:
        return image
    stride = int(round(1.0 / scale))
    if not 0 < scale < 1 or abs(stride * scale - 1.0) > 1e-6:
        raise ValueError(f"downsampling scale must be 1/n for an integer n > 1, got {scale}")
    kernel, pad = gaussian_kernel(scale)
    channels = image.shape[-1]
    depthwise = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, channels, 1)), image.dtype)
    padded = tf.pad(image, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return tf.nn.depthwise_conv2d(padded, depthwise, strides=[1, stride, stride, 1], padding="VALID")
