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

import cv2
import numpy as np

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
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if layout == "frames":
        os.makedirs(path, exist_ok=True)
        for t, frame in enumerate(frames):
            cv2.imwrite(os.path.join(path, f"{t:04d}.png"), _to_bgr(frame))
    elif layout in ("png", "jpg"):
        cv2.imwrite(path, _to_bgr(np.concatenate(list(frames), axis=1)))
    elif layout == "gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    else:
        import imageio.v2 as imageio

        rgb = [f if f.ndim == 3 and f.shape[-1] == 3 else _to_rgb(f) for f in frames]
        if layout == "avi":
            options = {"codec": "mjpeg", "pixelformat": "yuvj420p", "quality": 10}
        else:
            options = {"codec": "libx264", "pixelformat": "yuv420p", "quality": 10}
        with imageio.get_writer(path, fps=fps, macro_block_size=1, ffmpeg_log_level="error", **options) as w:
            for frame in rgb:
                w.append_data(frame)
    return path


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[..., None], 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3])


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    if frame.shape[-1] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_RGBA2BGRA)
    return np.ascontiguousarray(frame[..., ::-1])


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
