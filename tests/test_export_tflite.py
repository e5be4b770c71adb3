"""The TFLite/LiteRT models: builtin ops only, delegate-friendly segmenter graphs, agreement with Keras.

Agreement is measured on the tiny model fitted to synthetic puppets (see
`coseg_tf.export.testing`: a random-init segmenter has near-uniform soft maps whose argmax
is meaningless), on puppet frames it did not see.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import geometry, inference, model_files
from coseg_tf.export import testing, tflite, verify

SIZE = (64, 64)


@pytest.fixture(scope="module")
def exported(export_session):
    return testing.full_export(export_session)


@pytest.fixture(scope="module")
def model(exported):
    return model_files.load_model(exported["run"]["keras_path"])


def _read(exported, kind, variant):
    path = os.path.join(exported["output_dir"], "tflite", tflite.file_name("coseg", kind, variant, SIZE))
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(11)
    out = []
    for _ in range(6):
        colours = testing.puppet_colours(rng)
        out.append([testing.render_puppet(64, rng, colours)[0] for _ in range(2)])
    return np.asarray(out, np.float32)


@pytest.mark.parametrize("variant", tflite.SEGMENTER_VARIANTS)
def test_segmenter_graph_is_builtin_and_delegate_friendly(exported, variant):
    report = tflite.inspect_model(_read(exported, "segmenter", variant))
    assert not [op for op in report.ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    assert "GATHER_ND" not in report.ops
    assert report.max_rank <= 4, report.high_rank_tensors[:3]
    assert tflite.delegate_problems(report) == []
    signature = report.signatures[tflite.SEGMENT_SIGNATURE]
    assert signature == {"inputs": ["image"], "outputs": ["affine", "segmentation", "shift"]}
    if variant == "int8":
        # Fully quantised: every conv runs on int8 tensors (float only at the interface).
        assert "QUANTIZE" in report.ops and "DEQUANTIZE" in report.ops


def test_float_segmenter_runs_as_one_xnnpack_partition(exported):
    # Every op of the float segmenter is taken by XNNPACK (no hand-offs to builtin kernels).
    interpreter = inference.LiteRunner(_read(exported, "segmenter", "float32"), "segment").interpreter
    interpreter.allocate_tensors()
    nodes = [op["op_name"] for op in interpreter._get_ops_details()]
    assert nodes.count("DELEGATE") == 1


@pytest.mark.parametrize("variant", tflite.PART_SWAP_VARIANTS)
def test_part_swap_graph_is_builtin(exported, variant):
    report = tflite.inspect_model(_read(exported, "part_swap", variant))
    assert not [op for op in report.ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    assert "GATHER_ND" not in report.ops and "GATHER" in report.ops  # the flat-gather sampler
    assert report.signatures[tflite.PART_SWAP_SIGNATURE]["inputs"] == ["part_mask", "source", "target"]


def test_input_size_is_fixed_and_named(exported):
    interpreter = inference.LiteRunner(_read(exported, "segmenter", "float32"), "segment").interpreter
    (detail,) = interpreter.get_signature_runner("segment").get_input_details().values()
    assert list(detail["shape"]) == [1, 64, 64, 3] and detail["dtype"] == np.float32


@pytest.mark.parametrize(
    "variant,threshold",
    [("float32", 1e-4), ("float16", 0.98), ("dynamic_int8", 0.98), ("int8", 0.95)],
)
def test_segmenter_agrees_with_keras(exported, model, pairs, variant, threshold):
    check = verify.verify_tflite_segmenter(_read(exported, "segmenter", variant), variant, model, pairs[:, 1])
    if variant == "float32":
        assert check.details["segmentation_max_diff"] <= threshold
        assert check.value <= threshold
    else:
        assert check.details["label_agreement"] >= threshold
    assert check.passed
    print(variant, check.details)


@pytest.mark.parametrize("variant", tflite.PART_SWAP_VARIANTS)
def test_part_swap_agrees_with_keras(exported, model, pairs, variant):
    check = verify.verify_tflite_part_swap(_read(exported, "part_swap", variant), variant, model, pairs)
    assert check.passed, check
    if variant == "float32":
        assert check.details["max_diff"] <= 1e-4


def test_agreement_is_measured_on_confident_maps(model, pairs):
    # The premise of the label checks: the fitted model's maps are sharp, not near-uniform.
    segmentation = verify.keras_segment(model, pairs[:, 1])["segmentation"]
    assert np.mean(np.max(segmentation, axis=-1)) > 0.8


def test_rank_check_catches_rank5_upsampling(model, monkeypatch):
    # tf.repeat (what the up blocks once used) lowers through rank-5 tensors: a segmenter
    # built that way must be refused, so a regression in the model code cannot ship.
    def repeat_upsample(x):
        return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)

    monkeypatch.setattr(geometry, "upsample_nearest_2x", repeat_upsample)
    with pytest.raises(tflite.ConversionError, match="above rank 4"):
        tflite.convert_segmenter(model, "float32", SIZE)


def test_op_checks_flag_gather_nd_and_rank5():
    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.float32, name="image")])
    def bad(image):
        five = tf.reshape(image, (1, 2, 2, 4, 3)) * 2.0
        picked = tf.gather_nd(image, [[0, 1, 1], [0, 2, 3]])
        return {"five": five, "picked": picked}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([bad.get_concrete_function()], bad)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    problems = tflite.delegate_problems(tflite.inspect_model(converter.convert()))
    assert any("GATHER_ND" in p for p in problems)
    assert any("above rank 4" in p for p in problems)


def test_int8_needs_calibration_frames(model):
    with pytest.raises(tflite.ConversionError, match="representative"):
        tflite.convert_segmenter(model, "int8", SIZE, representative=None)
    with pytest.raises(ValueError, match="variant"):
        tflite.convert_part_swap(model, "int8", SIZE)


def test_affine_difference_is_scaled_by_its_magnitude():
    """float32 rounding grows with |A|: affine diffs are relative above 1, absolute below."""
    segmentation = np.full((1, 4, 4, 3), 1 / 3, np.float32)
    reference = {"segmentation": segmentation, "shift": np.zeros((1, 1, 2), np.float32)}
    large = {**reference, "affine": np.array([[[[20.0, -40.0], [20.0, 40.0]]]])}
    small = {**reference, "affine": np.array([[[[0.5, 0.0], [0.0, 1.0]]]])}
    for ref, expected in ((large, 1e-4 / 20), (small, 1e-4)):
        got = {**ref, "affine": ref["affine"] + 1e-4}
        numbers = verify.segmentation_agreement(ref, got)
        np.testing.assert_allclose(numbers["affine_max_scaled_diff"], expected, rtol=1e-6)


def test_spatial_sums_stay_float32_accurate_in_litert_at_256x256():
    """LiteRT adds up a reduction sequentially: over 256x256 positions one reduction drifted
    by 3.8e-6 of the total here, 20x more than `geometry.spatial_sum` (rows, then columns);
    with the cancelling terms of a trained affine head, that was 3.5e-4 against 4.8e-6."""
    spec = tf.TensorSpec([1, 256, 256, 4], tf.float32, name="values")

    def sums(values):
        return {"two_stage": geometry.spatial_sum(values), "one_stage": tf.reduce_sum(values, axis=(1, 2))}

    run = inference.LiteRunner(tflite._convert(sums, [spec], "sums", lambda converter: None), "sums")
    values = np.random.default_rng(3).uniform(0.0, 1.0, (1, 256, 256, 4)).astype(np.float32)
    exact = values.astype(np.float64).sum(axis=(1, 2))
    got = run(values=values)
    error = {key: float(np.max(np.abs(got[key] - exact) / exact)) for key in got}
    assert error["two_stage"] < 1e-6, error
    # the reason for the two stages: the single reduction is far off in this runtime
    assert error["one_stage"] > 10 * error["two_stage"], error
