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

        Args:
          gradient: The variable's gradient.
          variable: The variable to update.
          learning_rate: The step's learning rate.
        """
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        gradient = tf.cast(gradient, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        bias_1 = 1.0 - tf.pow(tf.cast(self.beta_1, dtype), step)
        bias_2 = 1.0 - tf.pow(tf.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, (gradient - m) * (1.0 - self.beta_1))
        self.assign_add(v, (tf.square(gradient) - v) * (1.0 - self.beta_2))
        denominator = tf.sqrt(v) / tf.sqrt(bias_2) + self.epsilon
        self.assign_sub(variable, (lr / bias_1) * m / denominator)
