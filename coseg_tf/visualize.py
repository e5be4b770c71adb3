"""Pictures and videos of part maps for people: coloured labels, overlays, keypoints, a legend.

Part colours come from one palette (`part_colors`, hues spread over the circle from red to
magenta like the configs' `gist_rainbow`), indexed by part id, so part k has the same colour
in every frame, picture, video and in the trainer's TensorBoard images; the background
(id 0) is black in label pictures and left untinted in overlays. Arrays handed to and
returned by these functions are uint8 RGB unless a docstring says float [0, 1].

Pictures are written as PNG through OpenCV (`write_png`), videos by `video_io.write_video`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from coseg_tf import fileio
from coseg_tf.data import video_io

DEFAULT_FPS = 25.0
VIDEO_FORMATS = ("mp4", "gif")


def _to_unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Pixels as uint8.

    Args:
        image: float in [0, 1] (clipped), or uint8 (returned as is).

    Returns:
        uint8, float values rounded to the nearest level.
    """
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def part_colors(num_parts: int) -> np.ndarray:
    """The palette: one colour per foreground part, spread over the hue circle.

    Args:
        num_parts: K, the number of foreground parts.

    Returns:
        float32 [K, 3] RGB in [0, 1]; row k - 1 is the colour of part k.
    """
    hues = np.linspace(0.0, 5.0 / 6.0, max(num_parts, 1)).astype(np.float32)
    hsv = np.stack([hues * 180.0, np.full_like(hues, 230.0), np.full_like(hues, 255.0)], -1)
    rgb = cv2.cvtColor(hsv.reshape(1, -1, 3).astype(np.uint8), cv2.COLOR_HSV2RGB)[0]
    return rgb[:num_parts].astype(np.float32) / 255.0


def label_colors(labels: np.ndarray, num_parts: int) -> np.ndarray:
    """A hard label map as a float picture in the part colours.

    Args:
        labels: int [H, W], 0 = background, 1..K the parts (clipped to that range).
        num_parts: K.

    Returns:
        float32 [H, W, 3] in [0, 1], background black.
    """
    colors = np.concatenate([np.zeros((1, 3), np.float32), part_colors(num_parts)])
    return colors[np.clip(labels, 0, num_parts)]


