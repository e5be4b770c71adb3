"""The evaluation metrics against hand-computed cases (coseg_tf/metrics.py, second half)."""

import math

import numpy as np
import pytest

from coseg_tf import metrics


def one_hot(labels: np.ndarray, channels: int) -> np.ndarray:
    return np.eye(channels, dtype=np.float32)[labels]


# ----------------------------------------------------------------------------- centroids


def test_centroid_of_one_pixel_and_of_two():
    seg = np.zeros((1, 3, 4, 3), np.float32)
    seg[..., 0] = 1.0
    seg[0, 1, 2] = [0, 1, 0]  # part 1 at row 1, column 2
    seg[0, 0, 0] = [0, 0, 1]  # part 2 at (0, 0) and (0, 2)
    seg[0, 0, 2] = [0, 0, 1]
    got = metrics.part_centroids(seg, eps=0.0)
    np.testing.assert_allclose(got[0], [[2.0, 1.0], [1.0, 0.0]])


def test_centroid_is_soft_mask_weighted_and_ignores_background():
    seg = np.zeros((1, 3, 4, 2), np.float32)
    seg[..., 0] = 1.0  # background mass everywhere must not move the centroid
    seg[0, 0, 0] = [0.75, 0.25]
    seg[0, 2, 3] = [0.25, 0.75]
    got = metrics.part_centroids(seg, eps=0.0)
    # (0.25 * (0, 0) + 0.75 * (3, 2)) / 1
    np.testing.assert_allclose(got[0, 0], [2.25, 1.5])


def test_empty_part_sits_at_the_image_centre_with_the_original_epsilon():
    seg = one_hot(np.zeros((1, 5, 7), int), 3)
    seg[0, 0, 0] = [0, 1, 0]
    got = metrics.part_centroids(seg)  # part 2 has no mass: eps only
    np.testing.assert_allclose(got[0, 1], [3.0, 2.0], atol=1e-9)
    # part 1: unit mass at (0, 0) plus eps on all 35 pixels (x sums to 5 * 21, y to 7 * 10)
    eps = metrics.CENTROID_EPS
    np.testing.assert_allclose(got[0, 0], [105 * eps / (1 + 35 * eps), 70 * eps / (1 + 35 * eps)], rtol=1e-6)


def test_upsampling_uses_half_pixel_centres():
    seg = np.zeros((1, 1, 2, 2), np.float32)
    seg[0, 0, :, 1] = [0.0, 1.0]
    seg[0, 0, :, 0] = [1.0, 0.0]
    up = metrics.upsample_segmentation(seg, (1, 4))
    # Output pixel centres at input x = -0.25, 0.25, 0.75, 1.25 (clamped at the borders).
    np.testing.assert_allclose(up[0, 0, :, 1], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(up[..., 0] + up[..., 1], 1.0, atol=1e-6)


def test_upsampling_many_channels_and_identity_size():
    seg = np.random.default_rng(0).random((2, 3, 3, 600)).astype(np.float32)
    assert metrics.upsample_segmentation(seg, (3, 3)) is seg
    up = metrics.upsample_segmentation(seg, (6, 6))
    assert up.shape == (2, 6, 6, 600)
    np.testing.assert_allclose(up.mean(axis=(1, 2)), seg.mean(axis=(1, 2)), atol=0.05)


# ----------------------------------------------------------------------------- regression


def affine_landmarks(features: np.ndarray, rng: np.random.Generator, num_landmarks: int = 3) -> np.ndarray:
    weights = rng.normal(size=(features.shape[1], num_landmarks * 2))
    return (features @ weights + 5.0).reshape(len(features), num_landmarks, 2)


def test_perfect_prediction_has_zero_error():
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 64, (40, 4))
    landmarks = affine_landmarks(features, rng)
    pred, fitted = metrics.landmark_regression(features[:30], landmarks[:30], features[30:], landmarks[30:])
    assert fitted.all()
    scores = metrics.landmark_errors(pred, landmarks[30:], (64, 64), np.full(10, 32.0))
    assert scores["mae_sum_256"] == pytest.approx(0.0, abs=1e-6)
    assert scores["nme"] == pytest.approx(0.0, abs=1e-8)
    assert scores["num_coordinates_scored"] == 6


def test_shifted_prediction_sums_per_coordinate_errors_at_256():
    rng = np.random.default_rng(1)
    features = rng.uniform(0, 64, (40, 4))
    landmarks = affine_landmarks(features, rng)
    test = landmarks[30:].copy()
    test[..., 0] += 3.0  # every test landmark 3 px further right than the fitted relation
    test[..., 1] -= 1.0  # and 1 px higher
    pred, _ = metrics.landmark_regression(features[:30], landmarks[:30], features[30:], test)
    # 64x64 images: errors x4 at 256; 3 landmarks x (3 + 1) px x 4.
    scores = metrics.landmark_errors(pred, test, (64, 64), np.full(10, 10.0))
    assert scores["mae_sum_256"] == pytest.approx(3 * (3.0 + 1.0) * 4.0)
    np.testing.assert_allclose(np.array(scores["mae_per_coordinate_256"]), [[12.0, 4.0]] * 3)
    assert scores["mae_mean_pixels"] == pytest.approx(2.0)
    assert scores["nme"] == pytest.approx(math.hypot(3.0, 1.0) / 10.0)
    # Non-square: x scaled by 256 / width, y by 256 / height.
    wide = metrics.landmark_errors(pred, test, (64, 128))
    assert wide["mae_sum_256"] == pytest.approx(3 * (3.0 * 2.0 + 1.0 * 4.0))


def test_missing_landmarks_are_left_out_of_fit_and_score():
    rng = np.random.default_rng(2)
    features = rng.uniform(0, 64, (40, 4))
    landmarks = affine_landmarks(features, rng)
    train = landmarks[:30].copy()
    train[0, 1, 0] = np.nan  # its true value must not be used ...
    corrupted = train.copy()
    corrupted[0, 1, 0] = 1e6  # ... so a missing coordinate behaves as if any value were there
    pred_missing, _ = metrics.landmark_regression(features[:30], train, features[30:], landmarks[30:])
    keep = np.ones(30, bool)
    keep[0] = False
    pred_without_row, _ = metrics.landmark_regression(
        features[:30][keep], landmarks[:30][keep], features[30:], landmarks[30:]
    )
    np.testing.assert_allclose(pred_missing[:, 1, 0], pred_without_row[:, 1, 0], atol=1e-8)
    # The other coordinate of that landmark still uses row 0 (the original drops per coordinate).
    assert np.isfinite(pred_missing).all()

    test = landmarks[30:].copy()
    test[0, 2] = np.nan  # a missing test landmark ...
    pred = pred_missing.copy()
    pred[0, 2] = 1e6  # ... is not scored even when its prediction is absurd
    scores = metrics.landmark_errors(pred, test, (64, 64), np.full(10, 1.0))
    assert scores["mae_sum_256"] == pytest.approx(0.0, abs=1e-5)
    assert scores["nme_num_landmarks"] == 10 * 3 - 1


def test_a_coordinate_missing_in_every_train_row_is_not_fitted_nor_summed():
    rng = np.random.default_rng(3)
    features = rng.uniform(0, 64, (20, 2))
    landmarks = affine_landmarks(features, rng, num_landmarks=2)
    train = landmarks[:15].copy()
    train[:, 1, 1] = np.nan
    pred, fitted = metrics.landmark_regression(features[:15], train, features[15:], landmarks[15:])
    assert fitted.tolist() == [[True, True], [True, False]]
    assert np.isnan(pred[:, 1, 1]).all()
    scores = metrics.landmark_errors(pred, landmarks[15:], (256, 256))
    assert scores["num_coordinates_scored"] == 3
    assert scores["mae_sum_256"] == pytest.approx(0.0, abs=1e-6)


def test_fit_linear_underdetermined_is_minimum_norm_on_centred_data():
    features = np.array([[1.0, 2.0], [3.0, 6.0]])  # collinear columns, 2 rows
    weights, bias = metrics.fit_linear(features, np.array([1.0, 2.0]))
    # Centred: x = +-(1, 2), y = +-0.5 -> minimum-norm w = 0.5 * (1, 2) / 5.
    np.testing.assert_allclose(weights, [0.1, 0.2])
    assert bias == pytest.approx(1.5 - (2.0 * 0.1 + 4.0 * 0.2))


def test_disjoint_identities():
    metrics.check_disjoint_identities(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="1 identities are in both"):
        metrics.check_disjoint_identities(["a", "b"], ["b", "c"])


def test_normalisers():
    points = np.array([[[0.0, 0.0], [3.0, 4.0], [np.nan, 1.0]], [[1.0, 1.0], [np.nan, np.nan], [2.0, 2.0]]])
    np.testing.assert_allclose(metrics.bbox_diagonal(points), [5.0, math.sqrt(2.0)])
    masks = np.zeros((2, 6, 5), bool)
    masks[0, 1:4, 2] = True
    masks[0, 5, 0] = True
    np.testing.assert_allclose(metrics.mask_height(masks), [5.0, np.nan])


# ----------------------------------------------------------------------------- NMI and ARI


def test_contingency_table_counts_and_pads():
    table = metrics.contingency_table(np.array([[0, 0], [1, 2]]), np.array([[1, 1], [0, 1]]))
    np.testing.assert_array_equal(table, [[0, 2], [1, 0], [0, 1]])
    total = metrics.add_tables(table, metrics.contingency_table(np.array([0]), np.array([3])))
    assert total.shape == (3, 4) and total.sum() == 5 and total[0, 3] == 1
    with pytest.raises(ValueError):
        metrics.contingency_table(np.array([-1]), np.array([0]))


def test_perfect_and_permuted_labels_score_one():
    truth = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    for predicted in (truth, np.array([5, 5, 0, 0, 7, 7, 7, 1])):
        table = metrics.contingency_table(truth, predicted)
        assert metrics.normalized_mutual_information(table) == pytest.approx(1.0)
        assert metrics.adjusted_rand_index(table) == pytest.approx(1.0)


def test_permutation_invariance_of_an_imperfect_prediction():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 500)
    predicted = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500))
    permuted = np.array([2, 0, 3, 1])[predicted]
    a, b = metrics.contingency_table(truth, predicted), metrics.contingency_table(truth, permuted)
    assert 0.2 < metrics.normalized_mutual_information(a) < 0.9
    assert metrics.normalized_mutual_information(a) == pytest.approx(metrics.normalized_mutual_information(b))
    assert metrics.adjusted_rand_index(a) == pytest.approx(metrics.adjusted_rand_index(b))
    # and symmetric in the two labelings
    assert metrics.adjusted_rand_index(a.T) == pytest.approx(metrics.adjusted_rand_index(a))


