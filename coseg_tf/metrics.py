"""Segmentation metrics (paper Sec. 4.1). Foreground IoU here; the evaluation issue adds more.

Foreground IoU: the predicted foreground is O = sum_{k=1..K} Y^k, the soft mass of the K part
channels (channel 0 is the background), thresholded at 0.5 after resizing to the ground
truth's size; it is compared with the ground-truth foreground mask.
"""

from __future__ import annotations

import numpy as np


def foreground_probability(segmentation: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """O = sum of the K foreground channels of [N, h, w, K+1] (or [h, w, K+1]), bilinearly resized.

    Resizing the summed map (not a hard label map) keeps the soft boundary of O, so the
    threshold falls between pixels as it would at full resolution.
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


def iou(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image IoU of boolean masks [N, H, W] (or [H, W]); 1 where both are empty."""
    predicted = np.asarray(predicted, bool)
    truth = np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {predicted.shape} vs {truth.shape}")
    axes = (-2, -1)
    intersection = np.logical_and(predicted, truth).sum(axis=axes)
    union = np.logical_or(predicted, truth).sum(axis=axes)
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def foreground_iou(segmentation: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-frame foreground IoU of segmentations [N, h, w, K+1] against masks [N, H, W].

    Returns [N] (a scalar for a single frame); average it over frames for the paper's score.
    """
    mask = np.asarray(mask, bool)
    foreground = foreground_probability(segmentation, mask.shape[-2:])
    return iou(foreground > threshold, mask)
