"""The training model: variants, gradient paths, robustness, and serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf.generator import ReconstructionModule
from coseg_tf.model import CosegModel, build_model


def _config(variant="full"):
    return config_lib.load_config(
        config_lib.packaged_config_path("tiny"), [f"model_params.variant={variant}"]
    )


def _frames(seed=0, batch=2):
    rng = np.random.default_rng(seed)
    return {
        "source": tf.constant(rng.uniform(size=(batch, 64, 64, 3)), tf.float32),
        "target": tf.constant(rng.uniform(size=(batch, 64, 64, 3)), tf.float32),
    }


@pytest.mark.parametrize("variant,expect_gradient", [("full", False), ("v_backprop", True)])
def test_visibility_gradient_to_the_target_background(variant, expect_gradient):
    model = build_model(_config(variant), seed=0)
    frames = _frames()
    target = tf.Variable(frames["target"])
    with tf.GradientTape() as tape:
        out = model({"source": frames["source"], "target": target}, training=False)
        visibility = tf.reduce_sum(out["visibility"])
    grad = tape.gradient(visibility, target)
    has_gradient = grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
    assert has_gradient is expect_gradient


@pytest.mark.parametrize("variant,uses_motion", [("naive", False), ("full", True)])
def test_naive_variant_bypasses_the_motion_model(variant, uses_motion):
    model = build_model(_config(variant), seed=0)
    with tf.GradientTape() as tape:
        out = model(_frames(), training=False)
        prediction = tf.reduce_sum(out["prediction"])
    grad = tape.gradient(prediction, model.segmenter.shift.kernel)
    moves = grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
    assert moves is uses_motion
    assert ("deformation" in out) is uses_motion


@pytest.mark.parametrize(
    "affine", [np.zeros((2, 2)), np.full((2, 2), np.nan), np.array([[1.0, 2.0], [2.0, 4.0]])]
)
def test_singular_or_nan_affine_gives_a_finite_deformation(affine):
    generator = ReconstructionModule(
        num_segments=2, block_expansion=8, max_features=16, num_down_blocks=1, num_bottleneck_blocks=1
    )
    segmentation = tf.nn.softmax(tf.random.normal((1, 16, 16, 3)), axis=-1)
    seg = {
        "segmentation": segmentation,
        "shift": tf.zeros((1, 2, 2)),
        "affine": tf.constant(np.broadcast_to(affine, (1, 2, 2, 2)), tf.float32),
    }
    out = generator({"source": tf.random.uniform((1, 32, 32, 3)), "seg_source": seg, "seg_target": seg})
    for key in ("deformation", "deformed", "prediction"):
        assert np.all(np.isfinite(out[key].numpy())), key


def test_keras_round_trip_gives_the_same_outputs(tmp_path):
    model = build_model(_config(), seed=0)
    frames = _frames()
    path = str(tmp_path / "coseg.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, CosegModel)
    a = model(frames, training=False)
    b = loaded(frames, training=False)
    for key in ("prediction", "deformation", "visibility"):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, err_msg=key)
    np.testing.assert_allclose(a["seg_source"]["segmentation"], b["seg_source"]["segmentation"], atol=1e-6)


def test_every_module_round_trips_its_config():
    model = build_model(_config(), seed=0)
    for module in (
        model,
        model.segmenter,
        model.generator,
        model.perceptual,
        model.segmenter.predictor,
        model.generator.bottleneck[0],
        model.generator.first,
    ):
        clone = type(module).from_config(module.get_config())
        assert clone.get_config() == module.get_config(), type(module).__name__


@pytest.mark.parametrize("kernel_size", [1, 3, 7])
def test_first_kernel_size_bounds_what_a_warped_feature_sees(kernel_size):
    # With the warp at full resolution, a source feature sees only kernel_size^2 pixels: a
    # background pixel next to a limb then carries nothing of the limb (configs/synthetic.yaml).
    generator = ReconstructionModule(
        num_segments=2,
        block_expansion=4,
        num_down_blocks=0,
        num_bottleneck_blocks=0,
        first_kernel_size=kernel_size,
    )
    image = np.random.default_rng(0).uniform(size=(1, 16, 16, 3)).astype(np.float32)
    poked = image.copy()
    poked[0, 8, 8] += 1.0
    changed = np.any(generator.encode(poked).numpy() != generator.encode(image).numpy(), axis=-1)[0]
    rows, cols = np.nonzero(changed)
    reach = kernel_size // 2
    assert changed[8, 8]
    assert rows.min() == cols.min() == 8 - reach and rows.max() == cols.max() == 8 + reach
    clone = ReconstructionModule.from_config(generator.get_config())
    assert clone.first_kernel_size == kernel_size
