"""Writing small videos in every supported layout, and reading a pipeline back, for tests.

`pattern_frames` gives frames whose content encodes the video and frame index in flat
blocks (robust to lossy codecs): the left half's red level rises with the frame index, the
right half's falls, so a horizontal flip, a swapped pair or a wrong frame is visible.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from coseg_tf.data import video_io

LAYOUTS = ("frames", "png", "jpg", "mp4", "mov", "avi", "gif")
EXTENSIONS = {
    "frames": "",
    "png": ".png",
    "jpg": ".jpg",
    "mp4": ".mp4",
    "mov": ".mov",
    "avi": ".avi",
    "gif": ".gif",
}


def pattern_frames(num_frames: int, size: tuple[int, int] = (32, 32), video: int = 0) -> np.ndarray:
    """uint8 [T, H, W, 3] frames encoding (video, frame index) in flat blocks."""
    height, width = size
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frames[t, :, : width // 2, 0] = 20 + (12 * t) % 200
        frames[t, :, width // 2 :, 0] = 235 - (12 * t) % 200
        frames[t, ..., 1] = 40 + 50 * (video % 4)
        frames[t, ..., 2] = 128
    return frames


def frame_index_of(frame: np.ndarray) -> float:
    """Inverse of `pattern_frames` for one frame (float in [0, 1] or uint8): the frame index."""
    scale = 255.0 if frame.dtype != np.uint8 else 1.0
    left = float(np.mean(frame[:, : frame.shape[1] // 2, 0])) * scale
    return (left - 20.0) / 12.0


def write_video(path: str, frames: np.ndarray, layout: str, fps: float = 10.0) -> str:
    """Writes uint8 RGB [T, H, W, 3] (or gray [T, H, W], RGBA [T, H, W, 4]) as `layout`.

    Returns the path written (with the layout's extension appended if missing).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    ext = EXTENSIONS[layout]
    if ext and not path.endswith(ext):
        path += ext
    return video_io.write_video(path, frames, fps, folder=layout == "frames")


def write_dataset(
    root: str,
    layout: str,
    counts: Sequence[int],
    *,
    names: Sequence[str] | None = None,
    size: tuple[int, int] = (32, 32),
) -> list[str]:
    """Writes one pattern video per entry of `counts` (its frame count) into `root`; returns paths."""
    paths = []
    for v, count in enumerate(counts):
        name = names[v] if names is not None else f"video{v:03d}"
        paths.append(write_video(os.path.join(root, name), pattern_frames(count, size, v), layout))
    return paths


def collect(batches: Iterable[Mapping[str, Any]]) -> dict[str, list[np.ndarray]]:
    """Every example of one pass over a batched dataset, unbatched, as numpy arrays by key."""
    out: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    for batch in batches:
        for key, value in batch.items():
            out[key].extend(list(value.numpy()))
    return out
