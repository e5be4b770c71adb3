"""coseg_tf.inference: one segmenter interface over every model file, inputs, keypoints, K mismatches.

The model is export/testing's tiny puppet model (segmentation fitted to the puppets' part
labels, so its maps are sharp and label agreement between backends is meaningful).
"""

import json
import os

import numpy as np
import pytest

from coseg_tf import config as config_lib
from coseg_tf import inference
from coseg_tf.export import testing


@pytest.fixture(scope="module")
def run(export_session):
    return testing.trained_run(export_session)


@pytest.fixture(scope="module")
def exported(export_session):
    """The run's model as coseg-export wrote it: a SavedModel (with part swap) and a float32 TFLite."""
    out = testing.full_export(export_session)["output_dir"]
    return {
        "saved_model": os.path.join(out, "coseg", "1"),
        "saved_model_base": os.path.join(out, "coseg"),
        "tflite": os.path.join(out, "tflite", "coseg_segmenter_float32_64x64.tflite"),
    }


def puppets(count: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = np.stack([testing.render_puppet(64, rng)[0] for _ in range(count)])
    return (frames * 255 + 0.5).astype(np.uint8)


def config_with_k(run, tmp_path, k: int) -> str:
    config = json.loads(json.dumps(run["config"]))
    config["model_params"]["common_params"]["num_segments"] = k
    path = tmp_path / f"k{k}.yaml"
    config_lib.save_config(config, str(path))
    return str(path)


def test_every_model_file_gives_the_same_labels(run, exported):
    images = puppets(5)
    segmenters = {
        "run dir": inference.load_segmenter(run["run_dir"]),
        "checkpoint": inference.load_segmenter(run["run_dir"] + "/checkpoints", run["config_path"]),
        "saved_model": inference.load_segmenter(exported["saved_model"]),
        "saved_model base": inference.load_segmenter(exported["saved_model_base"]),
        "tflite": inference.load_segmenter(exported["tflite"]),
    }
    assert type(segmenters["saved_model"]) is inference.SavedModelSegmenter
    assert type(segmenters["tflite"]) is inference.TFLiteSegmenter
    reference = segmenters.pop("run dir").segment(images)
    assert reference.soft.shape == (5, 32, 32, 5) and reference.num_segments == 4
    assert reference.frame_size == (64, 64) and reference.input_size == (64, 64)
    # The model is sharp: its labels are the puppets' parts, not noise.
    assert len(np.unique(reference.labels)) == 5
    for name, segmenter in segmenters.items():
        result = segmenter.segment(images)
        assert segmenter.num_segments == 4 and result.frame_size == (64, 64), name
        np.testing.assert_array_equal(result.labels, reference.labels, err_msg=name)
        np.testing.assert_allclose(result.soft, reference.soft, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(result.keypoints, reference.keypoints, atol=1e-2, err_msg=name)


def test_inputs_of_another_size_are_resized_the_same_way_for_every_backend(run, exported):
    import cv2

    images = np.stack([cv2.resize(f, (100, 80), interpolation=cv2.INTER_LINEAR) for f in puppets(3)])
    keras_result = inference.load_segmenter(run["keras_path"]).segment(images)
    for path in (exported["saved_model"], exported["tflite"]):
        result = inference.load_segmenter(path).segment(images)
        np.testing.assert_array_equal(result.labels, keras_result.labels, err_msg=path)
    assert keras_result.input_size == (80, 100)
    assert keras_result.labels_at(80, 100).shape == (3, 80, 100)


def test_keypoints_are_in_pixels_of_the_input():
    # The map's first and last column centres are x = -1 and 1; on an input 4x wider than a
    # 32-column map they are the centres of pixels [0, 4) and [124, 128): 1.5 and 125.5.
    shift = np.array([[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]], np.float32)
    pixels = inference.shift_to_pixels(shift, (32, 32), (64, 128))
    np.testing.assert_allclose(pixels[0], [[1.5, 0.5], [125.5, 62.5], [63.5, 31.5]])


def test_keypoints_follow_the_input_size(run):
    segmenter = inference.load_segmenter(run["keras_path"])
    images = puppets(2)
    small = segmenter.segment(images)
    big = segmenter.segment(np.repeat(np.repeat(images, 2, axis=1), 3, axis=2))  # 128x192, exact
    expected = (small.keypoints + 0.5) * np.array([3.0, 2.0]) - 0.5
    np.testing.assert_allclose(big.keypoints, expected, atol=0.05)


def test_image_layouts_and_value_ranges(run):
    segmenter = inference.load_segmenter(run["keras_path"])
    image = puppets(1)[0]
    one = segmenter.segment(image)
    assert one.labels.shape == (1, 32, 32)
    as_float = segmenter.segment(image.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(as_float.labels, one.labels)
    with pytest.raises(inference.InputError, match=r"\[0, 1\].*uint8"):
        segmenter.segment(image.astype(np.float32))  # 0-255 floats
    with pytest.raises(inference.InputError, match="RGB; got shape"):
        segmenter.segment(image[..., :2])
    with pytest.raises(inference.InputError, match="uint8.*float"):
        segmenter.segment(image.astype(np.int64))


def test_center_crop_keeps_the_middle():
    image = np.zeros((1, 40, 100, 3), np.uint8)
    image[:, :, 30:70] = 255  # a 40x40 white square in the middle of a black frame
    assert inference.crop_box(40, 100, (64, 64)) == (0, 30, 40, 40)
    assert inference.fit_frames(image, (64, 64), crop="center").min() == 1.0
    assert inference.fit_frames(image, (64, 64), crop="none").min() == 0.0
    with pytest.raises(inference.InputError, match="crop"):
        inference.fit_frames(image, (64, 64), crop="left")


@pytest.mark.parametrize("kind", ["keras", "checkpoint", "tflite", "saved_model"])
def test_a_config_with_another_k_is_refused_naming_both(run, exported, tmp_path, kind):
    config = config_with_k(run, tmp_path, 5)
    path = {
        "keras": run["keras_path"],
        "checkpoint": run["run_dir"] + "/checkpoints",
        "tflite": exported["tflite"],
        "saved_model": exported["saved_model"],
    }[kind]
    with pytest.raises(inference.ModelMismatchError, match=r"has K = 4 parts, config.* says K = 5"):
        inference.load_segmenter(path, config)


def test_original_checkpoint_with_another_k_is_refused_naming_both(parity_dir, parity_config):
    path = parity_config(num_segments=6)  # the checkpoint has 4
    with pytest.raises(
        inference.ModelMismatchError, match=r"checkpoint has K = 4 parts, config .* says K = 6"
    ):
        inference.load_segmenter(str(parity_dir / "full.pth.tar"), str(path))


def test_missing_model_path(tmp_path):
    with pytest.raises(inference.ModelLoadError, match="not found"):
        inference.load_segmenter(str(tmp_path / "nothing.keras"))


def test_batch_size_is_the_users_except_for_a_fixed_batch_model():
    keras_segmenter = inference.Segmenter()
    keras_segmenter.set_batch_size(64)
    assert keras_segmenter.batch_size == 64  # not capped at the default 16
    lite = object.__new__(inference.TFLiteSegmenter)
    lite.set_batch_size(64)
    assert lite.batch_size == 1
    with pytest.raises(inference.InputError, match="at least 1"):
        keras_segmenter.set_batch_size(0)
