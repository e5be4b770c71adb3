"""The perceptual loss (Eq. 6): its terms, and a VGG that stops at the last weighted layer."""

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf.losses import PerceptualLoss


def _images(seed=0):
    rng = np.random.default_rng(seed)
    return (
        tf.constant(rng.uniform(size=(2, 32, 32, 3)), tf.float32),
        tf.constant(rng.uniform(size=(2, 32, 32, 3)), tf.float32),
    )


def test_zero_weighted_layers_are_not_built():
    loss = PerceptualLoss(scales=[1], layer_weights=[10, 10, 0, 0, 0], vgg_weights="none")
    convs = [layer.name for layer in loss.vgg.layers if "conv" in layer.name]
    assert convs == ["block1_conv1", "block1_conv2", "block2_conv1"]


def test_a_truncated_loss_is_the_weighted_sum_of_its_layers():
    prediction, target = _images()
    tf.keras.utils.set_random_seed(0)
    shallow = float(
        PerceptualLoss(scales=[1, 0.5], layer_weights=[10, 5, 0, 0, 0], vgg_weights="none")(
            prediction, target
        )
    )
    # The same random VGG (same seed) with one layer weighted at a time.
    tf.keras.utils.set_random_seed(0)
    first = float(
        PerceptualLoss(scales=[1, 0.5], layer_weights=[10, 0, 0, 0, 0], vgg_weights="none")(
            prediction, target
        )
    )
    tf.keras.utils.set_random_seed(0)
    second = float(
        PerceptualLoss(scales=[1, 0.5], layer_weights=[0, 5, 0, 0, 0], vgg_weights="none")(prediction, target)
    )
    assert first > 0 and second > 0
    np.testing.assert_allclose(shallow, first + second, rtol=1e-5)


def test_identical_images_have_zero_loss():
    prediction, _ = _images()
    loss = PerceptualLoss(scales=[1, 0.5], layer_weights=[1, 1, 1, 0, 0], vgg_weights="none")
    assert float(loss(prediction, prediction)) == 0.0


@pytest.mark.parametrize("weights", [[0, 0, 0, 0, 0], [1, 1]])
def test_bad_layer_weights_are_refused(weights):
    with pytest.raises(ValueError, match="perceptual layer weight"):
        PerceptualLoss(layer_weights=weights, vgg_weights="none")


def test_warps_drawn_from_one_stateless_seed_agree_and_have_the_set_spread():
    from coseg_tf import task
    from coseg_tf.losses import EquivarianceTransform, random_warp

    seed = tf.constant([3, 7], tf.int64)
    theta, tps = random_warp(4096, 0.05, 0.005, 5, seed=seed)
    again, _ = random_warp(4096, 0.05, 0.005, 5, seed=seed)
    other, _ = random_warp(4096, 0.05, 0.005, 5, seed=tf.constant([3, 8], tf.int64))
    np.testing.assert_array_equal(theta, again)
    assert not np.array_equal(theta, other)
    assert theta.shape == (4096, 2, 3) and tps.shape == (4096, 1, 25)
    np.testing.assert_allclose(np.mean(theta, 0), np.eye(2, 3), atol=0.005)
    np.testing.assert_allclose(np.std(theta, 0), np.full((2, 3), 0.05), rtol=0.05)
    np.testing.assert_allclose(np.std(tps), 0.005, rtol=0.05)
    # The training task's warps of a step are these, from (seed, step).
    params = {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5}
    np.testing.assert_array_equal(task.global_transform(3, 7, 4096, params)[0], theta)
    # The model's own draw (no transform given) is the same distribution, stateful.
    warp = EquivarianceTransform.random(8, 0.05, 0.005, 5, seed=0)
    assert warp.theta.shape == (8, 2, 3) and warp.control_params.shape == (8, 1, 25)
