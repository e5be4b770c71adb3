"""Reading every video layout: content, channel conversion, resizing, bad files."""

import os

import cv2
import numpy as np
import pytest

from coseg_tf.data import testing, video_io
from coseg_tf.data.video_io import DatasetError, VideoReadError

# Largest per-pixel error (in [0, 1]) each layout's codec may introduce on the test pattern.
TOLERANCE = {"frames": 0.0, "png": 0.0, "gif": 0.0, "jpg": 0.2, "mp4": 0.03, "mov": 0.03, "avi": 0.03}


@pytest.mark.parametrize("layout", testing.LAYOUTS)
def test_every_layout_reads_the_frames_in_order(tmp_path, layout):
    frames = testing.pattern_frames(7, (32, 32))
    path = testing.write_video(str(tmp_path / "clip"), frames, layout)
    out = video_io.read_video(path, [32, 32, 3])
    assert out.shape == (7, 32, 32, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert np.abs(out - frames / 255.0).max() <= TOLERANCE[layout] + 1e-6
    assert [round(testing.frame_index_of(f)) for f in out] == list(range(7))


@pytest.mark.parametrize("layout", ["frames", "png", "mp4"])
def test_selected_frames_equal_the_whole_video(tmp_path, layout):
    path = testing.write_video(str(tmp_path / "clip"), testing.pattern_frames(6), layout)
    source = video_io.source_for_path(path)
    whole = video_io.load_frames(source, (32, 32))
    picked = video_io.load_frames(source, (32, 32), [4, 1])
    np.testing.assert_array_equal(picked, whole[[4, 1]])


def test_grayscale_and_rgba_become_rgb(tmp_path):
    gray = testing.pattern_frames(3)[..., 0]  # [T, H, W]
    rgba = np.concatenate([testing.pattern_frames(3), np.full((3, 32, 32, 1), 7, np.uint8)], axis=-1)
    for name, frames in (("gray", gray), ("rgba", rgba)):
        for layout in ("frames", "png"):
            path = testing.write_video(str(tmp_path / f"{name}_{layout}"), frames, layout)
            out = video_io.read_video(path, [32, 32, 3])
            assert out.shape == (3, 32, 32, 3)
            if name == "gray":
                np.testing.assert_array_equal(out[..., 0], video_io.to_float(gray))
                np.testing.assert_array_equal(out[..., 1], out[..., 2])
            else:  # alpha dropped, colour kept
                np.testing.assert_array_equal(out, video_io.to_float(rgba[..., :3]))


def test_sixteen_bit_png_is_scaled_to_eight_bit(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    for t in range(2):
        cv2.imwrite(str(folder / f"{t}.png"), np.full((8, 8, 3), 256 * (100 + t), np.uint16))
    out = video_io.read_video(str(folder), [8, 8, 3])
    np.testing.assert_allclose(out[:, 0, 0, 0], [100 / 255, 101 / 255], atol=1e-6)


@pytest.mark.parametrize("layout", ["frames", "mp4", "gif"])
def test_frames_of_another_size_are_resized(tmp_path, layout):
    path = testing.write_video(str(tmp_path / "big"), testing.pattern_frames(4, (48, 64)), layout)
    out = video_io.read_video(path, [32, 32, 3])
    assert out.shape == (4, 32, 32, 3)
    assert [round(testing.frame_index_of(f)) for f in out] == [0, 1, 2, 3]


def test_stacked_image_frames_of_another_height_are_resized(tmp_path):
    path = testing.write_video(str(tmp_path / "tall"), testing.pattern_frames(3, (48, 32)), "png")
    assert video_io.read_video(path, [32, 32, 3]).shape == (3, 32, 32, 3)


def test_stacked_width_not_a_multiple_of_the_frame_width_is_an_error(tmp_path):
    path = testing.write_video(str(tmp_path / "strip"), testing.pattern_frames(3, (32, 32)), "png")
    source = video_io.source_for_path(path)
    with pytest.raises(DatasetError, match="multiple of the frame width"):
        video_io.probe_num_frames(source, 40)
    with pytest.raises(DatasetError, match="multiple of the frame width"):
        video_io.read_video(path, [32, 40, 3])
    assert video_io.probe_num_frames(source, 32) == 3


def test_frame_folders_sort_numerically(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = testing.pattern_frames(11)
    for t in range(11):  # 0.png ... 10.png: plain string order would put 10 after 1
        cv2.imwrite(str(folder / f"{t}.png"), frames[t][..., ::-1])
    out = video_io.read_video(str(folder), [32, 32, 3])
    assert [round(testing.frame_index_of(f)) for f in out] == list(range(11))


def test_listing_finds_each_layout_and_ignores_other_files(tmp_path):
    testing.write_video(str(tmp_path / "a"), testing.pattern_frames(2), "frames")
    testing.write_video(str(tmp_path / "b"), testing.pattern_frames(2), "png")
    testing.write_video(str(tmp_path / "c"), testing.pattern_frames(2), "mp4")
    testing.write_video(str(tmp_path / "d.mp4"), testing.pattern_frames(2), "frames")  # VoxCeleb-style folder
    (tmp_path / "notes.txt").write_text("x")
    np.savez(tmp_path / "c.npz", x=1)
    found = {s.name: s.kind for s in video_io.list_videos(str(tmp_path))}
    assert found == {"a": "frames", "b": "stacked", "c": "video", "d.mp4": "frames"}


def test_identity_is_the_name_before_the_first_hash():
    assert video_io.VideoSource("id10001#abc#0001", "x", "video").identity == "id10001"
    assert video_io.VideoSource("plain", "x", "video").identity == "plain"


@pytest.mark.parametrize("suffix", [".mp4", ".png", ".gif", ".avi"])
def test_corrupt_files_raise_video_read_error(tmp_path, suffix):
    path = str(tmp_path / f"broken{suffix}")
    with open(path, "wb") as f:
        f.write(os.urandom(2000))
    with pytest.raises(VideoReadError):
        video_io.read_video(path, [32, 32, 3])


def test_corrupt_video_fails_the_probe(tmp_path):
    path = str(tmp_path / "broken.mp4")
    with open(path, "wb") as f:
        f.write(b"\x00" * 100)
    with pytest.raises(VideoReadError):
        video_io.probe_num_frames(video_io.source_for_path(path), 32)
