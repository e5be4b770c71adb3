"""Reading every supported video layout into RGB frames of one size.

A "video" in a dataset folder is one of: a folder of frame images, one image holding the
frames side by side (the frame width comes from the config), or an `.mp4`/`.mov`/`.avi`/
`.gif` file. Whatever the source, frames come out as RGB (grayscale is replicated, alpha is
dropped, as the original implementation does) and resized to the configured frame size, so
that the rest of the pipeline sees one shape. Internally frames stay uint8 (4x smaller in the
decode cache); `read_video` gives the float32 [0, 1] frames the model consumes.

`write_video` writes every one of these layouts (local paths only): the synthetic data set,
the test fixtures and the commands' videos all go through it.

Paths go through `coseg_tf.fileio`: `gs://...` roots work, and TensorFlow is only imported for
them, which keeps this module usable from the synthetic-data command without paying for a
TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Sequence

import cv2
import numpy as np

from coseg_tf.errors import CosegError
from coseg_tf.fileio import is_remote, isdir, join, listdir, local_copy, local_path, read_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".gif")

FRAMES, STACKED, VIDEO = "frames", "stacked", "video"


class VideoReadError(IOError):
    """A video that cannot be decoded, or has fewer than two frames: skipped, not fatal."""


class DatasetError(CosegError):
    """A dataset problem that must stop the run before training starts."""


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """One video of a dataset folder, before decoding.

    `name` is the file name without its video/image extension (a frame folder keeps its whole
    name, e.g. `id10001#abc#000.mp4` in the published VoxCeleb frame folders); it is what
    identities (`ID#clip...`) and ground-truth files are matched on.
    """

    name: str
    path: str
    kind: str  # FRAMES, STACKED or VIDEO
    frame_files: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """The identity part of `name`: everything before the first '#' (the whole name if none)."""
        return self.name.split("#")[0]


def _natural_key(name: str) -> list:
    # frame2.png before frame10.png; zero-padded names sort the same either way.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def list_frame_files(folder: str) -> tuple[str, ...]:
    """The frame images of a frame folder, in natural (numeric-aware) order.

    Args:
      folder: A local or cloud folder of frame images.

    Returns:
      The names (not paths) of its PNG/JPEG/BMP files, sorted so that `2.png` comes before `10.png`.
    """
    names = [n for n in listdir(folder) if _extension(n.rstrip("/")) in IMAGE_EXTENSIONS]
    return tuple(sorted(names, key=_natural_key))


def list_videos(folder: str) -> list[VideoSource]:
    """The videos of one dataset folder, sorted by name; other files (e.g. `.npz`) are ignored.

    Args:
      folder: A local or cloud dataset folder.

    Returns:
      One `VideoSource` per frame folder (kind FRAMES), video file (VIDEO) or image (STACKED).
    """
    out = []
    remote = is_remote(folder)
    for entry in listdir(folder):
        entry_name = entry.rstrip("/")
        path = join(folder, entry_name)
        ext = _extension(entry_name)
        # Cloud listings end folder names with '/'; asking about every file would cost one
        # request each, so there only extension-less names are checked. Locally a stat is cheap
        # (and needed: VoxCeleb frame folders are named like `...#000123.mp4`).
        known = ext in VIDEO_EXTENSIONS or ext in IMAGE_EXTENSIONS
        if entry.endswith("/") or ((not remote or not known) and isdir(path)):
            out.append(VideoSource(entry_name, path, FRAMES))
        elif ext in VIDEO_EXTENSIONS:
            out.append(VideoSource(entry_name[: -len(ext)], path, VIDEO))
        elif ext in IMAGE_EXTENSIONS:
            out.append(VideoSource(entry_name[: -len(ext)], path, STACKED))
    return sorted(out, key=lambda v: v.name)


def to_rgb_uint8(image: np.ndarray, *, bgr: bool) -> np.ndarray:
    """Any decoded image (gray, gray+alpha, BGR(A)/RGB(A), 8/16 bit, float) to RGB uint8.

    Args:
      image: A decoded image [H, W] or [H, W, C] with C in 1..4; uint8, uint16, or float in [0, 1].
      bgr: True if the color channels are in BGR order (OpenCV's), to swap them to RGB.

    Returns:
      A contiguous [H, W, 3] uint8 RGB array (gray replicated, alpha dropped, 16 bit cut to 8).
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[-1]
    if channels in (1, 2):  # gray, gray + alpha
        return np.ascontiguousarray(np.repeat(image[..., :1], 3, axis=-1))
    image = image[..., :3]
    if bgr:
        image = image[..., ::-1]
    return np.ascontiguousarray(image)


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """Encoded PNG/JPEG/BMP bytes to an RGB uint8 array.

    Args:
      data: The encoded image file's bytes.
      what: How to name the image in the error message.

    Returns:
      An [H, W, 3] uint8 RGB array.

    Raises:
      VideoReadError: OpenCV cannot decode `data`.
    """
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise VideoReadError(f"cannot decode image {what}")
    return to_rgb_uint8(image, bgr=True)


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resizes [T, h, w, 3] uint8 frames to `size` = (height, width); a no-op at that size.

    Area averaging when shrinking (no aliasing), bilinear when enlarging.

    Args:
      frames: [T, h, w, 3] uint8 frames.
      size: (height, width) to resize to, or None to keep the frames as they are.

    Returns:
      [T, height, width, 3] uint8 frames (`frames` itself when no resize is needed).
    """
    if size is None or tuple(frames.shape[1:3]) == tuple(size):
        return frames
    height, width = size
    shrink = frames.shape[1] * frames.shape[2] > height * width
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for t, frame in enumerate(frames):
        out[t] = cv2.resize(frame, (width, height), interpolation=interp)
    return out


def _image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(read_bytes(path))) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise VideoReadError(f"cannot read image header: {e}") from None
    return height, width


def probe_num_frames(source: VideoSource, frame_width: int) -> int:
    """Number of frames, as cheaply as the format allows (headers, listings; no full decode).

    For compressed videos the container's count is an estimate; loaders use the true count
    once decoded. Raises `VideoReadError` for unreadable inputs and `DatasetError` for a
    stacked image whose width is not a multiple of the frame width (a config mistake).

    Args:
      source: The video to count.
      frame_width: Width in pixels of one frame, used to split stacked images.

    Returns:
      The number of frames; -1 for a remote compressed video (unknown until decoded).

    Raises:
      DatasetError: A stacked image's width is not a multiple of `frame_width`.
      VideoReadError: A GIF or video that cannot be opened.
    """
    if source.kind == FRAMES:
        return len(source.frame_files or list_frame_files(source.path))
    if source.kind == STACKED:
        _, width = _image_size(source.path)
        if width % frame_width:
            raise DatasetError(
                f"stacked image {source.path} is {width} px wide, not a multiple of the frame width "
                f"{frame_width} (dataset_params.frame_shape); fix frame_shape or the image"
            )
        return width // frame_width
    if _extension(source.path) == ".gif":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(read_bytes(source.path))) as image:
                return int(getattr(image, "n_frames", 1))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise VideoReadError(f"cannot read GIF: {e}") from None
    if is_remote(source.path):
        return -1  # unknown until decoded; copying the file just to count frames is not worth it
    capture = cv2.VideoCapture(local_path(source.path))
    try:
        if not capture.isOpened():
            raise VideoReadError("cannot open video")
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def _read_frame_files(source: VideoSource, indices: Sequence[int] | None) -> np.ndarray:
    files = source.frame_files or list_frame_files(source.path)
    chosen = range(len(files)) if indices is None else indices
    frames = []
    for i in chosen:
        frames.append(decode_image(read_bytes(join(source.path, files[i])), join(source.path, files[i])))
    return _stack(frames, source.path)


def _stack(frames: list[np.ndarray], what: str) -> np.ndarray:
    if not frames:
        return np.zeros((0, 1, 1, 3), np.uint8)
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        # Frame folders with mixed sizes: bring all to the first frame's size before stacking.
        frames = [cv2.resize(f, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) for f in frames]
    return np.stack(frames)


def _read_stacked(source: VideoSource, frame_width: int) -> np.ndarray:
    image = decode_image(read_bytes(source.path), source.path)
    height, width = image.shape[:2]
    if width % frame_width:
        raise DatasetError(
            f"stacked image {source.path} is {width} px wide, not a multiple of the frame width {frame_width}"
        )
    count = width // frame_width
    return np.ascontiguousarray(image.reshape(height, count, frame_width, 3).transpose(1, 0, 2, 3))


def _read_gif(path: str) -> np.ndarray:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(read_bytes(path))) as image:
            frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as e:
        raise VideoReadError(f"cannot decode GIF: {e}") from None
    return _stack(frames, path)


def _read_with_opencv(path: str, stop: int | None) -> list[np.ndarray]:
    capture = cv2.VideoCapture(path)
    frames: list[np.ndarray] = []
    try:
        if not capture.isOpened():
            return frames
        while stop is None or len(frames) < stop:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(to_rgb_uint8(frame, bgr=True))
    finally:
        capture.release()
    return frames


def _read_with_imageio(path: str, stop: int | None) -> list[np.ndarray]:
    import imageio.v2 as imageio

    frames: list[np.ndarray] = []
    try:
        with imageio.get_reader(path, format="FFMPEG") as reader:
            for frame in reader:
                frames.append(to_rgb_uint8(np.asarray(frame), bgr=False))
                if stop is not None and len(frames) >= stop:
                    break
    except Exception:  # noqa: BLE001 - any FFmpeg failure means "unreadable"
        return frames
    return frames


def _read_compressed(path: str, stop: int | None = None) -> np.ndarray:
    if _extension(path) == ".gif":
        return _read_gif(path)
    with local_copy(path) as local:
        # OpenCV's in-process FFmpeg is ~3x faster than imageio's subprocess; imageio is the
        # fallback for containers/codecs that build lacks.
        frames = _read_with_opencv(local, stop)
        if not frames:
            frames = _read_with_imageio(local, stop)
    if not frames:
        raise VideoReadError("cannot decode video (no frames)")
    return _stack(frames, path)


def load_frames(
    source: VideoSource,
    frame_size: tuple[int, int] | None,
    indices: Sequence[int] | None = None,
) -> np.ndarray:
    """Decodes frames of `source` as RGB uint8 [n, height, width, 3] at `frame_size`.

    `indices=None` gives the whole video. For frame folders only the requested frames are
    read; the other layouts are decoded whole (PNG and H.264 have no cheap random access),
    which is why the training pipeline caches decoded videos.

    Args:
      source: The video to decode.
      frame_size: (height, width) to resize to; None keeps the stored size (not allowed for stacked images).
      indices: Frame indices to return, in that order; None for all frames.

    Returns:
      [n, height, width, 3] uint8 RGB frames.

    Raises:
      ValueError: `source` is a stacked image and `frame_size` is None.
      VideoReadError: An index is past the last decoded frame.
    """
    frame_width = frame_size[1] if frame_size is not None else None
    if source.kind == FRAMES:
        frames = _read_frame_files(source, indices)
    else:
        if source.kind == STACKED:
            if frame_width is None:
                raise ValueError("reading a stacked image needs the frame size")
            frames = _read_stacked(source, frame_width)
        else:
            stop = None if indices is None or len(indices) == 0 else max(indices) + 1
            frames = _read_compressed(source.path, stop)
        if indices is not None:
            if len(indices) and max(indices) >= len(frames):
                raise VideoReadError(f"frame {max(indices)} requested, video has {len(frames)}")
            frames = frames[np.asarray(indices, np.int64)]
    return resize_frames(frames, frame_size)


def source_for_path(path: str) -> VideoSource:
    """A `VideoSource` for a single path, its layout guessed from the path.

    Args:
      path: A frame folder, video file (.mp4/.mov/.avi/.gif) or stacked image (.png/.jpg/.jpeg/.bmp).

    Returns:
      The `VideoSource`, named after the last path component without its extension.

    Raises:
      ValueError: `path` is none of these layouts.
    """
    name = path.rstrip("/").split("/")[-1]
    ext = _extension(name)
    if isdir(path):
        return VideoSource(name, path, FRAMES)
    if ext in VIDEO_EXTENSIONS:
        return VideoSource(name[: -len(ext)], path, VIDEO)
    if ext in IMAGE_EXTENSIONS:
        return VideoSource(name[: -len(ext)], path, STACKED)
    raise ValueError(f"not a video, stacked image or frame folder: {path}")


def read_video(path: str, frame_shape: Sequence[int] | None = None) -> np.ndarray:
    """A whole video as float32 RGB [T, H, W, 3] in [0, 1].

    `frame_shape` ([H, W] or [H, W, 3]) is required for stacked images (it gives the frame
    width) and resizes other layouts; without it frames keep their stored size.

    Args:
      path: A frame folder, video file or stacked image (local or cloud).
      frame_shape: [H, W] or [H, W, 3] of the frames, or None to keep the stored size.

    Returns:
      [T, H, W, 3] float32 RGB frames in [0, 1].
    """
    size = (int(frame_shape[0]), int(frame_shape[1])) if frame_shape is not None else None
    return to_float(load_frames(source_for_path(path), size))


def to_float(frames: np.ndarray) -> np.ndarray:
    """uint8 -> float32 [0, 1], bit-identical to the pipeline's `tf.cast(x, float32) * (1 / 255)`.

    Args:
      frames: uint8 frames of any shape.

    Returns:
      float32 frames of the same shape in [0, 1].
    """
    return frames.astype(np.float32) * np.float32(1.0 / 255.0)


def _bgr(frame: np.ndarray) -> np.ndarray:
    """An RGB(A) or gray uint8 frame in OpenCV's channel order."""
    if frame.ndim == 2:
        return frame
    if frame.shape[-1] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_RGBA2BGRA)
    return np.ascontiguousarray(frame[..., ::-1])


