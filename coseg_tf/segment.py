"""`coseg-segment`: the parts a trained model finds in images, folders of images and videos.

    coseg-segment --model=runs/demo/model --input=clip.mp4 --input=photos/ --output_dir=parts

For each image: `<name>_labels.png` (part ids 0..K as grey values, 0 = background, at the
input's size), `<name>_overlay.png` (the image tinted with each part's colour) and, with
--save_soft, `<name>_soft.npy` (float16 [h, w, K+1] at the model's map resolution). For each
video: `<name>_overlay.mp4` / `.gif` at the video's frame rate, `<name>_labels/NNNNN.png`
per frame, and with --save_soft one `<name>_soft.npy` [T, h, w, K+1]. `legend.png` lists the
part colours by id; part k has the same colour in every output.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator

import numpy as np
from absl import app, flags, logging

from coseg_tf import cli
from coseg_tf import config as config_lib
from coseg_tf.errors import CosegError

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined when run as a command only, so importing this module (tests, other commands)
    # does not add flags to the process.
    cli.define_model_flags(
        "The model: a trainer run dir, a .keras file, a tf.train checkpoint, an original .pth.tar "
        "(with --config), an exported SavedModel (version dir or its parent) or a .tflite segmenter."
    )
    flags.DEFINE_multi_string(
        "input",
        [],
        "An image (.png/.jpg/.jpeg/.bmp), a folder, or a video (.mp4/.mov/.avi/.gif); repeatable.",
    )
    flags.DEFINE_string("output_dir", None, "Where the outputs go (created).", required=True)
    flags.DEFINE_bool("folders_as_videos", False, "Treat a folder as the frames of one video, not as images.")
    flags.DEFINE_bool("save_labels", True, "Write label maps (PNG, part ids as grey values, input size).")
    flags.DEFINE_bool("save_overlay", True, "Write coloured overlays (PNG for images, videos for videos).")
    flags.DEFINE_bool("save_soft", False, "Write the soft part maps as float16 .npy (model resolution).")
    flags.DEFINE_bool("keypoints", False, "Draw each part's anchor keypoint on the overlays.")
    flags.DEFINE_bool("legend", True, "Write legend.png: the colour of each part id.")
    flags.DEFINE_list("video_formats", ["mp4"], "Overlay video formats: mp4, gif (comma-separated).")
    flags.DEFINE_float("alpha", 0.6, "Opacity of the part colours in overlays, in [0, 1].")
    flags.DEFINE_float("fps", 25.0, "Frame rate of outputs for inputs that store none (frame folders).")
    flags.DEFINE_integer("batch_size", 16, "Frames per forward pass (TFLite: 1).", lower_bound=1)
    flags.register_validator("alpha", lambda v: 0.0 <= v <= 1.0, "--alpha must be in [0, 1]")
    flags.register_validator("fps", lambda v: v > 0, "--fps must be > 0")
    flags.register_validator(
        "video_formats",
        lambda v: bool(v) and all(f in ("mp4", "gif") for f in v),
        "--video_formats must list mp4 and/or gif",
    )


@dataclasses.dataclass
class Options:
    """What to write; the flags' values, or set directly when called from Python."""

    save_labels: bool = True
    save_overlay: bool = True
    save_soft: bool = False
    keypoints: bool = False
    legend: bool = True
    video_formats: tuple[str, ...] = ("mp4",)
    alpha: float = 0.6
    fps: float = 25.0
    folders_as_videos: bool = False


@dataclasses.dataclass
class Item:
    """One thing to segment: a still image, or a video (frames read later, one at a time)."""

    name: str
    path: str
    is_video: bool


class InputFileError(CosegError):
    """An input (also coseg-swap's source or target) that does not exist or cannot be decoded; the
    message names the file."""


def output_stem(path: str) -> str:
    """The name an input's outputs start with: its file name less the extension.

    Args:
      path: An input file, or a folder of frames.

    Returns:
      E.g. `clip` for `videos/clip.mp4` and `frames` for `data/frames/`.
    """
    name = os.path.basename(path.rstrip("/"))
    stem, ext = os.path.splitext(name)
    return stem if ext else name


