"""Parity with the original PyTorch implementation on its golden outputs (to 1e-4 absolute).

Every array of `<case>_io.npz` is compared, with the weights loaded from the `.npz`, from
the `.pth.tar` (read without PyTorch) and, for `full`, from the FOMM-layout checkpoint.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import weights
from coseg_tf.generator import ReconstructionModule
from coseg_tf.losses import EquivarianceTransform, image_pyramid
from coseg_tf.model import CosegModel
from coseg_tf.segmenter import SegmentationModule

ATOL = 1e-4
CASES = ["full", "shift_only"]


def _build(parity_dir, case):
    params = json.loads((parity_dir / "manifest.json").read_text())[case]["model_params"]
    segmenter = SegmentationModule(**params["segmentation_module_params"], name="segmentation_module")
    generator = ReconstructionModule(**params["reconstruction_module_params"], name="reconstruction_module")
    frame = tf.zeros((1, 256, 256, 3))
    seg = segmenter(frame, training=False)
    generator({"source": frame, "seg_source": seg, "seg_target": seg}, training=False)
    return CosegModel(segmenter, generator, perceptual=None, equivariance_weight=10.0)


def _outputs(model, io):
    transform = EquivarianceTransform(
        io["equivariance/theta"], io["equivariance/control_points"], io["equivariance/control_params"]
    )
    out = model(
        {"source": io["input/source"], "target": io["input/target"]}, training=False, transform=transform
    )
    flat = {f"seg_source/{k}": v for k, v in out["seg_source"].items()}
    flat.update({f"seg_target/{k}": v for k, v in out["seg_target"].items()})
    for key in ("segment_motions", "deformation", "deformed", "visibility", "prediction"):
        if key in out:
            flat[f"generator/{key}"] = out[key]
    flat.update(
        {f"pyramid/{k}": v for k, v in image_pyramid(io["input/target"], [1, 0.5, 0.25, 0.125]).items()}
    )
    transformed = out["transformed_seg"]
    flat["equivariance/transformed_frame"] = out["transformed_frame"]
    flat["equivariance/transformed_shift"] = transformed["shift"]
    flat["equivariance/transformed_affine"] = transformed["affine"]
    flat["equivariance/warped_transformed_shift"] = transform.warp_coordinates(transformed["shift"])
    flat["equivariance/jacobian_at_transformed_shift"] = transform.jacobian(transformed["shift"])
    flat.update({f"loss/{k}": v for k, v in out["losses"].items()})
    return flat


def _assert_matches(model, parity_dir, case):
    io = dict(np.load(parity_dir / f"{case}_io.npz"))
    got = _outputs(model, io)
    expected = {
        k: v
        for k, v in io.items()
        if not k.startswith("input/")
        and k not in ("equivariance/theta", "equivariance/control_points", "equivariance/control_params")
    }
    assert expected, "fixture holds no outputs"
    missing = sorted(set(expected) - set(got))
    assert not missing, f"outputs not produced: {missing}"
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(got[key]), value, rtol=0, atol=ATOL, err_msg=key)


@pytest.mark.parametrize("case", CASES)
def test_parity_from_npz(parity_dir, case):
    model = _build(parity_dir, case)
    report = weights.load_original_weights(
        model.segmenter, model.generator, str(parity_dir / f"{case}_weights.npz")
    )
    assert not report.missing and not report.ignored
    _assert_matches(model, parity_dir, case)


@pytest.mark.parametrize("case", CASES)
def test_parity_from_pth_tar_without_torch(parity_dir, case):
    import sys

    model = _build(parity_dir, case)
    weights.load_original_weights(model.segmenter, model.generator, str(parity_dir / f"{case}.pth.tar"))
    assert "torch" not in sys.modules
    _assert_matches(model, parity_dir, case)


def test_parity_from_fomm_layout(parity_dir):
    model = _build(parity_dir, "full")
    report = weights.load_original_weights(
        model.segmenter, model.generator, str(parity_dir / "full_fomm_layout.pth.tar")
    )
    assert not report.missing
    _assert_matches(model, parity_dir, "full")


def test_unbuilt_or_mismatched_model_names_the_key(parity_dir):
    model = _build(parity_dir, "full")
    state = dict(np.load(parity_dir / "full_weights.npz"))
    seg_state = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("segmentation_module/")}
    seg_state["segmentation.weight"] = np.zeros((11, 11, 7, 7), np.float32)
    with pytest.raises(weights.WeightImportError, match="segmentation.weight.*num_segments"):
        weights.assign_state_dict(model.segmenter, seg_state)
    with pytest.raises(weights.WeightImportError, match="'predictor.nope.weight'"):
        weights.assign_state_dict(model.segmenter, {"predictor.nope.weight": np.zeros(3)})
    with pytest.raises(weights.WeightImportError, match="must be built"):
        weights.assign_state_dict(SegmentationModule(num_segments=4), seg_state)
