"""The README's pictures of coseg-segment and coseg-swap, made by running the two commands.

    .venv/bin/python docs/make_pictures.py                      # runs/demo's model if trained
    .venv/bin/python docs/make_pictures.py --model=RUN_DIR --data=DIR --parts=2,5

With the main job's model (`runs/demo/model`, `make demo`) the frames are held-out videos
of its synthetic set (`runs/demo/data/png/test`). Without it the pictures use the tiny
puppet model of the tests instead: export/testing.py's puppets and model, with its part
maps, anchors and generator fitted to puppets of two colour layouts as in
tests/test_swap.py (`fit_swap_model`, here with more generator steps), ~1 min on one core.
The pictures say which model made them.

Writes `<out>/segment_example.png` (frame | coloured parts and anchor keypoints | part map,
and the legend) and `<out>/swap_example.png` (source; then target | mask | result per frame).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile

import cv2
import numpy as np
from absl import app, flags

REPO = pathlib.Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_string("model", str(REPO / "runs/demo/model"), "Trained run dir; the tiny test model if absent.")
flags.DEFINE_string("data", str(REPO / "runs/demo/data/png/test"), "Held-out videos of the model's data set.")
flags.DEFINE_list("parts", None, "Part ids to swap (default: 1,3,4 for the tiny model, 1,2 otherwise).")
flags.DEFINE_string("out", str(REPO / "docs"), "Where the two PNGs go.")
flags.DEFINE_integer("generator_steps", 600, "Tiny model only: generator fitting steps (the tests use 50).")
flags.DEFINE_integer("zoom", 3, "Nearest-neighbour enlargement of the (small) frames.")


def _command(module: str, args: list[str]) -> None:
    """Runs `python -m module args` (the command as a user would) and fails loudly."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    print(result.stdout.strip())