def overlay_parts(image: np.ndarray, segmentation: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """A float image with each pixel tinted by its soft part colours (background left as is).

    Args:
        image: float [H, W, 3] in [0, 1].
        segmentation: soft part maps [h, w, K+1] (channel 0 background), resized to the image.
        alpha: opacity of the tint.

    Returns:
        float32 [H, W, 3] in [0, 1].
    """
    height, width = image.shape[:2]
    seg = cv2.resize(segmentation.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    seg = seg.reshape(height, width, -1)
    tint = seg[..., 1:] @ part_colors(seg.shape[-1] - 1)
    weight = alpha * seg[..., 1:].sum(-1, keepdims=True)
    return np.clip(image * (1 - weight) + tint * alpha, 0.0, 1.0)


def palette(num_segments: int) -> np.ndarray:
    """The palette as uint8 rows, background first.

    Args:
        num_segments: K.

    Returns:
        uint8 [K+1, 3]: row 0 (background) black, row k the colour of part k.
    """
    return to_uint8(label_colors(np.arange(num_segments + 1), num_segments))


def color_labels(labels: np.ndarray, num_segments: int) -> np.ndarray:
    """A label map as an RGB picture in the part colours.

    Args:
        labels: int [H, W], 0 = background (ids above K are clipped to K).
        num_segments: K.

    Returns:
        uint8 [H, W, 3].
    """
    return palette(num_segments)[np.clip(labels, 0, num_segments)]


def overlay(image: np.ndarray, soft: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """A picture tinted by its soft part maps.

    Soft maps rather than labels, so uncertain borders show as blends of the parts' colours.

    Args:
        image: uint8 or float [0, 1] [H, W, 3].
        soft: part probabilities [h, w, K+1] (channel 0 background), resized to the image.
        alpha: opacity of the tint.

    Returns:
        uint8 [H, W, 3].
    """
    return to_uint8(overlay_parts(_to_unit(image), soft, alpha))


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, radius: int = 3) -> np.ndarray:
    """Each part's anchor keypoint as a dot of the part's colour, ringed in white.

    Args:
        image: uint8 or float [0, 1] [H, W, 3].
        keypoints: [K, 2] (x, y) in pixels of `image`; non-finite ones are not drawn.
        radius: dot radius in pixels.

    Returns:
        uint8 [H, W, 3].
    """
    out = np.ascontiguousarray(to_uint8(image)).copy()
    colors = part_colors(len(keypoints))
    for (x, y), color in zip(keypoints, colors, strict=True):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        center = (int(round(float(x))), int(round(float(y))))
        cv2.circle(out, center, radius, tuple(int(c * 255) for c in color), -1, lineType=cv2.LINE_AA)
        cv2.circle(out, center, radius, (255, 255, 255), 1, lineType=cv2.LINE_AA)
    return out


def map_to_pixels(shift: np.ndarray, height: int, width: int) -> np.ndarray:
    """Corner-aligned [-1, 1] coordinates (the segmenter's shifts) as pixels of a picture.

    Args:
        shift: [..., 2] (x, y) in [-1, 1], -1 the centre of the first pixel.
        height: the picture's height.
        width: the picture's width.

    Returns:
        float32 [..., 2] (x, y) in pixels.
    """
    shift = np.asarray(shift, np.float32)
    return np.stack([(shift[..., 0] + 1) / 2 * (width - 1), (shift[..., 1] + 1) / 2 * (height - 1)], -1)


def visual_grid(batch: Mapping[str, np.ndarray], out: Mapping[str, Any], kp_size: int = 3) -> np.ndarray:
    """The trainer's image summary: what the generator was given, what it produced, and which
    parts and anchors the segmenter found on the target.

    Args:
        batch: float `source` and `target` frames [B, H, W, 3] in [0, 1].
        out: the model's outputs for the batch (`prediction`, `seg_target`, optionally `deformed`).
        kp_size: keypoint dot radius.

    Returns:
        float32 [B * H, 6 * W, 3]: one row per example of [source, target, deformed source,
        reconstruction, target parts, keypoints].
    """
    rows = []
    for i in range(batch["source"].shape[0]):
        target = batch["target"][i]
        seg = out["seg_target"]["segmentation"][i]
        shift = map_to_pixels(out["seg_target"]["shift"][i], *target.shape[:2])
        deformed = out["deformed"][i] if "deformed" in out else np.zeros_like(target)
        cells = [batch["source"][i], target, deformed, out["prediction"][i], overlay_parts(target, seg)]
        cells.append(_to_unit(draw_keypoints(overlay_parts(target, seg, 0.3), shift, kp_size)))
        rows.append(np.concatenate([np.clip(c, 0, 1) for c in cells], axis=1))
    return np.concatenate(rows, axis=0)


def legend(num_segments: int, names: Sequence[str] | None = None, row_height: int = 22) -> np.ndarray:
    """A picture listing each part id beside its colour swatch.

    Args:
        num_segments: K.
        names: K + 1 names, background first (default: "background", "part 1", ...).
        row_height: pixels per entry.

    Returns:
        uint8 [(K + 1) * row_height, W, 3].

    Raises:
        ValueError: `names` of another length.
    """
    colours = palette(num_segments)
    labels = (
        list(names)
        if names is not None
        else ["background"] + [f"part {k}" for k in range(1, num_segments + 1)]
    )
    if len(labels) != num_segments + 1:
        raise ValueError(f"legend needs {num_segments + 1} names (background first), got {len(labels)}")
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, row_height / 40.0
    texts = [f"{k}: {name}" for k, name in enumerate(labels)]
    text_width = max(cv2.getTextSize(t, font, font_scale, 1)[0][0] for t in texts)
    width = row_height + 12 + text_width + 8
    out = np.full(((num_segments + 1) * row_height + 4, width, 3), 255, np.uint8)
    for k, text in enumerate(texts):
        top = 2 + k * row_height
        cv2.rectangle(out, (4, top + 2), (4 + row_height - 4, top + row_height - 2), colours[k].tolist(), -1)
        cv2.rectangle(out, (4, top + 2), (4 + row_height - 4, top + row_height - 2), (90, 90, 90), 1)
        baseline = top + int(row_height * 0.72)
        cv2.putText(out, text, (row_height + 8, baseline), font, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def mask_picture(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A part-swap blend mask as a grey picture (white = taken from the source).

    Args:
        mask: float [h, w] in [0, 1].
        size: (height, width) of the picture; the mask is resized to it.

    Returns:
        uint8 [height, width, 3].
    """
    resized = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.repeat(to_uint8(resized)[..., None], 3, axis=-1)


def side_by_side(*pictures: np.ndarray, gap: int = 2) -> np.ndarray:
    """Pictures of one height next to each other, separated by white columns.

    Args:
        *pictures: uint8 RGB pictures of one height.
        gap: width of the white columns.

    Returns:
        uint8 [H, W, 3].

    Raises:
        ValueError: pictures of different heights.
    """
    height = pictures[0].shape[0]
    if any(p.shape[0] != height for p in pictures):
        raise ValueError(f"pictures must have one height, got {[p.shape[:2] for p in pictures]}")
    spacer = np.full((height, gap, 3), 255, np.uint8)
    cells: list[np.ndarray] = []
    for picture in pictures:
        cells += [picture, spacer]
    return np.concatenate(cells[:-1], axis=1)


def grid(rows: Sequence[Sequence[np.ndarray]], *, border: int = 0, zoom: int = 1) -> np.ndarray:
    """Pictures laid out in rows, the layout of every figure the commands and benchmarks write.

    Args:
        rows: rows of RGB pictures (uint8, or float in [0, 1]); the cells of a row share a
            height and the rows (with their borders) a width.
        border: white pixels around each cell.
        zoom: integer nearest-neighbour magnification of the whole grid (keeps pixels sharp).

    Returns:
        uint8 [H, W, 3].

    Raises:
        ValueError: no rows, or cells that do not line up.
    """
    if not rows or not all(rows):
        raise ValueError("a grid needs at least one picture in every row")
    pad = ((border, border), (border, border), (0, 0))
    try:
        lines = [
            np.concatenate([np.pad(to_uint8(c), pad, constant_values=255) for c in row], 1) for row in rows
        ]
        picture = np.concatenate(lines, 0)
    except ValueError as e:
        raise ValueError(f"grid cells do not line up: {e}") from None
    if zoom > 1:
        picture = cv2.resize(picture, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    return picture


def write_png(path: str, image: np.ndarray) -> str:
    """Writes a picture as PNG; the one picture writer (videos: `video_io.write_video`).

    Args:
        path: a local `.png` path; its folder is created.
        image: uint8 RGB [H, W, 3] or single-channel [H, W].

    Returns:
        `path`.

    Raises:
        OSError: the file could not be written.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = image[..., ::-1] if image.ndim == 3 else image
    if not cv2.imwrite(path, np.ascontiguousarray(data)):
        raise OSError(f"cannot write {path}")
    return path


def video_fps(path: str, default: float = DEFAULT_FPS) -> float:
    """The frame rate stored in a video file.

    GIFs store per-frame durations in 10 ms steps; their rate is 1 / the first frame's duration.

    Args:
        path: a video file, frame folder or image strip (local or `tf.io.gfile`).
        default: the rate of frame folders, image strips and files without one.

    Returns:
        Frames per second.
    """
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if ext == ".gif":
        import io

        from PIL import Image

        with Image.open(io.BytesIO(fileio.read_bytes(path))) as image:
            duration = image.info.get("duration") or 0
        return 1000.0 / duration if duration > 0 else default
    if ext in video_io.VIDEO_EXTENSIONS:
        with fileio.local_copy(path) as local:
            capture = cv2.VideoCapture(local)
            try:
                fps = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
            finally:
                capture.release()
        return fps if np.isfinite(fps) and fps > 0 else default
    return default
