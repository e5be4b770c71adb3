"""Foreground IoU: O = sum of the K part channels > 0.5 against the ground-truth mask."""

import numpy as np
import pytest

from coseg_tf.metrics import FOREGROUND_COUNTS, foreground_counts, foreground_iou, foreground_probability, iou


def _segmentation(foreground: np.ndarray, num_parts: int = 3) -> np.ndarray:
    """A soft segmentation whose foreground mass is `foreground`, spread over the parts."""
    seg = np.zeros(foreground.shape + (num_parts + 1,), np.float32)
    seg[..., 0] = 1.0 - foreground
    for k in range(num_parts):
        seg[..., k + 1] = foreground / num_parts
    return seg


def test_perfect_and_disjoint_masks():
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 2:5, 2:5] = True
    assert foreground_iou(_segmentation(mask.astype(np.float32)), mask) == pytest.approx([1.0, 1.0])
    assert foreground_iou(_segmentation((~mask).astype(np.float32)), mask) == pytest.approx([0.0, 0.0])


def test_partial_overlap_is_intersection_over_union():
    truth = np.zeros((1, 4, 4), bool)
    truth[0, :, :2] = True  # 8 pixels
    predicted = np.zeros((1, 4, 4), np.float32)
    predicted[0, :, 1:3] = 1.0  # 8 pixels, 4 shared
    assert foreground_iou(_segmentation(predicted), truth)[0] == pytest.approx(4 / 12)


def test_threshold_is_on_the_summed_parts_not_on_one_part():
    # Every part below 0.5 but their sum above: foreground.
    mask = np.ones((1, 2, 2), bool)
    seg = _segmentation(np.full((1, 2, 2), 0.9, np.float32), num_parts=3)
    assert seg[..., 1:].max() < 0.5
    assert foreground_iou(seg, mask)[0] == pytest.approx(1.0)
    seg = _segmentation(np.full((1, 2, 2), 0.4, np.float32))
    assert foreground_iou(seg, mask)[0] == pytest.approx(0.0)


def test_low_resolution_segmentation_is_resized_to_the_mask():
    mask = np.zeros((1, 8, 8), bool)
    mask[0, :, :4] = True
    low = np.zeros((1, 4, 4), np.float32)
    low[0, :, :2] = 1.0
    assert foreground_probability(_segmentation(low), (8, 8)).shape == (1, 8, 8)
    assert foreground_iou(_segmentation(low), mask)[0] == pytest.approx(1.0)


def test_empty_prediction_and_truth_count_as_a_match_and_shapes_are_checked():
    assert iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        iou(np.zeros((3, 3), bool), np.zeros((4, 3), bool))


def test_foreground_counts_split_false_fg_into_halo_and_far():
    truth = np.zeros((1, 10, 10), bool)
    truth[0, 3:6, 3:6] = True  # 9 px
    predicted = truth.copy()
    predicted[0, 3:6, 6] = True  # a 1 px halo column: 3 px, next to the mask
    predicted[0, 6, 6] = True  # diagonal neighbour of the corner: still the halo
    predicted[0, 9, 0] = True  # far from the mask
    predicted[0, 4, 4] = False  # one missed pixel
    counts = dict(zip(FOREGROUND_COUNTS, foreground_counts(predicted, truth).tolist(), strict=True))
    assert counts == {
        "intersection": 8,
        "union": 9 + 5,
        "predicted": 8 + 5,
        "truth": 9,
        "false_fg_near_truth": 4,
    }
    with pytest.raises(ValueError, match="shapes differ"):
        foreground_counts(predicted[:, 1:], truth)