def _rgb(frame: np.ndarray) -> np.ndarray:
    """An RGB(A) or gray uint8 frame as RGB (alpha dropped, gray replicated)."""
    if frame.ndim == 2:
        return np.repeat(frame[..., None], 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3])


def _write_image(path: str, bgr: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith(".jpg") else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(path, bgr, params):
        raise OSError(f"cannot write {path}")


def write_video(
    path: str, frames: np.ndarray | Sequence[np.ndarray], fps: float = 25.0, *, folder: bool = False
) -> str:
    """Writes uint8 frames in the layout that `path` names; the one video writer of the package.

    Layouts: `.mp4`/`.mov` (H.264, yuv420p; odd sides get one replicated row/column at the
    bottom/right rather than a rescale, which would blur part borders), `.avi` (MJPEG),
    `.gif` (a fast per-frame palette, no dithering, so flat part colours stay exact), `.png`/
    `.jpg` (the frames side by side in one image) and a folder of numbered PNG frames (for a
    path without an extension, or with `folder`).

    Args:
        path: a local file or folder path; its folder is created.
        frames: uint8 [T, H, W, 3] RGB, [T, H, W, 4] RGBA (alpha kept in PNGs only) or
            [T, H, W] gray frames, or a sequence of such frames.
        fps: frames per second of the video layouts.
        folder: write a folder of frames whatever `path`'s extension (VoxCeleb's folders are
            named like `clip.mp4`).

    Returns:
        `path`.

    Raises:
        ValueError: no frames, frames that are not uint8, or an unknown extension.
        OSError: a file could not be written.
    """
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    if any(f.dtype != np.uint8 for f in frames):
        raise ValueError(f"frames to write to {path} must be uint8, got {frames[0].dtype}")
    ext = "" if folder else os.path.splitext(path.rstrip("/"))[1].lower()
    if ext not in ("", ".png", ".jpg", *VIDEO_EXTENSIONS):
        raise ValueError(f"cannot write a video as {ext}: use .mp4, .mov, .avi, .gif, .png, .jpg or a folder")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not ext:
        os.makedirs(path, exist_ok=True)
        for t, frame in enumerate(frames):
            _write_image(os.path.join(path, f"{t:05d}.png"), _bgr(frame))
    elif ext in (".png", ".jpg"):
        _write_image(path, _bgr(np.concatenate(frames, axis=1)))
    elif ext == ".gif":
        from PIL import Image

        # PIL's default quantiser is ~20x slower; with few flat colours this one is exact.
        images = [
            Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            for f in map(_rgb, frames)
        ]
        images[0].save(
            path,
            save_all=True,
            append_images=images[1:],
            duration=int(round(1000 / fps)),
            loop=0,
            optimize=False,
        )
    else:
        import imageio.v2 as imageio

        if ext == ".avi":
            options = {"codec": "mjpeg", "pixelformat": "yuvj420p", "output_params": ["-q:v", "2"]}
        else:
            options = {
                "codec": "libx264",
                "pixelformat": "yuv420p",
                "output_params": ["-crf", "12", "-preset", "veryfast"],
            }
        height, width = frames[0].shape[:2]
        pad = ((0, height % 2), (0, width % 2), (0, 0))
        with imageio.get_writer(
            path,
            format="FFMPEG",
            fps=fps,
            macro_block_size=1,
            quality=None,
            ffmpeg_log_level="error",
            **options,
        ) as writer:
            for frame in map(_rgb, frames):
                writer.append_data(np.pad(frame, pad, mode="edge") if height % 2 or width % 2 else frame)
    return path