def _read_rgb(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise RuntimeError(f"cannot read {path}")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _caption(picture: np.ndarray, text: str, height: int = 18) -> np.ndarray:
    """`picture` with a white band of text above it."""
    band = np.full((height, picture.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (3, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, picture], axis=0)


def _pad_to(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.full((height, width, 3), 255, np.uint8)
    out[: picture.shape[0], : picture.shape[1]] = picture
    return out


def _demo_inputs(model: str, data: str) -> tuple[str, list[np.ndarray], np.ndarray, str]:
    """The demo model, frames of a held-out video and a source frame of another one."""
    from coseg_tf import config as config_lib
    from coseg_tf.data import video_io

    config = config_lib.load_config(os.path.join(model, "config.yaml"))
    frame_size = tuple(config["dataset_params"]["frame_shape"][:2])
    videos = video_io.list_videos(data)
    if len(videos) < 2:
        raise RuntimeError(f"need two held-out videos in {data}, found {len(videos)}")
    target = video_io.load_frames(videos[0], frame_size)
    source = video_io.load_frames(videos[1], frame_size)[0]
    return model, list(target), source, f"model: {model}"


def _tiny_inputs(workdir: str) -> tuple[str, list[np.ndarray], np.ndarray, str]:
    """The tests' tiny puppet model, saved as a run dir, a puppet video and an other-look source."""
    from coseg_tf import config as config_lib
    from coseg_tf.export import testing
    from coseg_tf.model import CosegModel

    spec = importlib.util.spec_from_file_location("test_swap", REPO / "tests" / "test_swap.py")
    test_swap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_swap)
    run = testing.trained_run(os.path.join(workdir, "base"))
    fitted = test_swap.fit_swap_model(run["keras_path"], generator_steps=FLAGS.generator_steps)
    model = CosegModel(fitted.segmenter, fitted.generator, perceptual=None, name="coseg")
    model.built = True
    run_dir = os.path.join(workdir, "swap_model")
    os.makedirs(os.path.join(run_dir, "final"), exist_ok=True)
    config_lib.save_config(fitted.config, os.path.join(run_dir, "config.yaml"))
    model.save(os.path.join(run_dir, "final", "model.keras"))
    rng = np.random.default_rng(21)
    colours = testing.puppet_colours(rng)
    target = [testing.render_puppet(64, rng, colours)[0] for _ in range(12)]
    other = np.clip(test_swap.OTHER_LOOK + rng.uniform(-0.05, 0.05, test_swap.OTHER_LOOK.shape), 0, 1)
    source = testing.render_puppet(64, rng, other.astype(np.float32))[0]

    def to_uint8(x: np.ndarray) -> np.ndarray:
        return (x * 255 + 0.5).astype(np.uint8)

    caption = "tiny test puppet model (tests/test_swap.py fit_swap_model), not the trained demo"
    return run_dir, [to_uint8(f) for f in target], to_uint8(source), caption


def main(argv: list[str]) -> None:
    del argv
    from coseg_tf import visualize
    from coseg_tf.data import video_io

    workdir = tempfile.mkdtemp(prefix="coseg_pictures_")
    demo = os.path.isfile(os.path.join(FLAGS.model, "final", "model.keras"))
    if demo:
        model, target, source, caption = _demo_inputs(FLAGS.model, FLAGS.data)
        parts = FLAGS.parts or ["1", "2"]
    else:
        print(f"no trained model at {FLAGS.model}: using the tiny test model")
        model, target, source, caption = _tiny_inputs(workdir)
        parts = FLAGS.parts or ["1", "3", "4"]
    zoom = FLAGS.zoom

    def big(picture: np.ndarray) -> np.ndarray:
        return cv2.resize(picture, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)

    # coseg-segment on four frames of the target video (a folder of images).
    frames_dir = os.path.join(workdir, "frames")
    os.makedirs(frames_dir)
    picks = np.linspace(0, len(target) - 1, 4).round().astype(int)
    for i in picks:
        visualize.write_png(os.path.join(frames_dir, f"frame{i:03d}.png"), target[i])
    seg_dir = os.path.join(workdir, "segment")
    _command(
        "coseg_tf.segment",
        ["--model", model, "--input", frames_dir, "--output_dir", seg_dir, "--keypoints", "--alpha=0.55"],
    )
    legend = _read_rgb(os.path.join(seg_dir, "legend.png"))
    num_segments = legend.shape[0] // 22 - 1
    rows = []
    for i in picks:
        name = f"frame{i:03d}"
        labels = _read_rgb(os.path.join(seg_dir, f"{name}_labels.png"))
        cells = [
            big(target[i]),
            big(_read_rgb(os.path.join(seg_dir, f"{name}_overlay.png"))),
            big(visualize.color_labels(labels, num_segments)),
        ]
        rows.append(visualize.side_by_side(*cells, gap=3))
    grid = _caption(
        np.concatenate([np.pad(r, ((0, 3), (0, 0), (0, 0)), constant_values=255) for r in rows]),
        "frame | parts + anchor keypoints | part map",
    )
    height = max(grid.shape[0], legend.shape[0])
    picture = visualize.side_by_side(
        _pad_to(grid, height, grid.shape[1]), _pad_to(legend, height, legend.shape[1]), gap=8
    )
    picture = _caption(picture, caption)
    os.makedirs(FLAGS.out, exist_ok=True)
    segment_png = os.path.join(FLAGS.out, "segment_example.png")
    visualize.write_png(segment_png, picture)

    # coseg-swap: the source's parts into the target video, side by side.
    target_video = os.path.join(workdir, "target.mp4")
    video_io.write_video(target_video, target, 12.5)
    source_png = os.path.join(workdir, "source.png")
    visualize.write_png(source_png, source)
    swapped = os.path.join(workdir, "swapped")
    _command(
        "coseg_tf.swap",
        ["--model", model, "--source", source_png, "--target", target_video, f"--parts={','.join(parts)}"]
        + ["--side_by_side", "--output_dir", swapped],
    )
    from coseg_tf.data import video_io

    out = (video_io.read_video(os.path.join(swapped, "target_swap.mp4")) * 255 + 0.5).astype(np.uint8)
    rows = [big(out[i]) for i in picks]
    grid = _caption(
        np.concatenate([np.pad(r, ((0, 3), (0, 0), (0, 0)), constant_values=255) for r in rows]),
        f"target | mask of parts {','.join(parts)} | result",
    )
    source_cell = _caption(big(source), "source")
    height = max(grid.shape[0], source_cell.shape[0])
    picture = visualize.side_by_side(
        _pad_to(source_cell, height, source_cell.shape[1]), _pad_to(grid, height, grid.shape[1]), gap=8
    )
    picture = _caption(picture, caption)
    swap_png = os.path.join(FLAGS.out, "swap_example.png")
    visualize.write_png(swap_png, picture)
    print(f"wrote {segment_png} and {swap_png}")


if __name__ == "__main__":
    app.run(main)