def collect_inputs(paths: list[str], folders_as_videos: bool = False) -> list[Item]:
    """The images and videos named by --input; a folder gives its images (natural order).

    Args:
      paths: The `--input` paths: images, videos or folders.
      folders_as_videos: Whether a folder is one video of frames rather than separate images.

    Returns:
      One item per image or video, with its output name.

    Raises:
      InputFileError: A path does not exist, a folder has no images, a file is neither image nor video, or two
        inputs would get the same output name.
    """
    from coseg_tf import fileio
    from coseg_tf.data import video_io

    items: list[Item] = []
    for path in paths:
        if not fileio.exists(path):
            raise InputFileError(f"input not found: {path}")
        if fileio.isdir(path):
            if folders_as_videos:
                items.append(Item(output_stem(path), path, True))
                continue
            files = video_io.list_frame_files(path)
            if not files:
                raise InputFileError(f"no images ({', '.join(video_io.IMAGE_EXTENSIONS)}) in folder {path}")
            items += [Item(output_stem(f), fileio.join(path, f), False) for f in files]
            continue
        ext = os.path.splitext(path)[1].lower()
        if ext in video_io.VIDEO_EXTENSIONS:
            items.append(Item(output_stem(path), path, True))
        elif ext in video_io.IMAGE_EXTENSIONS:
            items.append(Item(output_stem(path), path, False))
        else:
            raise InputFileError(
                f"{path}: not an image ({', '.join(video_io.IMAGE_EXTENSIONS)}), video "
                f"({', '.join(video_io.VIDEO_EXTENSIONS)}) or folder"
            )
    names = [item.name for item in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputFileError(
            f"several inputs are named {duplicates}: their outputs would overwrite each other"
        )
    return items


def read_image(path: str) -> np.ndarray:
    """An image file as uint8 RGB; a clear error naming the file if it cannot be decoded.

    Args:
      path: The image file (local or cloud).

    Returns:
      [H, W, 3] uint8 RGB image.

    Raises:
      InputFileError: The file cannot be read or decoded.
    """
    from coseg_tf import fileio
    from coseg_tf.data import video_io

    try:
        return video_io.decode_image(fileio.read_bytes(path), path)
    except (OSError, ValueError) as e:
        reason = str(e)
        raise InputFileError(reason if path in reason else f"cannot read image {path}: {reason}") from None


def read_frames(path: str) -> np.ndarray:
    """A whole video (any layout `video_io.read_video` reads) as uint8 RGB [T, H, W, 3].

    Args:
      path: A video file, stacked image or frame folder.

    Returns:
      [T, H, W, 3] uint8 RGB frames at their stored size.

    Raises:
      InputFileError: The video cannot be read or has no frames.
    """
    from coseg_tf.data import video_io

    try:
        frames = video_io.load_frames(video_io.source_for_path(path), None)
    except (OSError, ValueError) as e:
        raise InputFileError(f"cannot read video {path}: {e}") from None
    if len(frames) == 0:
        raise InputFileError(f"cannot read video {path}: no frames")
    return frames


def _pictures(image: np.ndarray, result, index: int, options: Options) -> tuple[np.ndarray, np.ndarray]:
    """(labels at the input size, overlay) of one image of a `Segmentation`."""
    from coseg_tf import visualize

    height, width = image.shape[:2]
    labels = result.labels_at(height, width)[index] if options.save_labels else None
    picture = None
    if options.save_overlay:
        picture = visualize.overlay(image, result.soft[index], options.alpha)
        if options.keypoints:
            radius = max(2, round(min(height, width) / 64))
            picture = visualize.draw_keypoints(picture, result.keypoints[index], radius)
    return labels, picture


def segment_image(segmenter, item: Item, output_dir: str, options: Options) -> list[str]:
    """Segments one image file and writes its outputs; returns their paths.

    Args:
      segmenter: The `inference.Segmenter` to run.
      item: The image.
      output_dir: Folder to write into.
      options: What to write (labels PNG, overlay PNG, soft maps `.npy`).

    Returns:
      The written paths.
    """
    from coseg_tf import visualize

    image = read_image(item.path)
    result = segmenter.segment(image)
    labels, picture = _pictures(image, result, 0, options)
    written = []
    if labels is not None:
        written.append(visualize.write_png(os.path.join(output_dir, f"{item.name}_labels.png"), labels))
    if picture is not None:
        written.append(visualize.write_png(os.path.join(output_dir, f"{item.name}_overlay.png"), picture))
    if options.save_soft:
        path = os.path.join(output_dir, f"{item.name}_soft.npy")
        np.save(path, result.soft[0].astype(np.float16))
        written.append(path)
    return written


def _chunks(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def segment_video(
    segmenter, item: Item, output_dir: str, options: Options, batch_size: int = 16
) -> list[str]:
    """Segments every frame of a video; overlay videos at the input's frame rate.

    Args:
      segmenter: The `inference.Segmenter` to run.
      item: The video.
      output_dir: Folder to write into.
      options: What to write (per-frame label PNGs, overlay videos, soft maps `.npy`).
      batch_size: Frames per `segment` call.

    Returns:
      The written paths (the label folder counts as one).
    """
    from tqdm import tqdm

    from coseg_tf import visualize
    from coseg_tf.data import video_io

    frames = read_frames(item.path)
    fps = visualize.video_fps(item.path, options.fps)
    overlays, softs = [], []
    label_dir = os.path.join(output_dir, f"{item.name}_labels")
    written: list[str] = []
    with tqdm(total=len(frames), desc=item.name, unit="frame", file=sys.stderr) as progress:
        for chunk in _chunks(len(frames), batch_size):
            result = segmenter.segment(frames[chunk])
            for i, image in enumerate(frames[chunk]):
                labels, picture = _pictures(image, result, i, options)
                if labels is not None:
                    index = chunk.start + i
                    visualize.write_png(os.path.join(label_dir, f"{index:05d}.png"), labels)
                if picture is not None:
                    overlays.append(picture)
            if options.save_soft:
                softs.append(result.soft.astype(np.float16))
            progress.update(chunk.stop - chunk.start)
    if options.save_labels:
        written.append(label_dir)
    if overlays:
        for fmt in options.video_formats:
            path = os.path.join(output_dir, f"{item.name}_overlay.{fmt}")
            written.append(video_io.write_video(path, overlays, fps))
    if softs:
        path = os.path.join(output_dir, f"{item.name}_soft.npy")
        np.save(path, np.concatenate(softs))
        written.append(path)
    return written


def segment_all(
    segmenter, items: list[Item], output_dir: str, options: Options, batch_size: int = 16
) -> list[str]:
    """Every item's outputs, plus the legend; returns the written paths.

    Args:
      segmenter: The `inference.Segmenter` to run.
      items: Images and videos (`collect_inputs`).
      output_dir: Folder to write into (created if needed).
      options: What to write.
      batch_size: Frames per `segment` call for videos.

    Returns:
      The written paths.
    """
    from coseg_tf import visualize

    os.makedirs(output_dir, exist_ok=True)
    written: list[str] = []
    if options.legend:
        legend = visualize.legend(segmenter.num_segments)
        written.append(visualize.write_png(os.path.join(output_dir, "legend.png"), legend))
    for item in items:
        if item.is_video:
            written += segment_video(segmenter, item, output_dir, options, batch_size)
        else:
            written += segment_image(segmenter, item, output_dir, options)
    return written


def _run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]} (inputs go in --input)")
    if not FLAGS.input:
        raise app.UsageError("give at least one --input (image, folder or video)")
    options = Options(
        save_labels=FLAGS.save_labels,
        save_overlay=FLAGS.save_overlay,
        save_soft=FLAGS.save_soft,
        keypoints=FLAGS.keypoints,
        legend=FLAGS.legend,
        video_formats=tuple(dict.fromkeys(FLAGS.video_formats)),
        alpha=FLAGS.alpha,
        fps=FLAGS.fps,
        folders_as_videos=FLAGS.folders_as_videos,
    )
    cli.check_output_dir(FLAGS.output_dir, "--output_dir")
    items = collect_inputs(FLAGS.input, options.folders_as_videos)
    cli.check_weights_file(FLAGS.model)
    from coseg_tf.inference import load_segmenter  # after the input checks: bad input fails at once

    segmenter = load_segmenter(FLAGS.model, config_lib.config_path(FLAGS.config))
    segmenter.set_batch_size(FLAGS.batch_size)
    logging.info("segmenting %d input(s) with %s", len(items), segmenter)
    written = segment_all(segmenter, items, FLAGS.output_dir, options, FLAGS.batch_size)
    print(
        f"{len(items)} input(s), K = {segmenter.num_segments} parts; "
        f"wrote {len(written)} output(s) to {FLAGS.output_dir}"
    )


def main() -> None:
    """Console-script entry point."""
    cli.run(_run, _define_flags, "coseg-segment")


if __name__ == "__main__":
    main()
