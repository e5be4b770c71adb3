"""Non-learned part segmenters, so that the evaluation's numbers have floors.

`LabelPriorSegmenter` ignores the image: it is the training split's label frequencies at
each pixel, the floor of a model that learned where the object usually is and nothing else.

k-means on colour and position, per image: each pixel of the image (resized to `work_size`)
is a point (L, a, b) / 100 (CIELAB, so distances follow perceived colour) plus
`position_weight` * (x, y) / work_size (so clusters are also compact regions); K + 1
clusters are found by Lloyd's algorithm from a k-means++ start with a fixed seed. The
cluster that holds most of the image border is the background (objects are framed in the
middle); the others are the K parts, numbered top to bottom by their mean y so that part k
tends to be the same region across images (the landmark regression needs that). Its output
has the segmenter's layout: one-hot maps [N, h, w, K+1], channel 0 the background.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from coseg_tf.inference import Segmenter
from coseg_tf.metrics import part_centroids

if TYPE_CHECKING:
    from coseg_tf.ground_truth import EvalSplit


def kmeans(
    points: np.ndarray, k: int, *, iterations: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means from a k-means++ start: (centres [k, D], assignment [P]).

    An emptied cluster is moved to the point farthest from its centre, so k clusters remain.

    Args:
      points: [P, D] points.
      k: Number of clusters.
      iterations: Most Lloyd iterations (stops early when the assignment no longer changes).
      seed: Seed of the k-means++ start.

    Returns:
      (float64 centres [k, D], int64 assignment [P]).

    Raises:
      ValueError: There are fewer points than clusters.
    """
    points = np.asarray(points, np.float64)
    rng = np.random.default_rng(seed)
    count = len(points)
    if count < k:
        raise ValueError(f"{count} points cannot make {k} clusters")
    centres = np.empty((k, points.shape[1]))
    centres[0] = points[rng.integers(count)]
    nearest = ((points - centres[0]) ** 2).sum(-1)
    for c in range(1, k):
        total = nearest.sum()
        index = rng.choice(count, p=nearest / total) if total > 0 else rng.integers(count)
        centres[c] = points[index]
        nearest = np.minimum(nearest, ((points - centres[c]) ** 2).sum(-1))
    assignment = np.zeros(count, np.int64)
    for _ in range(iterations):
        distances = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
        new = distances.argmin(1)
        sizes = np.bincount(new, minlength=k)
        for empty in np.flatnonzero(sizes == 0):
            far = distances[np.arange(count), new].argmax()
            new[far] = empty
            distances[far] = 0.0
            sizes = np.bincount(new, minlength=k)
        for c in range(k):
            centres[c] = points[new == c].mean(0)
        if np.array_equal(new, assignment):
            break
        assignment = new
    return centres, assignment


