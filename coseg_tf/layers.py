"""Building blocks of both modules (Sup. Mat. A): conv blocks, residual blocks, the hourglass.

Attribute names mirror the original's module names (`conv`, `norm`, `down_blocks`, ...),
so that `coseg_tf.weights` maps a PyTorch state dict onto these layers by path.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from coseg_tf import geometry

# PyTorch's default conv initialisation (kaiming-uniform with a = sqrt(5)): U(+-1/sqrt(fan_in)).
TORCH_CONV_INIT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1 / 3, "mode": "fan_in", "distribution": "uniform"},
}


def conv2d(filters: int, kernel_size: int, name: str, **kwargs: Any) -> keras.layers.Conv2D:
    """A stride-1 conv with zero 'same' padding, as the original's odd kernels with k//2 padding.

    Args:
      filters: Output channels.
      kernel_size: Side of the square kernel (odd).
      name: The layer's name.
      **kwargs: Other `keras.layers.Conv2D` arguments; the kernel initialiser defaults to PyTorch's.

    Returns:
      The `Conv2D` layer.
    """
    kwargs.setdefault("kernel_initializer", keras.initializers.get(TORCH_CONV_INIT))
    return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name, **kwargs)


# PyTorch's batch-norm momentum 0.1 weighs the new batch; Keras' momentum weighs the old average.
TORCH_BATCH_NORM_MOMENTUM = 0.9
TORCH_BATCH_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="coseg_tf")
class TorchBatchNorm(keras.layers.BatchNormalization):
    """Batch norm that trains as PyTorch's: two-pass batch statistics, unbiased running variance.

    Normalisation in training uses the biased batch variance in both frameworks, but PyTorch
    accumulates `var * n / (n - 1)` into `running_var` (n values per channel, over every
    replica when synchronised) where Keras accumulates `var`. At the segmenter's 2x2
    bottleneck with batch 2 the two differ by 7/8, which every inference-mode output of a
    trained model would carry. The variance is the mean squared deviation from the mean
    (two passes, also across replicas): Keras' synchronised moments take E[x^2] - E[x]^2,
    whose cancellation moved the training-parity gradients by up to 0.7% of their scale.
    """

    def _statistics(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per-channel mean, biased variance and value count, over every replica if synchronised."""
        axes = list(range(len(x.shape) - 1))
        count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
        context = tf.distribute.get_replica_context()
        if not self.synchronized or context is None or context.num_replicas_in_sync == 1:
            mean = tf.reduce_mean(x, axes)
            return mean, tf.reduce_mean(tf.square(x - mean), axes), count
        total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [tf.reduce_sum(x, axes), count])
        mean = total / count
        squares = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(tf.square(x - mean), axes))
        return mean, squares / count, count

    def _fusable(self, x: tf.Tensor) -> bool:
        """Whether TensorFlow's fused kernel computes this layer's training step: channels-last
        4-D frames, scale and offset, and statistics of this replica alone."""
        context = tf.distribute.get_replica_context()
        synchronised = self.synchronized and context is not None and context.num_replicas_in_sync > 1
        return len(x.shape) == 4 and self.axis in (-1, 3) and self.center and self.scale and not synchronised

    def call(
        self, inputs: tf.Tensor, training: bool | None = None, mask: tf.Tensor | None = None
    ) -> tf.Tensor:
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # statistics in float32 under mixed precision, as Keras does
        if self._fusable(x):
            # One kernel (and one gradient kernel) for the statistics, the normalisation and the
            # running averages: the same two-pass variance and n / (n - 1) correction, a fraction of
            # the ops to trace and dispatch.
            out, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x,
                scale=self.gamma,
                offset=self.beta,
                mean=self.moving_mean,
                variance=self.moving_variance,
                epsilon=self.epsilon,
                exponential_avg_factor=1.0 - self.momentum,
                data_format="NHWC",
                is_training=True,
            )
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
            return tf.cast(out, self.compute_dtype)
        mean, variance, count = self._statistics(x)
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + unbiased * (1.0 - self.momentum))
        out = tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)
        return tf.cast(out, self.compute_dtype)


def batch_norm(sync: bool, name: str) -> TorchBatchNorm:
    """Batch norm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5) and updates.

    Args:
      sync: Whether batch statistics are computed over all replicas.
      name: The layer's name.

    Returns:
      The `TorchBatchNorm` layer.
    """
    return TorchBatchNorm(
        momentum=TORCH_BATCH_NORM_MOMENTUM, epsilon=TORCH_BATCH_NORM_EPSILON, synchronized=sync, name=name
    )


