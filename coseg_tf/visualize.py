"""Pictures and videos of part maps for people: coloured labels, overlays, keypoints, a legend.

Part colours come from the trainer's palette (`coseg_tf.trainer.part_colors`, hues spread
over the circle from red to magenta like the configs' `gist_rainbow`), indexed by part id,
so part k has the same colour in every frame, picture, video and in the TensorBoard images;
the background (id 0) is black in label pictures and left untinted in overlays. Arrays
handed to and returned by these functions are uint8 RGB unless a docstring says otherwise.

Writing: PNG through OpenCV, mp4 (H.264) through imageio-ffmpeg, GIF through Pillow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from coseg_tf.data import video_io

DEFAULT_FPS = 25.0
VIDEO_FORMATS = ("mp4", "gif")


def _to_unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] (or uint8) pixels as uint8, rounded."""
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def palette(num_segments: int) -> np.ndarray:
    """uint8 [K+1, 3]: row 0 (background) black, row k the colour of part k."""
    from coseg_tf.trainer import label_colors

    return to_uint8(label_colors(np.arange(num_segments + 1), num_segments))


def color_labels(labels: np.ndarray, num_segments: int) -> np.ndarray:
    """A label map [H, W] (0 = background) as an RGB picture in the part colours."""
    return palette(num_segments)[np.clip(labels, 0, num_segments)]


def overlay(image: np.ndarray, soft: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """`image` [H, W, 3] tinted by the soft part maps `soft` [h, w, K+1] (resized to the image).

    Soft maps rather than labels, so uncertain borders show as blends of the parts' colours.
    """
    from coseg_tf.trainer import overlay_parts

    return to_uint8(overlay_parts(_to_unit(image), soft, alpha))


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, radius: int = 3) -> np.ndarray:
    """Each part's anchor keypoint (x, y in pixels of `image`) as a dot of the part's colour."""
    from coseg_tf.trainer import draw_keypoints as draw

    height, width = image.shape[:2]
    # The trainer's drawer takes corner-aligned [-1, 1] coordinates of the picture it draws on.
    scale = np.array([max(width - 1, 1), max(height - 1, 1)], np.float32)
    normalized = 2.0 * np.asarray(keypoints, np.float32) / scale - 1.0
    return to_uint8(draw(_to_unit(image), normalized, radius))


def legend(num_segments: int, names: Sequence[str] | None = None, row_height: int = 22) -> np.ndarray:
    """A picture listing each part id (0 = background) beside its colour swatch."""
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
    """A blend mask [h, w] in [0, 1] as a grey RGB picture of `size` (white = taken from the source)."""
    resized = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.repeat(to_uint8(resized)[..., None], 3, axis=-1)


def side_by_side(*pictures: np.ndarray, gap: int = 2) -> np.ndarray:
    """Pictures of one height next to each other, separated by white columns."""
    height = pictures[0].shape[0]
    if any(p.shape[0] != height for p in pictures):
        raise ValueError(f"pictures must have one height, got {[p.shape[:2] for p in pictures]}")
    spacer = np.full((height, gap, 3), 255, np.uint8)
    cells: list[np.ndarray] = []
    for picture in pictures:
        cells += [picture, spacer]
    return np.concatenate(cells[:-1], axis=1)


def write_png(path: str, image: np.ndarray) -> str:
    """Writes an RGB (or single-channel) uint8 picture; creates the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = image[..., ::-1] if image.ndim == 3 else image
    if not cv2.imwrite(path, np.ascontiguousarray(data)):
        raise OSError(f"cannot write {path}")
    return path


def video_fps(path: str, default: float = DEFAULT_FPS) -> float:
    """The frame rate stored in a video file; `default` for frame folders, image strips, unknown rates.

    GIFs store per-frame durations in 10 ms steps; their rate is 1 / the first frame's duration.
    """
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if ext == ".gif":
        import io

        from PIL import Image

        with Image.open(io.BytesIO(video_io.read_bytes(path))) as image:
            duration = image.info.get("duration") or 0
        return 1000.0 / duration if duration > 0 else default
    if ext in video_io.VIDEO_EXTENSIONS:
        with video_io.local_copy(path) as local:
            capture = cv2.VideoCapture(local)
            try:
                fps = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
            finally:
                capture.release()
        return fps if np.isfinite(fps) and fps > 0 else default
    return default


def write_video(path: str, frames: np.ndarray | Sequence[np.ndarray], fps: float) -> str:
    """Writes uint8 RGB frames as `.mp4` (H.264, yuv420p) or `.gif`, at `fps` frames per second.

    H.264 in yuv420p needs even sides: odd frames get one replicated row/column at the
    bottom/right rather than being rescaled (which would blur the part borders).
    """
    frames = [to_uint8(np.asarray(f)) for f in frames]
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".gif":
        from PIL import Image

        images = [Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE) for f in frames]
        images[0].save(
            path,
            save_all=True,
            append_images=images[1:],
            duration=int(round(1000.0 / fps)),
            loop=0,
            optimize=False,
        )
        return path
    if ext != ".mp4":
        raise ValueError(f"video output must end in .mp4 or .gif, got {path}")
    import imageio.v2 as imageio

    height, width = frames[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    with imageio.get_writer(
        path,
        format="FFMPEG",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=1,
        quality=None,
        output_params=["-crf", "15", "-preset", "veryfast"],
    ) as writer:
        for frame in frames:
            writer.append_data(np.pad(frame, pad, mode="edge") if any(p[1] for p in pad) else frame)
    return path
