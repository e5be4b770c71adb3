"""The palette, the picture grid and the one video writer (video_io.write_video)."""

import cv2
import numpy as np
import pytest

from coseg_tf import visualize
from coseg_tf.data import video_io


def test_the_palette_gives_every_part_its_own_colour_and_black_background():
    colours = visualize.palette(10)
    assert colours.shape == (11, 3) and colours.dtype == np.uint8
    assert colours[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in colours}) == 11
    labels = np.array([[0, 3], [10, 12]])  # ids above K are clipped to K
    assert visualize.color_labels(labels, 10).tolist() == colours[[[0, 3], [10, 10]]].tolist()


def test_keypoints_are_drawn_at_their_pixels():
    canvas = np.zeros((20, 30, 3), np.uint8)
    drawn = visualize.draw_keypoints(canvas, np.array([[25.0, 4.0], [np.nan, 1.0]]), radius=2)
    assert drawn[4, 25].tolist() == visualize.palette(2)[1].tolist()
    assert drawn[15, 5].tolist() == [0, 0, 0]


def test_grid_borders_and_zoom():
    red = np.zeros((2, 3, 3), np.uint8)
    red[..., 0] = 255
    half = np.full((2, 2, 3), 0.5, np.float32)
    picture = visualize.grid([[red, half], [half, red]], border=1, zoom=2)
    assert picture.shape == ((2 * 4) * 2, (5 + 4) * 2, 3) and picture.dtype == np.uint8
    assert picture[0, 0].tolist() == [255, 255, 255]  # the border
    assert picture[2, 2].tolist() == [255, 0, 0]
    assert picture[2, 12].tolist() == [128, 128, 128]  # float cells are rounded to uint8
    with pytest.raises(ValueError, match="grid cells do not line up"):
        visualize.grid([[red], [half]])


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mov", "clip.avi", "clip.gif", "clip.png", "clip"])
def test_every_layout_is_written_and_reads_back(tmp_path, name):
    frames = np.zeros((3, 17, 9, 3), np.uint8)  # odd sides: H.264 needs a padded copy
    for t in range(3):
        frames[t, :, :, 0] = 40 + 80 * t
    path = video_io.write_video(str(tmp_path / name), frames, fps=5.0)
    back = video_io.read_video(path, [17, 9, 3])
    assert back.shape == (3, 17, 9, 3)
    np.testing.assert_allclose(back[..., 0].mean(axis=(1, 2)), [40 / 255, 120 / 255, 200 / 255], atol=0.03)


def test_a_frames_folder_may_carry_a_video_extension(tmp_path):
    frames = np.zeros((2, 4, 4), np.uint8)  # gray
    path = video_io.write_video(str(tmp_path / "id1#clip.mp4"), frames, folder=True)
    assert sorted(p.name for p in (tmp_path / "id1#clip.mp4").iterdir()) == ["00000.png", "00001.png"]
    assert cv2.imread(f"{path}/00001.png", cv2.IMREAD_UNCHANGED).shape == (4, 4)


def test_bad_frames_and_formats_are_named(tmp_path):
    with pytest.raises(ValueError, match="must be uint8, got float32"):
        video_io.write_video(str(tmp_path / "a.mp4"), np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="cannot write a video as .webm"):
        video_io.write_video(str(tmp_path / "a.webm"), np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="no frames to write"):
        video_io.write_video(str(tmp_path / "a.mp4"), [])
