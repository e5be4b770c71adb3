"""coseg-segment end to end (images, a folder, a video), its errors, and the part colours."""

import os
import subprocess

import cv2
import numpy as np
import pytest

from coseg_tf import inference, segment, visualize
from coseg_tf.data import video_io
from coseg_tf.export import testing
from coseg_tf.testing import run_module


@pytest.fixture(scope="module")
def run(export_session):
    return testing.trained_run(export_session)


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return run_module("coseg_tf.segment", args)


def _write_rgb(path: str, image: np.ndarray) -> str:
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 72x90 PNG, a folder of two 64x64 frames, and a 6-frame 12.5 fps mp4 of 80x80 frames."""
    import imageio.v2 as imageio

    root = tmp_path_factory.mktemp("segment_inputs")
    rng = np.random.default_rng(3)
    frames = [(testing.render_puppet(64, rng)[0] * 255 + 0.5).astype(np.uint8) for _ in range(9)]
    image = _write_rgb(str(root / "still.png"), cv2.resize(frames[0], (90, 72)))
    folder = root / "folder"
    folder.mkdir()
    for i in (1, 2):
        _write_rgb(str(folder / f"f{i}.png"), frames[i])
    video = str(root / "clip.mp4")
    with imageio.get_writer(video, fps=12.5, codec="libx264", macro_block_size=1, quality=None) as writer:
        for frame in frames[3:]:
            writer.append_data(cv2.resize(frame, (80, 80)))
    return {"image": image, "folder": str(folder), "video": video}


def test_coseg_segment_writes_every_output(run, inputs, tmp_path):
    out = tmp_path / "out"
    result = _cli(
        ["--model", run["run_dir"], "--input", inputs["image"], "--input", inputs["folder"]]
        + ["--input", inputs["video"], "--output_dir", str(out), "--video_formats=mp4,gif"]
        + ["--keypoints", "--save_soft"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clip" in result.stderr  # the video's progress bar
    names = set(os.listdir(out))
    assert {"legend.png", "still_labels.png", "still_overlay.png", "still_soft.npy"} <= names
    assert {
        "f1_labels.png",
        "f2_overlay.png",
        "clip_overlay.mp4",
        "clip_overlay.gif",
        "clip_soft.npy",
    } <= names

    # Label maps are part ids at the input's size, the same as the Python API gives.
    labels = cv2.imread(str(out / "still_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (72, 90) and labels.max() <= 4
    segmenter = inference.load_segmenter(run["run_dir"])
    expected = segmenter.segment(segment.read_image(inputs["image"])).labels_at(72, 90)[0]
    assert np.mean(labels == expected) > 0.999
    assert len(np.unique(labels)) == 5
    overlay = cv2.imread(str(out / "still_overlay.png"))
    assert overlay.shape == (72, 90, 3)
    assert np.load(out / "still_soft.npy").shape == (32, 32, 5)

    # Videos: one overlay frame per input frame, at the input's frame rate; labels per frame.
    for name in ("clip_overlay.mp4", "clip_overlay.gif"):
        frames = video_io.read_video(str(out / name))
        assert frames.shape[:3] == (6, 80, 80), name
        assert visualize.video_fps(str(out / name)) == pytest.approx(12.5), name
    assert sorted(os.listdir(out / "clip_labels")) == [f"{t:05d}.png" for t in range(6)]
    assert np.load(out / "clip_soft.npy").shape == (6, 32, 32, 5)


def test_an_unreadable_image_is_named(run, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    result = _cli(["--model", run["run_dir"], "--input", str(bad), "--output_dir", str(tmp_path / "o")])
    assert result.returncode == 2
    assert f"coseg-segment: error: cannot decode image {bad}" in result.stderr


def test_bad_flags_and_help():
    # Both fail before the model or TensorFlow is loaded.
    result = _cli(["--model=m", "--input=x.png", "--output_dir=o", "--alpha=2"])
    assert result.returncode != 0 and "--alpha must be in [0, 1]" in result.stderr
    result = _cli(["--model=m", "--input=x.png", "--output_dir=o", "--video_formats=avi"])
    assert result.returncode != 0 and "--video_formats must list mp4 and/or gif" in result.stderr
    shown = _cli(["--help"])  # absl exits with 1 after the help, as coseg-synth does
    for flag in (
        "--model",
        "--input",
        "--output_dir",
        "--[no]save_soft",
        "--[no]keypoints",
        "--video_formats",
    ):
        assert flag in shown.stdout, flag


def test_inputs_are_checked_and_named(tmp_path):
    with pytest.raises(segment.InputFileError, match="input not found: .*missing.png"):
        segment.collect_inputs([str(tmp_path / "missing.png")])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(segment.InputFileError, match="notes.txt: not an image"):
        segment.collect_inputs([str(tmp_path / "notes.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(segment.InputFileError, match="no images .* in folder .*empty"):
        segment.collect_inputs([str(tmp_path / "empty")])
    assert segment.collect_inputs([str(tmp_path / "empty")], folders_as_videos=True)[0].is_video
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(segment.InputFileError, match="cannot read video .*broken.mp4"):
        segment.read_frames(str(broken))


def test_part_colours_are_fixed_per_id():
    # Part k has one colour whatever the frame: the palette is indexed by id only.
    labels = np.array([[0, 1, 2], [3, 4, 4]])
    first, second = visualize.color_labels(labels, 4), visualize.color_labels(labels[::-1], 4)
    np.testing.assert_array_equal(first[0, 1], second[1, 1])
    np.testing.assert_array_equal(first[1], second[0])
    colours = visualize.palette(4)
    assert colours.shape == (5, 3) and np.all(colours[0] == 0)
    assert len({tuple(c) for c in colours}) == 5
    legend = visualize.legend(4)
    assert legend.shape[0] > 5 * 10
    # The legend's swatch of part k has the palette's colour k.
    for k in range(5):
        assert (np.all(legend == colours[k], axis=-1)).sum() > 50, k
    # Keypoints are drawn where they are (x, y in pixels).
    canvas = np.zeros((40, 60, 3), np.uint8)
    drawn = visualize.draw_keypoints(canvas, np.array([[10.0, 30.0]]), radius=2)
    assert drawn[30, 10].tolist() == colours[1].tolist()
    assert drawn[10, 30].sum() == 0
