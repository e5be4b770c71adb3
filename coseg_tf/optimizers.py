"""The original's optimiser: Adam as PyTorch computes it (Sup. Mat. A: one Adam per module)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="coseg_tf")
class TorchAdam(keras.optimizers.Adam):
    """Adam with PyTorch's placement of epsilon.

    PyTorch divides by sqrt(v / (1 - beta_2^t)) + eps; Keras' Adam divides by sqrt(v) + eps
    and corrects the bias in the step size, which amounts to an epsilon 1 / sqrt(1 - beta_2^t)
    times larger (31.6x at the first step with beta_2 = 0.999). Where gradients are small,
    as they are early in training, the first updates then differ by tens of percent.
    Arguments are Keras' Adam's (amsgrad is not supported).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("TorchAdam does not implement amsgrad")

    def update_step(self, gradient: tf.Tensor, variable: keras.Variable, learning_rate: tf.Tensor) -> None:
        """One Adam update of `variable`, epsilon added after the bias-corrected sqrt(v) as in PyTorch.

        TensorFlow's fused Adam kernel computes
        `var -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps')`; with
        `eps' = eps sqrt(1 - b2^t)` that is PyTorch's `lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)`.
        One kernel per variable instead of a dozen ops keeps tracing and eager steps cheap.

        Args:
          gradient: The variable's gradient.
          variable: The variable to update.
          learning_rate: The step's learning rate.
        """
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(m),
            v=_handle(v),
            beta1_power=beta_1_power,
            beta2_power=beta_2_power,
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=self.epsilon * tf.sqrt(1.0 - beta_2_power),
            grad=tf.cast(gradient, dtype),
        )


def _handle(variable: keras.Variable | tf.Variable) -> tf.Tensor:
    """The resource handle of a Keras or TensorFlow variable (this device's copy when mirrored)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle
