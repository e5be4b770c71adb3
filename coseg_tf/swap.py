"""`coseg-swap`: video editing by part swap (paper Sec. 4.3, Fig. 6, Sup. Mat. D).

    coseg-swap --model=runs/demo/model --source=face.png --target=clip.mp4 --parts=1,3 \
        --output_dir=swapped --side_by_side

The chosen parts of the source image replace those of every target frame: both are
segmented, the source's encoder features are deformed to the target by the segment motion,
blended with the target's features under the mask of the chosen parts, and decoded. The
output, `<output_dir>/<target name>_swap.mp4` (and/or `.gif`, see --video_formats), has the
target's frame count and frame rate, at the model's frame size (frames of other sizes are
centre-cropped to its aspect ratio with --crop=center, else stretched).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

import numpy as np
from absl import app, flags, logging

from coseg_tf import cli
from coseg_tf import config as config_lib
from coseg_tf.segment import InputFileError, output_stem, read_frames, read_image

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined when run as a command only (see coseg_tf/data/make_synthetic.py).
    cli.define_model_flags(
        "The whole model (segmenter + generator): a trainer run dir, its final/model.keras, a tf.train "
        "checkpoint, an original .pth.tar (with --config), or a SavedModel exported with part swap."
    )
    flags.DEFINE_string(
        "source",
        None,
        "The image whose parts are taken (an image, or a video: see --source_frame).",
        required=True,
    )
    flags.DEFINE_integer("source_frame", 0, "When --source is a video: the frame to take.", lower_bound=0)
    flags.DEFINE_string(
        "target", None, "The video to edit: .mp4/.mov/.avi/.gif, or a folder of frames.", required=True
    )
    flags.DEFINE_list(
        "parts", None, "Part ids to take from the source, e.g. 1,3 (0 = background).", required=True
    )
    flags.DEFINE_enum(
        "mask",
        "soft",
        ["soft", "hard"],
        "soft: the part probabilities (smooth edges, as the "
        "paper); hard: pixels whose most likely part is chosen.",
    )
    flags.DEFINE_enum(
        "segmentation",
        "target",
        ["target", "source"],
        "Whose segmentation gives the mask: the target frame's, or the source's deformed to the target.",
    )
    flags.DEFINE_bool("side_by_side", False, "Write [target | mask | result] frames, as the paper's figures.")
    flags.DEFINE_enum(
        "crop",
        "center",
        ["center", "none"],
        "Fit frames to the model's aspect ratio by a centred crop, or stretch them (none).",
    )
    flags.DEFINE_string(
        "output_dir", None, "Where the video goes (created): <target name>_swap.<format>.", required=True
    )
    # The old spelling named the video file; such a value is still written as that file.
    cli.deprecated_alias("output", "output_dir")
    flags.DEFINE_list("video_formats", ["mp4"], "Output video formats: mp4, gif (comma-separated).")
    flags.DEFINE_float("fps", 25.0, "Frame rate when the target stores none (a folder of frames).")
    flags.DEFINE_integer("batch_size", 8, "Target frames per forward pass.", lower_bound=1)
    flags.register_validator("fps", lambda v: v > 0, "--fps must be > 0")
    flags.register_validator(
        "video_formats",
        lambda v: bool(v) and all(f in ("mp4", "gif") for f in v),
        "--video_formats must list mp4 and/or gif",
    )


def parse_parts(values: list[str]) -> list[int]:
    """`--parts` as integers (range checked against the model later, when K is known).

    Args:
      values: The `--parts` list's strings; blank ones are ignored.

    Returns:
      The part ids.

    Raises:
      app.UsageError: A value is not an integer, or there is none.
    """
    try:
        parts = [int(v) for v in values if v.strip()]
    except ValueError:
        raise app.UsageError(
            f"--parts must be integer part ids such as 1,3; got {','.join(values)}"
        ) from None
    if not parts:
        raise app.UsageError("--parts needs at least one part id (0 = background, 1..K the parts)")
    return parts


def read_source(path: str, frame: int = 0) -> np.ndarray:
    """The source image (uint8 RGB): an image file, or one frame of a video.

    Args:
      path: An image file, or a video (any layout).
      frame: The video frame to take.

    Returns:
      [H, W, 3] uint8 RGB image.

    Raises:
      InputFileError: `path` does not exist or the video has no frame `frame`.
    """
    from coseg_tf import fileio
    from coseg_tf.data import video_io

    if not fileio.exists(path):
        raise InputFileError(f"source not found: {path}")
    if os.path.splitext(path)[1].lower() in video_io.IMAGE_EXTENSIONS:
        return read_image(path)
    frames = read_frames(path)
    if frame >= len(frames):
        raise InputFileError(f"--source_frame={frame} but {path} has {len(frames)} frames")
    return frames[frame]


def read_target(path: str) -> np.ndarray:
    """The target video as uint8 RGB [T, H, W, 3] (any layout `video_io.read_video` reads).

    Args:
      path: The target video (any layout).

    Returns:
      [T, H, W, 3] uint8 RGB frames.

    Raises:
      InputFileError: `path` does not exist.
    """
    from coseg_tf import fileio

    if not fileio.exists(path):
        raise InputFileError(f"target not found: {path}")
    return read_frames(path)


@dataclasses.dataclass
class SwapSettings:
    """The editing choices (the flags' values)."""

    parts: list[int]
    soft: bool = True
    use_source_segmentation: bool = False
    side_by_side: bool = False
    crop: str = "center"
    fps: float = 25.0


def output_paths(output_dir: str, target: str, video_formats: Sequence[str] = ("mp4",)) -> list[str]:
    """Where `coseg-swap` writes the edited `target`: one video a format, named after the target.

    Args:
      output_dir: The output directory.
      target: The target video (a file or a folder of frames).
      video_formats: `mp4` and/or `gif`.

    Returns:
      `<output_dir>/<target name>_swap.<format>` for each format, e.g. `out/clip_swap.mp4`.
    """
    return [os.path.join(output_dir, f"{output_stem(target)}_swap.{fmt}") for fmt in video_formats]


def swap_video(
    swapper,
    source: str,
    target: str,
    outputs: Sequence[str],
    settings: SwapSettings,
    source_frame: int = 0,
) -> dict:
    """Writes the edited target video to each of `outputs` (.mp4 or .gif).

    Args:
      swapper: The `inference.PartSwapper`.
      source: The image (or video, see `source_frame`) whose parts are taken.
      target: The video to edit.
      outputs: The video files to write, one a format.
      settings: The editing choices.
      source_frame: When `source` is a video: the frame to take.

    Returns:
      What was written: "paths", "frames", "fps" and "size" ((height, width)).

    Raises:
      InputFileError: If the source or target is missing or cannot be decoded.
    """
    from tqdm import tqdm

    from coseg_tf import visualize
    from coseg_tf.data import video_io

    source_image = read_source(source, source_frame)
    frames = read_target(target)
    fps = visualize.video_fps(target, settings.fps)
    results = []
    step = swapper.batch_size
    with tqdm(total=len(frames), desc="swap", unit="frame", file=sys.stderr) as progress:
        for start in range(0, len(frames), step):
            results.append(
                swapper.swap(
                    source_image,
                    frames[start : start + step],
                    settings.parts,
                    soft=settings.soft,
                    use_source_segmentation=settings.use_source_segmentation,
                    crop=settings.crop,
                )
            )
            progress.update(min(step, len(frames) - start))
    out_frames = []
    for result in results:
        for image, mask, shown in zip(result.frames, result.masks, result.targets, strict=True):
            picture = visualize.to_uint8(image)
            if settings.side_by_side:
                mask_picture = visualize.mask_picture(mask, picture.shape[:2])
                picture = visualize.side_by_side(visualize.to_uint8(shown), mask_picture, picture)
            out_frames.append(picture)
    paths = [video_io.write_video(output, out_frames, fps) for output in outputs]
    return {"paths": paths, "frames": len(out_frames), "fps": fps, "size": out_frames[0].shape[:2]}


def _run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    parts = parse_parts(FLAGS.parts)
    settings = SwapSettings(
        parts=parts,
        soft=FLAGS.mask == "soft",
        use_source_segmentation=FLAGS.segmentation == "source",
        side_by_side=FLAGS.side_by_side,
        crop=FLAGS.crop,
        fps=FLAGS.fps,
    )
    output_dir = FLAGS.output_dir
    if FLAGS["output"].present and os.path.splitext(output_dir)[1].lower() in (".mp4", ".gif"):
        outputs = [output_dir]  # the deprecated --output=<video file>
        output_dir = os.path.dirname(output_dir) or "."
    else:
        outputs = output_paths(output_dir, FLAGS.target, dict.fromkeys(FLAGS.video_formats))
    cli.check_output_dir(output_dir, "--output_dir")
    cli.check_weights_file(FLAGS.model)
    from coseg_tf.inference import PartSwapper  # after the checks above: bad input fails at once

    swapper = PartSwapper.load(FLAGS.model, config_lib.config_path(FLAGS.config), batch_size=FLAGS.batch_size)
    logging.info("part swap with %s", swapper.segmenter)
    info = swap_video(swapper, FLAGS.source, FLAGS.target, outputs, settings, FLAGS.source_frame)
    height, width = info["size"]
    written = ", ".join(info["paths"])
    print(f"wrote {written}: {info['frames']} frames at {info['fps']:g} fps, {width}x{height}")


def main() -> None:
    """Console-script entry point."""
    cli.run(_run, _define_flags, "coseg-swap")


if __name__ == "__main__":
    main()