def kmeans_parts(
    image: np.ndarray,
    num_parts: int,
    *,
    work_size: int = 64,
    position_weight: float = 1.0,
    iterations: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Part labels [work_size, work_size] of one RGB image (float in [0, 1]); 0 = background.

    Args:
      image: [H, W, 3] RGB image, float in [0, 1].
      num_parts: K; K + 1 clusters are made.
      work_size: Side in pixels the image is resized to before clustering.
      position_weight: Weight of the (x, y) / work_size features against CIELAB / 100.
      iterations: Most k-means iterations.
      seed: Seed of the k-means start.

    Returns:
      int64 [work_size, work_size] labels: 0 the cluster most frequent on the border, 1..K the others
      from top to bottom.
    """
    small = cv2.resize(np.asarray(image, np.float32), (work_size, work_size), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(np.clip(small, 0.0, 1.0), cv2.COLOR_RGB2Lab) / 100.0
    ys, xs = np.mgrid[0:work_size, 0:work_size].astype(np.float64) / work_size
    features = np.concatenate(
        [lab.reshape(-1, 3), position_weight * np.stack([xs, ys], -1).reshape(-1, 2)], 1
    )
    _, assignment = kmeans(features, num_parts + 1, iterations=iterations, seed=seed)
    clusters = assignment.reshape(work_size, work_size)
    border = np.concatenate([clusters[0], clusters[-1], clusters[:, 0], clusters[:, -1]])
    background = int(np.bincount(border, minlength=num_parts + 1).argmax())
    others = [c for c in range(num_parts + 1) if c != background]
    mean_y = [ys.ravel()[assignment == c].mean() for c in others]
    order = [others[i] for i in np.argsort(mean_y, kind="stable")]
    relabel = np.zeros(num_parts + 1, np.int64)
    relabel[order] = np.arange(1, num_parts + 1)
    return relabel[clusters]


class KMeansSegmenter(Segmenter):
    """The baseline behind the segmenter's interface (`inference.Segmenter`), so that it is
    evaluated like a model: images [B, H, W, 3] -> maps [B, work_size, work_size, K+1].

    Each part's anchor (`shift`) is its centre of mass in the map's [-1, 1] coordinates.
    """

    kind = "kmeans_baseline"
    frame_size = None
    source = "kmeans"

    def __init__(
        self, num_segments: int, *, work_size: int = 64, position_weight: float = 1.0, seed: int = 0
    ) -> None:
        self.num_segments = num_segments
        self.work_size = work_size
        self.position_weight = position_weight
        self.seed = seed

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels = [
            kmeans_parts(
                frame,
                self.num_segments,
                work_size=self.work_size,
                position_weight=self.position_weight,
                seed=self.seed,
            )
            for frame in frames
        ]
        maps = np.eye(self.num_segments + 1, dtype=np.float32)[np.stack(labels)]
        shift = part_centroids(maps) * (2.0 / max(self.work_size - 1, 1)) - 1.0
        return maps, shift.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """What a report records about the baseline: its kind, K, features and seed.

        Returns:
          The description dict.
        """
        return {
            "kind": self.kind,
            "num_segments": self.num_segments,
            "work_size": self.work_size,
            "position_weight": self.position_weight,
            "features": "CIELAB / 100 and position_weight * (x, y) / work_size",
            "seed": self.seed,
        }


class LabelPriorSegmenter(Segmenter):
    """The same soft maps for every image: each ground-truth label's frequency at each pixel.

    Scored by `coseg_tf.evaluate` like a model, it gives three floors at once: its foreground
    (the part maps' sum > 0.5) is the mean training mask thresholded at a half (the
    train-mask prior); its hard labels are each pixel's most frequent training label; and its
    part centroids never change, so the landmark regression predicts each landmark's training
    mean (the mean-landmark predictor).
    """

    kind = "label_prior"
    frame_size = None
    source = "ground-truth label frequencies of a training split"

    def __init__(self, frequencies: np.ndarray) -> None:
        """Wraps label frequencies.

        Args:
          frequencies: [H, W, K+1] per pixel, summing to 1 over the last axis (channel 0: the
            background).
        """
        self.frequencies = np.asarray(frequencies, np.float32)
        self.num_segments = self.frequencies.shape[-1] - 1

    @classmethod
    def fit(
        cls, split: EvalSplit, num_labels: int | None = None, batch_size: int = 64
    ) -> LabelPriorSegmenter:
        """Counts the labels of every item of `split` (which must have part labels).

        Args:
          split: A split with ground-truth part labels, all of one size.
          num_labels: K+1; by default one more than the largest label found.
          batch_size: Items loaded at once.

        Returns:
          The prior of that split.

        Raises:
          ValueError: The split has no part labels.
        """
        if not split.has_labels:
            raise ValueError(f"the {split.name} split has no part labels to count")
        counts = np.zeros((*split.image_size, num_labels or 1), np.int64)
        for start in range(0, len(split), batch_size):
            labels = split.load(range(start, min(start + batch_size, len(split)))).labels
            depth = max(counts.shape[-1], int(labels.max()) + 1)
            if depth > counts.shape[-1]:
                counts = np.pad(counts, ((0, 0), (0, 0), (0, depth - counts.shape[-1])))
            counts += (labels[..., None] == np.arange(depth)).sum(0)
        return cls(counts / counts.sum(-1, keepdims=True))

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps = np.broadcast_to(self.frequencies, (len(frames), *self.frequencies.shape))
        height, width = self.frequencies.shape[:2]
        scale = np.array([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
        shift = part_centroids(maps[:1]) * scale - 1.0
        return maps.copy(), np.repeat(shift, len(frames), 0).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """What a report records about the baseline: its kind, K, map size and source.

        Returns:
          The description dict.
        """
        return {
            "kind": self.kind,
            "num_segments": self.num_segments,
            "map_size": list(self.frequencies.shape[:2]),
            "source": self.source,
        }
