"""The Segmentation Module (Sec. 3.1, Sup. Mat. A): parts, and each part's shift and affine.

The only network needed at inference: one image in, K+1 soft part maps out (channel 0 is
the background), with each part's anchor keypoint p (Eq. 2's shift) and 2x2 matrix A.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from coseg_tf import geometry
from coseg_tf.layers import Hourglass, conv2d


@keras.saving.register_keras_serializable(package="coseg_tf")
class SegmentationModule(keras.Model):
    """Hourglass on the downscaled frame, then three 7x7 heads: shift, affine, segmentation.

    Returns a dict: `segmentation` [B, h, w, K+1] (softmax over parts, background first),
    `shift` [B, K, 2] (x, y in [-1, 1]) and `affine` [B, K, 2, 2] (the identity when
    `estimate_affine_part` is off, i.e. A = I). The heads and all geometry run in float32
    under mixed precision: soft-argmax and matrix inverses are not safe in 16 bits.
    """

    def __init__(
        self,
        num_segments: int = 10,
        num_channels: int = 3,
        block_expansion: int = 32,
        max_features: int = 1024,
        num_blocks: int = 5,
        temperature: float = 0.1,
        estimate_affine_part: bool = True,
        scale_factor: float = 0.25,
        sync_batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_segments = num_segments
        self.num_channels = num_channels
        self.block_expansion = block_expansion
        self.max_features = max_features
        self.num_blocks = num_blocks
        self.temperature = temperature
        self.estimate_affine_part = estimate_affine_part
        self.scale_factor = scale_factor
        self.sync_batch_norm = sync_batch_norm
        self.predictor = Hourglass(
            block_expansion, max_features, num_blocks, sync_batch_norm, name="predictor"
        )
        self.shift = conv2d(num_segments, 7, name="shift", dtype="float32")
        self.affine = None
        if estimate_affine_part:
            # Starts as the identity for every part, as the original.
            identity = np.tile(np.array([1.0, 0.0, 0.0, 1.0], np.float32), num_segments)
            self.affine = conv2d(
                4 * num_segments,
                7,
                name="affine",
                dtype="float32",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(identity),
            )
        self.segmentation = conv2d(num_segments + 1, 7, name="segmentation", dtype="float32")

    @property
    def heads(self) -> list[keras.layers.Conv2D]:
        """The 7x7 heads in the channel order of their fused conv: shift, affine, segmentation."""
        return [head for head in (self.shift, self.affine, self.segmentation) if head is not None]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # `call` runs the heads as one fused conv, which does not build them: build them on
        # the hourglass's output (block_expansion + input channels), then the rest by tracing.
        features = (None, None, None, self.block_expansion + self.num_channels)
        for head in self.heads:
            head.build(features)
        self.compute_output_spec(keras.KerasTensor(input_shape))

    def _head_logits(self, features: tf.Tensor) -> list[tf.Tensor]:
        """The heads' outputs from ONE conv with their kernels side by side (float32).

        Same values as running the heads one by one, but a single pass over the 64x64x35
        features: XNNPACK (TFLite) and oneDNN run the 61-channel conv in about the time of
        the 40-channel affine head alone (paper config, float32 TFLite on a loaded machine:
        6.4 ms instead of 11 ms; see docs/experiments/2026-11-25-export-agreement-and-tflite-speed.md).
        """
        heads = self.heads
        kernel = tf.concat([tf.convert_to_tensor(head.kernel) for head in heads], axis=-1)
        bias = tf.concat([tf.convert_to_tensor(head.bias) for head in heads], axis=-1)
        logits = tf.nn.bias_add(tf.nn.conv2d(tf.cast(features, tf.float32), kernel, 1, "SAME"), bias)
        # Slices, not tf.split: uneven splits lower to SPLIT_V, which XNNPACK does not take.
        ends = np.cumsum([head.filters for head in heads])
        return [logits[..., end - head.filters : end] for head, end in zip(heads, ends, strict=True)]

    def call(self, images: tf.Tensor, training: bool | None = None) -> dict[str, tf.Tensor]:
        x = geometry.antialias_downsample(images, self.scale_factor)
        features = self.predictor(x, training=training)
        logits = self._head_logits(features)
        heatmap = geometry.spatial_softmax(logits[0], self.temperature)
        out = {"shift": geometry.soft_argmax(heatmap)}
        batch, height, width = tf.shape(heatmap)[0], heatmap.shape[1], heatmap.shape[2]
        if self.affine is not None:
            # Heatmap-weighted spatial sum of 4 channels per part, read row-major as 2x2.
            k = self.num_segments
            # (rank-4 tensors only, as TFLite delegates require: width and parts folded)
            coefficients = tf.reshape(logits[1], (batch, height, width * k, 4))
            weights = tf.reshape(heatmap, (batch, height, width * k, 1))
            weighted = tf.reshape(coefficients * weights, (batch, height, width, k * 4))
            out["affine"] = tf.reshape(geometry.spatial_sum(weighted), (batch, k, 2, 2))
        else:
            out["affine"] = tf.broadcast_to(tf.eye(2), (batch, self.num_segments, 2, 2))
        out["segmentation"] = tf.nn.softmax(logits[-1], axis=-1)
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_segments": self.num_segments,
            "num_channels": self.num_channels,
            "block_expansion": self.block_expansion,
            "max_features": self.max_features,
            "num_blocks": self.num_blocks,
            "temperature": self.temperature,
            "estimate_affine_part": self.estimate_affine_part,
            "scale_factor": self.scale_factor,
            "sync_batch_norm": self.sync_batch_norm,
        }
