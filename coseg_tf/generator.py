"""The Reconstruction Module (Sec. 3.2-3.3): warps source features by the part motion.

Encoder, then the deformation layer (segment motion Eq. 2, flow Eq. 3, background
visibility Eq. 4, warped and masked features Eq. 5), residual bottleneck, decoder, sigmoid.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from coseg_tf import geometry
from coseg_tf.layers import ConvBlock, ResBlock2d, conv2d


def segment_motions(seg_target: dict[str, tf.Tensor], seg_source: dict[str, tf.Tensor]) -> tf.Tensor:
    """Eq. (2) for every part at every target location, background (identity) first.

    F^k(z) = p_S^k + A_S^k (A_T^k)^-1 (z - p_T^k); returns [B, K+1, h, w, 2].

    Args:
      seg_target: Segmenter outputs on X_T: `segmentation` [B, h, w, K+1], `shift` [B, K, 2], `affine`
        [B, K, 2, 2].
      seg_source: Segmenter outputs on X_S: `shift` and `affine`.

    Returns:
      [B, K+1, h, w, 2] source positions (x, y) in [-1, 1] for every part.
    """
    height, width = seg_target["segmentation"].shape[1], seg_target["segmentation"].shape[2]
    grid = geometry.make_coordinate_grid(height, width)
    a_source = geometry.sanitize_affine(seg_source["affine"])
    motion = tf.matmul(a_source, geometry.inverse_2x2(seg_target["affine"]))  # [B, K, 2, 2]
    offset = seg_source["shift"] - tf.einsum("bkij,bkj->bki", motion, seg_target["shift"])
    parts = tf.einsum("bkij,hwj->bkhwi", motion, grid) + offset[:, :, tf.newaxis, tf.newaxis, :]
    background = tf.broadcast_to(grid, tf.shape(parts[:, :1]))
    return tf.concat([background, parts], axis=1)


def deformation_field(segmentation: tf.Tensor, motions: tf.Tensor) -> tf.Tensor:
    """Eq. (3): the flow as the target segmentation's soft assignment of part motions.

    segmentation [B, h, w, K+1], motions [B, K+1, h, w, 2] -> [B, h, w, 2].

    Args:
      segmentation: [B, h, w, K+1] target segmentation Y_T.
      motions: [B, K+1, h, w, 2] part motions (`segment_motions`).

    Returns:
      float32 [B, h, w, 2] flow F: source positions (x, y) in [-1, 1].
    """
    return tf.einsum("bhwk,bkhwc->bhwc", tf.cast(segmentation, tf.float32), motions)


def background_visibility(seg_source: tf.Tensor, seg_target: tf.Tensor, stop_gradient: bool) -> tf.Tensor:
    """Eq. (4): V = 1 - O_S * Y_T^bg, with O the sum of the K foreground channels.

    The gradient through the target background is stopped (Sec. 3.2): otherwise the target
    segmentation could leak the target frame to the generator. `stop_gradient=False` is the
    paper's `v_backprop` ablation.

    Args:
      seg_source: [B, h, w, K+1] source segmentation Y_S.
      seg_target: [B, h, w, K+1] target segmentation Y_T.
      stop_gradient: Whether to stop the gradient through Y_T^bg.

    Returns:
      [B, h, w, 1] visibility V in [0, 1].
    """
    foreground_source = tf.reduce_sum(seg_source[..., 1:], axis=-1, keepdims=True)
    background_target = 1.0 - tf.reduce_sum(seg_target[..., 1:], axis=-1, keepdims=True)
    if stop_gradient:
        background_target = tf.stop_gradient(background_target)
    return 1.0 - foreground_source * background_target


@keras.saving.register_keras_serializable(package="coseg_tf")
class ReconstructionModule(keras.Model):
    """The generator: reconstructs the target frame from the source frame and both segmentations.

    Call with `{"source": [B, H, W, 3], "seg_source": {...}, "seg_target": {...}}` (the
    segmenter's outputs). Returns `prediction` and the intermediates: `segment_motions`,
    `deformation` (at the segmentation's size), `visibility`, `deformed` (the source image
    warped by the flow). With `use_motion` off (the `naive` baseline) the target
    segmentation is instead concatenated to the source features in the bottleneck.
    """

    def __init__(
        self,
        num_segments: int = 10,
        num_channels: int = 3,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        num_bottleneck_blocks: int = 6,
        first_kernel_size: int = 7,
        estimate_visibility: bool = True,
        visibility_stop_gradient: bool = True,
        use_motion: bool = True,
        sync_batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_segments = num_segments
        self.num_channels = num_channels
        self.block_expansion = block_expansion
        self.max_features = max_features
        self.num_down_blocks = num_down_blocks
        self.num_bottleneck_blocks = num_bottleneck_blocks
        self.first_kernel_size = first_kernel_size
        self.estimate_visibility = estimate_visibility
        self.visibility_stop_gradient = visibility_stop_gradient
        self.use_motion = use_motion
        self.sync_batch_norm = sync_batch_norm

        def width(level: int) -> int:
            return min(max_features, block_expansion * (2**level))

        self.first = ConvBlock(block_expansion, first_kernel_size, None, sync_batch_norm, name="first")
        self.down_blocks = [
            ConvBlock(width(i + 1), 3, "down", sync_batch_norm, name=f"down_blocks_{i}")
            for i in range(num_down_blocks)
        ]
        self.bottleneck = [
            ResBlock2d(width(num_down_blocks), 3, sync_batch_norm, name=f"bottleneck_r{i}")
            for i in range(num_bottleneck_blocks)
        ]
        self.up_blocks = [
            ConvBlock(width(num_down_blocks - i - 1), 3, "up", sync_batch_norm, name=f"up_blocks_{i}")
            for i in range(num_down_blocks)
        ]
        self.final = conv2d(num_channels, 7, name="final", dtype="float32")
        # The naive baseline's fusion of [features, target segmentation] back to the width.
        self.naive_fuse = None if use_motion else conv2d(width(num_down_blocks), 1, name="naive_fuse")

    def encode(self, source: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Source features at the bottleneck's resolution (before the deformation layer).

        Args:
          source: [B, H, W, 3] source frames in [0, 1].
          training: Keras' training flag (batch normalisation).

        Returns:
          [B, H / 2^n, W / 2^n, C] features, n the number of down blocks.
        """
        out = self.first(source, training=training)
        for block in self.down_blocks:
            out = block(out, training=training)
        return out

    def decode(self, features: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Bottleneck and decoder: features at the deformation layer's output to an image.

        Args:
          features: Deformed features at the bottleneck's resolution.
          training: Keras' training flag (batch normalisation).

        Returns:
          [B, H, W, 3] images in [0, 1].
        """
        out = features
        for block in self.bottleneck:
            out = block(out, training=training)
        for block in self.up_blocks:
            out = block(out, training=training)
        return tf.sigmoid(self.final(out))

    def deform(
        self,
        features: tf.Tensor,
        source: tf.Tensor,
        seg_source: dict[str, tf.Tensor],
        seg_target: dict[str, tf.Tensor],
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The deformation layer, Eq. (5): xi' = V * W(xi, F).

        Args:
          features: [B, h', w', C] source features (`encode`).
          source: [B, H, W, 3] source frames, warped whole for `deformed`.
          seg_source: Segmenter outputs on the source: `segmentation`, `shift`, `affine`.
          seg_target: Segmenter outputs on the target, same keys.

        Returns:
          (deformed features [B, h', w', C], {"segment_motions", "deformation", "deformed" [B, H, W, 3] and,
          with visibility, "visibility"}).
        """
        height, width = features.shape[1], features.shape[2]
        motions = segment_motions(seg_target, seg_source)
        deformation = deformation_field(seg_target["segmentation"], motions)
        out = {"segment_motions": motions, "deformation": deformation}
        features = geometry.grid_sample(features, geometry.resize_bilinear(deformation, height, width))
        if self.estimate_visibility:
            visibility = background_visibility(
                seg_source["segmentation"], seg_target["segmentation"], self.visibility_stop_gradient
            )
            out["visibility"] = visibility
            features = features * tf.cast(geometry.resize_bilinear(visibility, height, width), features.dtype)
        full = geometry.resize_bilinear(deformation, source.shape[1], source.shape[2])
        out["deformed"] = geometry.grid_sample(source, full)
        return features, out

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> dict[str, tf.Tensor]:
        source, seg_source, seg_target = inputs["source"], inputs["seg_source"], inputs["seg_target"]
        features = self.encode(source, training=training)
        if self.use_motion:
            features, out = self.deform(features, source, seg_source, seg_target)
        else:
            segmentation = geometry.resize_bilinear(
                seg_target["segmentation"], features.shape[1], features.shape[2]
            )
            features = self.naive_fuse(tf.concat([features, tf.cast(segmentation, features.dtype)], -1))
            out = {}
        out["prediction"] = self.decode(features, training=training)
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_segments": self.num_segments,
            "num_channels": self.num_channels,
            "block_expansion": self.block_expansion,
            "max_features": self.max_features,
            "num_down_blocks": self.num_down_blocks,
            "num_bottleneck_blocks": self.num_bottleneck_blocks,
            "first_kernel_size": self.first_kernel_size,
            "estimate_visibility": self.estimate_visibility,
            "visibility_stop_gradient": self.visibility_stop_gradient,
            "use_motion": self.use_motion,
            "sync_batch_norm": self.sync_batch_norm,
        }
