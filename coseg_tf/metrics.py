"""Segmentation metrics (paper Sec. 4): foreground IoU, landmark regression, part NMI/ARI.

Foreground IoU: the predicted foreground is O = sum_{k=1..K} Y^k, the soft mass of the K part
channels (channel 0 is the background), thresholded at 0.5 after resizing to the ground
truth's size; it is compared with the ground-truth foreground mask.

The evaluation protocol's other figures (landmark regression from part centroids, NMI and
ARI of part labels) are in the second half; `coseg_tf.evaluate` runs them all.
"""

from __future__ import annotations

import numpy as np

from coseg_tf.errors import CosegError


def foreground_probability(segmentation: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """O = sum of the K foreground channels of [N, h, w, K+1] (or [h, w, K+1]), bilinearly resized.

    Resizing the summed map (not a hard label map) keeps the soft boundary of O, so the
    threshold falls between pixels as it would at full resolution.

    Args:
      segmentation: [N, h, w, K+1] (or [h, w, K+1]) soft part maps, channel 0 the background.
      size: (H, W) to resize the foreground map to; None keeps (h, w).

    Returns:
      float32 [N, H, W] (or [H, W]) foreground probability O.
    """
    segmentation = np.asarray(segmentation, np.float32)
    single = segmentation.ndim == 3
    if single:
        segmentation = segmentation[None]
    foreground = segmentation[..., 1:].sum(axis=-1)
    if size is not None and tuple(foreground.shape[1:3]) != tuple(size):
        import cv2

        height, width = size
        foreground = np.stack(
            [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in foreground]
        )
    return foreground[0] if single else foreground


def _boolean_masks(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, bool)
    truth = np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {predicted.shape} vs {truth.shape}")
    return predicted, truth


def iou(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image IoU of boolean masks [N, H, W] (or [H, W]); 1 where both are empty.

    Args:
      predicted: Predicted masks [N, H, W] or [H, W] (cast to bool).
      truth: Ground-truth masks of the same shape (cast to bool).

    Returns:
      [N] IoU per image (a scalar for [H, W] masks).

    Raises:
      ValueError: The two shapes differ.
    """
    predicted, truth = _boolean_masks(predicted, truth)
    axes = (-2, -1)
    intersection = np.logical_and(predicted, truth).sum(axis=axes)
    union = np.logical_or(predicted, truth).sum(axis=axes)
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def foreground_iou(segmentation: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-frame foreground IoU of segmentations [N, h, w, K+1] against masks [N, H, W].

    Returns [N] (a scalar for a single frame); average it over frames for the paper's score.

    Args:
      segmentation: [N, h, w, K+1] (or [h, w, K+1]) soft part maps, channel 0 the background.
      mask: Ground-truth foreground masks [N, H, W] (or [H, W]); the maps are resized to (H, W).
      threshold: Foreground probability above which a pixel counts as foreground.

    Returns:
      [N] IoU per frame.
    """
    mask = np.asarray(mask, bool)
    foreground = foreground_probability(segmentation, mask.shape[-2:])
    return iou(foreground > threshold, mask)


# Pooled pixel counts of `foreground_counts`, in this order.
FOREGROUND_COUNTS = ("intersection", "union", "predicted", "truth", "false_fg_near_truth")


def foreground_counts(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pixel counts over boolean masks [N, H, W], in `FOREGROUND_COUNTS` order (int64 [5]).

    Beyond IoU they split the errors the paper discusses (Sec. 3.2): false fg (predicted, not
    true) and missed foreground; false fg within one pixel of the true mask (its 3x3
    dilation, diagonals included) is a boundary halo, not the background leaking into a part.

    Args:
      predicted: Predicted boolean masks [N, H, W].
      truth: Ground-truth boolean masks of the same shape.

    Returns:
      int64 [5]: intersection, union, predicted, truth and false fg near the truth, summed over images.

    Raises:
      ValueError: The two shapes differ.
    """
    import cv2

    predicted, truth = _boolean_masks(predicted, truth)
    kernel = np.ones((3, 3), np.uint8)
    near = np.stack(
        [cv2.dilate(t.astype(np.uint8), kernel) > 0 for t in truth.reshape((-1,) + truth.shape[-2:])]
    )
    false_fg = np.logical_and(predicted, ~truth).reshape(near.shape)
    return np.array(
        [
            np.logical_and(predicted, truth).sum(),
            np.logical_or(predicted, truth).sum(),
            predicted.sum(),
            truth.sum(),
            np.logical_and(false_fg, near).sum(),
        ],
        np.int64,
    )


# ----------------------------------------------------------------------------- evaluation protocol
#
# The paper's Sec. 4 ("Evaluation Protocol", following Hung et al. 2019) and the clustering
# scores of Choudhury et al. (2021). All functions take the segmenter's soft maps
# [N, h, w, K+1] (channel 0 = background) brought to the ground truth's size by
# `upsample_segmentation`, so every figure is measured at the ground truth's resolution.

# Table 1's MAE is a sum of errors in pixels of 256x256 frames.
PAPER_RESOLUTION = 256
# The original adds this to every part map before normalising it, so that an empty part has a
# centroid (the image centre) instead of a division by zero.
CENTROID_EPS = 1e-6


def upsample_segmentation(segmentation: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Soft maps [N, h, w, C] bilinearly resized to `size` = (H, W), half-pixel centres.

    The original evaluation resizes the same way (`F.interpolate(..., mode="bilinear")`, no
    corner alignment) before taking centroids; hard labels are the argmax of these maps
    ("bilinear-argmax"), which keeps part borders between low-resolution pixels.

    Args:
      segmentation: [N, h, w, C] soft maps.
      size: (H, W) to resize to.

    Returns:
      float32 [N, H, W, C] maps (the input itself, as float32, when already at that size).
    """
    import cv2

    segmentation = np.asarray(segmentation, np.float32)
    height, width = size
    if tuple(segmentation.shape[1:3]) == (height, width):
        return segmentation
    channels = segmentation.shape[-1]
    out = np.empty((segmentation.shape[0], height, width, channels), np.float32)
    for i, maps in enumerate(segmentation):
        # cv2 resizes at most 128 float channels at once here, and drops a trailing axis of 1.
        for start in range(0, channels, 128):
            chunk = cv2.resize(
                np.ascontiguousarray(maps[..., start : start + 128]),
                (width, height),
                interpolation=cv2.INTER_LINEAR,
            )
            out[i, ..., start : start + 128] = chunk.reshape(height, width, -1)
    return out


def part_centroids(segmentation: np.ndarray, eps: float = CENTROID_EPS) -> np.ndarray:
    """Centres of mass M^k of the K foreground maps (paper Sec. 4): [N, K, 2] as (x, y) pixels.

    Each map Y^k (background excluded) plus `eps` is normalised to sum to 1 and its
    coordinate-weighted sum taken, with pixel centres at integer coordinates (pixel (i, j)
    is at x = j, y = i), as the original evaluation does.

    Args:
      segmentation: [N, h, w, K+1] soft part maps, channel 0 the background.
      eps: Added to every pixel of every map before normalising, so an empty map has a centroid.

    Returns:
      float64 [N, K, 2] centroids (x, y) in pixels of the maps.
    """
    segmentation = np.asarray(segmentation, np.float64)
    parts = segmentation[..., 1:] + eps
    mass = parts.sum(axis=(1, 2))  # [N, K]
    ys = np.arange(parts.shape[1], dtype=np.float64)
    xs = np.arange(parts.shape[2], dtype=np.float64)
    x = np.einsum("nhwk,w->nk", parts, xs) / mass
    y = np.einsum("nhwk,h->nk", parts, ys) / mass
    return np.stack([x, y], axis=-1)


class SplitOverlapError(CosegError):
    """The regression's train and test splits share identities."""


def check_disjoint_identities(train_identities: list[str], test_identities: list[str]) -> None:
    """Raises if an identity is in both splits: the regression must be scored on unseen identities.

    Args:
      train_identities: Identities of the regression's train split.
      test_identities: Identities of its test split.

    Raises:
      SplitOverlapError: An identity is in both lists.
    """
    shared = sorted(set(train_identities) & set(test_identities))
    if shared:
        raise SplitOverlapError(
            f"{len(shared)} identities are in both the regression's train and test splits "
            f"(e.g. {shared[:3]}); the protocol scores on identities not fitted on"
        )


def fit_linear(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with a bias: (weights [F], bias), minimum-norm when underdetermined.

    Solved on centred data, so the bias is not penalised by the minimum-norm choice (the
    solution of sklearn's `LinearRegression`, which the original evaluation uses).

    Args:
      features: [N, F] design matrix.
      targets: [N] values to fit.

    Returns:
      (weights [F] float64, bias float).
    """
    features = np.asarray(features, np.float64)
    targets = np.asarray(targets, np.float64)
    x_mean, y_mean = features.mean(axis=0), targets.mean()
    weights = np.linalg.lstsq(features - x_mean, targets - y_mean, rcond=None)[0]
    return weights, float(y_mean - x_mean @ weights)


def landmark_regression(
    train_features: np.ndarray,
    train_landmarks: np.ndarray,
    test_features: np.ndarray,
    test_landmarks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fits one linear model per landmark coordinate on train, predicts test.

    features [N, F] (the flattened part centroids), landmarks [N, J, 2] with NaN for a
    missing coordinate. As the original, the model of coordinate (j, c) is fitted on the
    train rows where that coordinate is present. Returns (predictions [N_test, J, 2],
    fitted [J, 2] bool: False where no train row had that coordinate; its predictions are NaN).

    Args:
      train_features: [N_train, ...] features, flattened to [N_train, F].
      train_landmarks: [N_train, J, 2] landmarks (x, y), NaN where missing.
      test_features: [N_test, ...] features, flattened to [N_test, F].
      test_landmarks: [N_test, J, 2] landmarks; not used (the predictions depend on the features only).

    Returns:
      (predictions float64 [N_test, J, 2], fitted bool [J, 2]).
    """
    train_features = np.asarray(train_features, np.float64).reshape(len(train_features), -1)
    test_features = np.asarray(test_features, np.float64).reshape(len(test_features), -1)
    train_landmarks = np.asarray(train_landmarks, np.float64)
    num_landmarks = train_landmarks.shape[1]
    predictions = np.full((len(test_features), num_landmarks, 2), np.nan)
    fitted = np.zeros((num_landmarks, 2), bool)
    for j in range(num_landmarks):
        for c in range(2):
            rows = np.isfinite(train_landmarks[:, j, c])
            if not rows.any():
                continue
            weights, bias = fit_linear(train_features[rows], train_landmarks[rows, j, c])
            predictions[:, j, c] = test_features @ weights + bias
            fitted[j, c] = True
    return predictions, fitted


def bbox_diagonal(landmarks: np.ndarray) -> np.ndarray:
    """Per image, the diagonal of the bounding box of its present landmarks ([N, J, 2] -> [N]).

    Args:
      landmarks: [N, J, 2] landmarks (x, y), NaN where missing.

    Returns:
      float64 [N] diagonals in pixels; NaN for images with fewer than two present landmarks.
    """
    landmarks = np.asarray(landmarks, np.float64)
    present = np.isfinite(landmarks).all(-1)
    out = np.full(len(landmarks), np.nan)
    for i, (points, keep) in enumerate(zip(landmarks, present, strict=True)):
        if keep.sum() >= 2:
            extent = points[keep].max(0) - points[keep].min(0)
            out[i] = float(np.hypot(*extent))
    return out


def mask_height(masks: np.ndarray) -> np.ndarray:
    """Per image, the height in pixels of the foreground mask's rows ([N, H, W] -> [N]; NaN if empty).

    The puppets' "figure height": it follows the body in every pose, as a bbox diagonal does.

    Args:
      masks: [N, H, W] foreground masks (cast to bool).

    Returns:
      float64 [N] heights in pixels (last minus first foreground row, plus one); NaN for empty masks.
    """
    masks = np.asarray(masks, bool)
    rows = masks.any(axis=-1)
    out = np.full(len(masks), np.nan)
    for i, r in enumerate(rows):
        found = np.flatnonzero(r)
        if len(found):
            out[i] = float(found[-1] - found[0] + 1)
    return out


def landmark_errors(
    predictions: np.ndarray,
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    normalizer: np.ndarray | None = None,
    reference_size: int = PAPER_RESOLUTION,
) -> dict[str, object]:
    """The regression's scores on the test split.

    - `mae_sum_256`: Table 1's figure: for each landmark j and coordinate c the mean absolute
      error over the test images where (j, c) is present, summed over j and c, in pixels of a
      `reference_size` frame (x errors scaled by reference/W, y errors by reference/H; the
      regression is linear, so this equals evaluating at that size);
    - `mae_per_coordinate_256`: those J x 2 means (NaN where a coordinate was never present);
    - `mae_mean_pixels`: the mean absolute error of all present coordinates, native pixels;
    - `nme`: mean over present landmarks (both coordinates) of the Euclidean error divided
      by the image's `normalizer` (images whose normaliser is NaN or 0 are left out).

    Args:
      predictions: [N, J, 2] predicted landmarks (x, y) in pixels of the test images.
      landmarks: [N, J, 2] true landmarks, NaN where missing.
      image_size: (H, W) of the test images, to scale errors to `reference_size`.
      normalizer: [N] per-image distance to divide errors by for `nme` (e.g. `bbox_diagonal`); None
        leaves `nme` out.
      reference_size: Frame size in pixels the `_256` scores are expressed at.

    Returns:
      A dict with `mae_sum_256`, `mae_per_coordinate_256` (J x 2 list), `num_coordinates_scored`,
      `num_coordinates`, `mae_mean_pixels` and `reference_size`; with a `normalizer` also `nme` and
      `nme_num_landmarks`.
    """
    predictions = np.asarray(predictions, np.float64)
    landmarks = np.asarray(landmarks, np.float64)
    abs_error = np.abs(predictions - landmarks)
    present = np.isfinite(landmarks) & np.isfinite(predictions)
    scale = np.array([reference_size / image_size[1], reference_size / image_size[0]])
    counts = present.sum(axis=0)
    per_coordinate = np.where(
        counts > 0, np.where(present, abs_error, 0).sum(0) / np.maximum(counts, 1), np.nan
    )
    per_coordinate_256 = per_coordinate * scale
    out: dict[str, object] = {
        "mae_sum_256": float(np.nansum(per_coordinate_256)),
        "mae_per_coordinate_256": per_coordinate_256.tolist(),
        "num_coordinates_scored": int((counts > 0).sum()),
        "num_coordinates": int(counts.size),
        "mae_mean_pixels": float(abs_error[present].mean()) if present.any() else float("nan"),
        "reference_size": reference_size,
    }
    if normalizer is not None:
        normalizer = np.asarray(normalizer, np.float64)
        both = present.all(-1)
        distance = np.hypot(*(predictions - landmarks).transpose(2, 0, 1))
        usable = both & (np.isfinite(normalizer) & (normalizer > 0))[:, None]
        out["nme"] = (
            float((distance[usable] / np.broadcast_to(normalizer[:, None], distance.shape)[usable]).mean())
            if usable.any()
            else float("nan")
        )
        out["nme_num_landmarks"] = int(usable.sum())
    return out


def contingency_table(
    truth: np.ndarray, predicted: np.ndarray, num_truth: int | None = None, num_predicted: int | None = None
) -> np.ndarray:
    """Counts [num_truth, num_predicted] of pixels per (ground-truth label, predicted label).

    Labels are non-negative ints; tables of several batches add up (pad to a common shape).

    Args:
      truth: Ground-truth labels, any shape (flattened).
      predicted: Predicted labels, as many as `truth`.
      num_truth: Minimum number of rows (ground-truth labels), to pad to.
      num_predicted: Minimum number of columns (predicted labels), to pad to.

    Returns:
      int64 [rows, cols] counts.

    Raises:
      ValueError: The label counts differ, or a label is negative.
    """
    truth = np.asarray(truth, np.int64).ravel()
    predicted = np.asarray(predicted, np.int64).ravel()
    if truth.shape != predicted.shape:
        raise ValueError(f"label counts differ: {truth.size} vs {predicted.size}")
    if truth.size and (truth.min() < 0 or predicted.min() < 0):
        raise ValueError("labels must be non-negative")
    rows = max(num_truth or 0, int(truth.max()) + 1 if truth.size else 0)
    cols = max(num_predicted or 0, int(predicted.max()) + 1 if predicted.size else 0)
    return np.bincount(truth * cols + predicted, minlength=rows * cols).reshape(rows, cols)


def add_tables(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    """a + b for contingency tables of possibly different shapes (zero-padded).

    Args:
      a: A contingency table, or None (the start of a sum).
      b: A contingency table.

    Returns:
      int64 table of the larger shape on each axis (a copy of `b` when `a` is None).
    """
    if a is None:
        return b.copy()
    out = np.zeros((max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])), np.int64)
    out[: a.shape[0], : a.shape[1]] += a
    out[: b.shape[0], : b.shape[1]] += b
    return out


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _information(table: np.ndarray) -> tuple[float, float, float]:
    """(I(U; V), H(U), H(V)) of a contingency table, natural log; U the rows (ground truth)."""
    table = np.asarray(table, np.float64)
    n = table.sum()
    if n == 0:
        raise ValueError("empty contingency table")
    rows, cols = table.sum(1), table.sum(0)
    i, j = np.nonzero(table)
    joint = table[i, j]
    mutual = float((joint / n * (np.log(joint * n) - np.log(rows[i] * cols[j]))).sum())
    # Rounding can leave a tiny negative I for independent labelings.
    return max(0.0, mutual), _entropy(rows), _entropy(cols)


def normalized_mutual_information(table: np.ndarray) -> float:
    """NMI = I(U; V) / ((H(U) + H(V)) / 2) from a contingency table (natural log).

    1.0 when both labelings are a single cluster (nothing to disagree on); invariant to
    renaming labels on either side.

    Args:
      table: [num_truth, num_predicted] pixel counts (`contingency_table`).

    Returns:
      NMI in [0, 1].
    """
    mutual, h_truth, h_pred = _information(table)
    if h_truth == 0 and h_pred == 0:
        return 1.0
    return mutual / ((h_truth + h_pred) / 2)


def geometric_nmi(table: np.ndarray) -> float:
    """NMI = I(U; V) / sqrt(H(U) H(V)) from a contingency table (natural log).

    Where an entropy is 0 the ratio is 0 / 0 and is defined as: 1.0 when both labelings are a
    single cluster (they agree), 0.0 when only one is (one side's split says nothing about
    the other's single label, as I = 0 says).

    Args:
      table: Counts [rows, cols] of (ground-truth label, predicted label) pairs.

    Returns:
      The NMI in [0, 1]; invariant to renaming labels on either side.

    Raises:
      ValueError: The table is empty.
    """
    mutual, h_truth, h_pred = _information(table)
    if h_truth == 0 and h_pred == 0:
        return 1.0
    if h_truth == 0 or h_pred == 0:
        return 0.0
    return min(1.0, mutual / np.sqrt(h_truth * h_pred))


def part_nmi_per_frame(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per frame, `geometric_nmi` of the labels over the ground-truth foreground (truth > 0).

    The part score of issue 21: `predicted` is the argmax over all K + 1 maps, so a
    foreground pixel predicted as background counts as one more predicted label.

    Args:
      truth: Ground-truth part labels [N, H, W], 0 = background.
      predicted: Predicted labels [N, H, W] (non-negative ints).

    Returns:
      float64 [N]; NaN for a frame without ground-truth foreground.

    Raises:
      ValueError: The shapes differ.
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"label shapes differ: {truth.shape} vs {predicted.shape}")
    out = np.full(len(truth), np.nan)
    for index, (frame_truth, frame_predicted) in enumerate(zip(truth, predicted, strict=True)):
        inside = frame_truth > 0
        if inside.any():
            out[index] = geometric_nmi(contingency_table(frame_truth[inside], frame_predicted[inside]))
    return out


def adjusted_rand_index(table: np.ndarray) -> float:
    """ARI (Hubert & Arabie 1985) from a contingency table: 1 for identical partitions, ~0 by chance.

    (sum_ij C(n_ij, 2) - E) / ((sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2 - E),
    E = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2); 1.0 when the denominator is 0 (both
    labelings trivial in the same way).

    Args:
      table: [num_truth, num_predicted] pixel counts (`contingency_table`).

    Returns:
      The ARI (at most 1; may be negative).
    """
    table = np.asarray(table, np.float64)
    n = table.sum()

    def pairs(x: np.ndarray | float) -> np.ndarray | float:
        return x * (x - 1) / 2

    index = float(pairs(table).sum())
    rows, cols = float(pairs(table.sum(1)).sum()), float(pairs(table.sum(0)).sum())
    total = pairs(n)
    expected = rows * cols / total if total > 0 else 0.0
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)
