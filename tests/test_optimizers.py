"""TorchAdam against PyTorch's Adam written out in NumPy (the original's optimiser)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from coseg_tf.optimizers import TorchAdam

LR, BETAS, EPS = 2e-4, (0.5, 0.999), 1e-8


def _torch_adam(param, grads):
    """torch.optim.Adam's update (amsgrad off, no weight decay), step by step."""
    m, v = np.zeros_like(param), np.zeros_like(param)
    for t, g in enumerate(grads, start=1):
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        denominator = np.sqrt(v) / np.sqrt(1 - BETAS[1] ** t) + EPS
        param = param - LR / (1 - BETAS[0] ** t) * m / denominator
    return param


def test_updates_match_pytorchs_adam_where_epsilon_matters():
    rng = np.random.default_rng(0)
    # Gradients of 1e-9 to 1: at the small end, where epsilon's placement changes the step.
    scale = np.logspace(-9, 0, 10)
    grads = [rng.standard_normal(10) * scale for _ in range(3)]
    start = np.zeros(10)  # updates of 1e-4 on weights of 1 would be lost to float32 rounding
    variable = keras.Variable(start.astype(np.float32))
    optimizer = TorchAdam(LR, beta_1=BETAS[0], beta_2=BETAS[1], epsilon=EPS)
    for g in grads:
        optimizer.apply([tf.constant(g, tf.float32)], [variable])
    expected = _torch_adam(start, grads)
    np.testing.assert_allclose(variable.numpy() - start, expected - start, rtol=1e-4, atol=1e-10)


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        TorchAdam(LR, amsgrad=True)
