"""TorchBatchNorm trains as PyTorch's BatchNorm2d, on its fused path and its statistics path."""

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import layers

SHAPE = (2, 3, 4, 5)  # batch 2, 3x4 frames, 5 channels: 24 values per channel


def _torch_batch_norm(x, gamma, beta, running_mean, running_var):
    """torch.nn.BatchNorm2d in training (momentum 0.1, eps 1e-5), channels last, in NumPy."""
    mean = x.mean(axis=(0, 1, 2))
    variance = ((x - mean) ** 2).mean(axis=(0, 1, 2))
    n = x.size // x.shape[-1]
    out = (x - mean) / np.sqrt(variance + 1e-5) * gamma + beta
    return out, 0.9 * running_mean + 0.1 * mean, 0.9 * running_var + 0.1 * variance * n / (n - 1)


@pytest.mark.parametrize("fused", [True, False])
def test_a_training_step_matches_pytorch_and_both_paths_agree(fused, monkeypatch):
    if not fused:
        monkeypatch.setattr(layers.TorchBatchNorm, "_fusable", lambda self, x: False)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SHAPE) * 3 + 5).astype(np.float32)
    norm = layers.batch_norm(sync=False, name="norm")
    norm.build(SHAPE)
    gamma, beta = rng.uniform(0.5, 1.5, 5), rng.standard_normal(5)
    running_mean, running_var = rng.standard_normal(5), rng.uniform(0.5, 2.0, 5)
    for variable, value in zip(
        (norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance),
        (gamma, beta, running_mean, running_var),
        strict=True,
    ):
        variable.assign(value.astype(np.float32))
    upstream = rng.standard_normal(SHAPE).astype(np.float32)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = norm(inputs, training=True)
        loss = tf.reduce_sum(out * upstream)
    grads = tape.gradient(loss, [inputs, norm.gamma, norm.beta])

    expected, expected_mean, expected_var = _torch_batch_norm(
        x.astype(np.float64), gamma, beta, running_mean, running_var
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.moving_mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.moving_variance.numpy(), expected_var, rtol=1e-5, atol=1e-6)
    # The gradients of y = gamma * x_hat + beta, through the batch statistics (PyTorch's backward).
    x_hat = (expected - beta) / gamma
    n = x.size // x.shape[-1]
    d_hat = upstream * gamma
    variance = ((x - x.mean(axis=(0, 1, 2))) ** 2).mean(axis=(0, 1, 2))
    d_x = (n * d_hat - d_hat.sum(axis=(0, 1, 2)) - x_hat * (d_hat * x_hat).sum(axis=(0, 1, 2))) / (
        n * np.sqrt(variance + 1e-5)
    )
    np.testing.assert_allclose(grads[0].numpy(), d_x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[1].numpy(), (upstream * x_hat).sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[2].numpy(), upstream.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)


def test_the_fused_path_is_taken_for_frames_of_one_replica():
    norm = layers.batch_norm(sync=True, name="norm")
    assert norm._fusable(tf.zeros(SHAPE))  # synchronised, but a single replica: nothing to all-reduce
    assert not norm._fusable(tf.zeros((2, 5)))
