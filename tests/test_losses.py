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