def test_hand_computed_nmi_and_ari():
    # truth [0 0 1 1], predicted [0 0 0 1]: table [[2, 0], [1, 1]]
    table = metrics.contingency_table(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
    h_truth = math.log(2)
    h_pred = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mutual = 0.5 * math.log(4 * 2 / (2 * 3)) + 0.25 * math.log(4 / (2 * 3)) + 0.25 * math.log(4 / 2)
    assert metrics.normalized_mutual_information(table) == pytest.approx(mutual / ((h_truth + h_pred) / 2))
    # pairs: index 1, rows 2, cols 3, total 6 -> expected 1, max 2.5 -> ARI 0
    assert metrics.adjusted_rand_index(table) == pytest.approx(0.0)
    # independent halves: NMI 0, ARI (0 - 2/3) / (2 - 2/3) = -0.5
    crossed = metrics.contingency_table(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert metrics.normalized_mutual_information(crossed) == pytest.approx(0.0, abs=1e-12)
    assert metrics.adjusted_rand_index(crossed) == pytest.approx(-0.5)


def test_degenerate_tables():
    single = metrics.contingency_table(np.zeros(5, int), np.zeros(5, int))
    assert metrics.normalized_mutual_information(single) == 1.0
    assert metrics.adjusted_rand_index(single) == 1.0
    # one side a single cluster, the other not: no information shared
    one_side = metrics.contingency_table(np.zeros(4, int), np.array([0, 1, 0, 1]))
    assert metrics.normalized_mutual_information(one_side) == pytest.approx(0.0)
    assert metrics.adjusted_rand_index(one_side) == pytest.approx(0.0)


def test_hand_computed_geometric_nmi():
    # truth [0 0 1 1], predicted [0 0 0 1]: table [[2, 0], [1, 1]]
    table = metrics.contingency_table(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
    h_truth = math.log(2)
    h_pred = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mutual = 0.5 * math.log(4 * 2 / (2 * 3)) + 0.25 * math.log(4 / (2 * 3)) + 0.25 * math.log(4 / 2)
    assert metrics.geometric_nmi(table) == pytest.approx(mutual / math.sqrt(h_truth * h_pred))
    assert metrics.geometric_nmi(table) == pytest.approx(0.34559, abs=1e-5)
    # A prediction that splits one true part in two: I = H(truth) = ln 2, H(pred) = 1.5 ln 2,
    # so sqrt(2/3) here against 0.8 with the arithmetic mean.
    split = metrics.contingency_table(np.array([1, 1, 2, 2]), np.array([0, 3, 5, 5]))
    assert metrics.geometric_nmi(split) == pytest.approx(math.sqrt(2 / 3))
    assert metrics.normalized_mutual_information(split) == pytest.approx(0.8)
    crossed = metrics.contingency_table(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert metrics.geometric_nmi(crossed) == pytest.approx(0.0, abs=1e-12)
    permuted = metrics.contingency_table(np.array([0, 0, 1, 2]), np.array([7, 7, 0, 3]))
    assert metrics.geometric_nmi(permuted) == pytest.approx(1.0)


def test_geometric_nmi_with_a_zero_entropy_side():
    # Both sides one label: they agree.
    assert metrics.geometric_nmi(metrics.contingency_table(np.full(4, 2), np.full(4, 5))) == 1.0
    # One side one label, the other split: 0 / 0 defined as 0 (no shared information).
    for truth, predicted in (
        (np.full(4, 1), np.array([0, 1, 0, 1])),
        (np.array([1, 2, 1, 2]), np.full(4, 3)),
    ):
        assert metrics.geometric_nmi(metrics.contingency_table(truth, predicted)) == 0.0
    with pytest.raises(ValueError, match="empty"):
        metrics.geometric_nmi(np.zeros((2, 2)))


def test_part_nmi_per_frame_scores_the_foreground_of_each_frame():
    truth = np.zeros((4, 2, 4), np.int64)
    predicted = np.zeros((4, 2, 4), np.int64)
    # Frame 0: foreground matched up to renaming; background pixels predicted anyhow.
    truth[0] = [[0, 1, 1, 2], [0, 2, 2, 0]]
    predicted[0] = [[3, 4, 4, 0], [9, 0, 0, 1]]
    # Frame 1: the prediction's background (label 0) splits part 1: sqrt(2/3).
    truth[1] = [[1, 1, 2, 2], [0, 0, 0, 0]]
    predicted[1] = [[0, 3, 5, 5], [4, 4, 4, 4]]
    # Frame 2: one predicted label over two true parts: 0. Frame 3: no foreground.
    truth[2] = [[1, 1, 2, 2], [0, 0, 0, 0]]
    predicted[2] = [[6, 6, 6, 6], [1, 2, 3, 4]]
    scores = metrics.part_nmi_per_frame(truth, predicted)
    np.testing.assert_allclose(scores[:3], [1.0, math.sqrt(2 / 3), 0.0])
    assert np.isnan(scores[3])
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.part_nmi_per_frame(truth, predicted[:, :1])