@keras.saving.register_keras_serializable(package="coseg_tf")
class ConvBlock(keras.layers.Layer):
    """conv - bn - relu, optionally after a nearest x2 upsampling or before a 2x2 average pool.

    `resample` None is the original's SameBlock2d, "down" its DownBlock2d, "up" its UpBlock2d.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        resample: str | None = None,
        sync_batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.resample = resample
        self.sync_batch_norm = sync_batch_norm
        self.conv = conv2d(filters, kernel_size, name="conv")
        self.norm = batch_norm(sync_batch_norm, name="norm")

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.resample == "up":
            x = geometry.upsample_nearest_2x(x)
        x = tf.nn.relu(self.norm(self.conv(x), training=training))
        if self.resample == "down":
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
        return x

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "resample": self.resample,
            "sync_batch_norm": self.sync_batch_norm,
        }


@keras.saving.register_keras_serializable(package="coseg_tf")
class ResBlock2d(keras.layers.Layer):
    """Pre-activation residual block: bn - relu - conv - bn - relu - conv, plus the input."""

    def __init__(
        self, features: int, kernel_size: int = 3, sync_batch_norm: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.features = features
        self.kernel_size = kernel_size
        self.sync_batch_norm = sync_batch_norm
        self.norm1 = batch_norm(sync_batch_norm, name="norm1")
        self.conv1 = conv2d(features, kernel_size, name="conv1")
        self.norm2 = batch_norm(sync_batch_norm, name="norm2")
        self.conv2 = conv2d(features, kernel_size, name="conv2")

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        out = self.conv1(tf.nn.relu(self.norm1(x, training=training)))
        out = self.conv2(tf.nn.relu(self.norm2(out, training=training)))
        return out + x

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "features": self.features,
            "kernel_size": self.kernel_size,
            "sync_batch_norm": self.sync_batch_norm,
        }


class _HourglassPart(keras.layers.Layer):
    """The width arguments shared by the hourglass and its halves: level i has
    min(max_features, block_expansion * 2^i) channels."""

    def __init__(
        self,
        block_expansion: int,
        max_features: int,
        num_blocks: int,
        sync_batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.block_expansion = block_expansion
        self.max_features = max_features
        self.num_blocks = num_blocks
        self.sync_batch_norm = sync_batch_norm

    def width(self, level: int) -> int:
        return min(self.max_features, self.block_expansion * (2**level))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "block_expansion": self.block_expansion,
            "max_features": self.max_features,
            "num_blocks": self.num_blocks,
            "sync_batch_norm": self.sync_batch_norm,
        }


@keras.saving.register_keras_serializable(package="coseg_tf")
class HourglassEncoder(_HourglassPart):
    """`num_blocks` down blocks; returns the input and every block's output (the skips)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.down_blocks = [
            ConvBlock(self.width(i + 1), 3, "down", self.sync_batch_norm, name=f"down_blocks_{i}")
            for i in range(self.num_blocks)
        ]

    def call(self, x: tf.Tensor, training: bool | None = None) -> list[tf.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1], training=training))
        return outs


@keras.saving.register_keras_serializable(package="coseg_tf")
class HourglassDecoder(_HourglassPart):
    """`num_blocks` up blocks, each followed by concatenation [upsampled, skip]."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.up_blocks = [
            ConvBlock(self.width(level), 3, "up", self.sync_batch_norm, name=f"up_blocks_{i}")
            for i, level in enumerate(reversed(range(self.num_blocks)))
        ]

    def call(self, skips: list[tf.Tensor], training: bool | None = None) -> tf.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = tf.concat([block(out, training=training), skips.pop()], axis=-1)
        return out


@keras.saving.register_keras_serializable(package="coseg_tf")
class Hourglass(_HourglassPart):
    """The U-Net of the segmenter (Sup. Mat. A); its output has block_expansion + input channels."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        widths = (self.block_expansion, self.max_features, self.num_blocks, self.sync_batch_norm)
        self.encoder = HourglassEncoder(*widths, name="encoder")
        self.decoder = HourglassDecoder(*widths, name="decoder")

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.decoder(self.encoder(x, training=training), training=training)
