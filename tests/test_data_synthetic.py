"""The synthetic puppet set: ground truth agrees with the pixels, layout, determinism, speed."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from coseg_tf.data import synthetic, video_io
from coseg_tf.data.synthetic import JOINT_NAMES, JOINT_PARTS, PART_NAMES, render_puppet_video
from coseg_tf.testing import run_module

SIZE, FRAMES = 64, 24


@pytest.fixture(scope="module")
def videos():
    return [render_puppet_video(i, 0, num_frames=FRAMES, size=SIZE) for i in range(6)]


def test_shapes_and_types(videos):
    v = videos[0]
    assert v.frames.shape == (FRAMES, SIZE, SIZE, 3) and v.frames.dtype == np.uint8
    assert v.labels.shape == (FRAMES, SIZE, SIZE) and v.labels.dtype == np.uint8
    assert v.landmarks.shape == (FRAMES, len(JOINT_NAMES), 2) and v.landmarks.dtype == np.float32
    assert v.landmark_visible.shape == (FRAMES, len(JOINT_NAMES))
    assert len(PART_NAMES) == 11 and PART_NAMES[0] == "background"
    assert set(np.unique(videos[0].labels)) <= set(range(11))


def test_every_part_pixel_has_one_of_the_part_colours(videos):
    for v in videos:
        for part in range(1, 11):
            pixels = v.frames[v.labels == part]
            assert len(pixels) > 0, PART_NAMES[part]
            first = np.all(pixels == v.part_colors[part, 0], axis=-1)
            second = np.all(pixels == v.part_colors[part, 1], axis=-1)
            assert np.all(first | second), PART_NAMES[part]
            assert first.any() and second.any()  # the stripes are there


def test_flat_parts_have_exactly_their_colour_and_the_background_differs():
    v = render_puppet_video(3, 0, num_frames=8, size=SIZE, part_style="flat")
    for part in range(1, 11):
        assert np.all(v.frames[v.labels == part] == v.part_colors[part, 0])
    # The background is muted: much lower saturation than any part colour.
    import cv2

    hsv = cv2.cvtColor(v.frames.reshape(-1, SIZE, 3), cv2.COLOR_RGB2HSV).reshape(v.frames.shape)
    background_sat = hsv[..., 1][~v.mask]
    part_sat = hsv[..., 1][v.mask]
    assert np.percentile(background_sat, 99) < np.percentile(part_sat, 1)


def test_background_is_static_and_textured(videos):
    v = videos[1]
    always_background = (~v.mask).all(axis=0)
    assert always_background.mean() > 0.3
    np.testing.assert_array_equal(v.frames[0][always_background], v.frames[-1][always_background])
    assert v.frames[0][always_background].std() > 3  # not a flat colour


def test_mask_is_the_foreground_of_the_labels(videos):
    for v in videos:
        np.testing.assert_array_equal(v.mask, v.labels > 0)


def test_landmarks_lie_on_the_parts_meeting_there(videos):
    near, total = 0, 0
    for v in videos:
        for t in range(FRAMES):
            for j, parts in enumerate(JOINT_PARTS):
                x, y = v.landmarks[t, j]
                region = np.isin(v.labels[t], parts)
                if not region.any():
                    continue
                ys, xs = np.nonzero(region)
                total += 1
                near += np.min((xs - x) ** 2 + (ys - y) ** 2) <= 2.0
    # Occluded joints (another part in front) can be farther; nearly all are on their parts.
    assert near / total > 0.9


def test_visibility_flag_matches_the_label_under_each_landmark(videos):
    occluded_by_other_part = 0
    for v in videos:
        px = np.round(v.landmarks).astype(int)
        for t in range(FRAMES):
            for j, parts in enumerate(JOINT_PARTS):
                x, y = px[t, j]
                inside = 0 <= x < SIZE and 0 <= y < SIZE
                label = v.labels[t, y, x] if inside else -1
                assert v.landmark_visible[t, j] == (inside and label in parts)
                occluded_by_other_part += inside and label not in parts and label > 0
        assert v.landmark_visible.mean() > 0.7
    assert occluded_by_other_part > 0  # parts do occlude each other


def test_parts_are_rigid(videos):
    # Joint-to-joint distances along one part stay constant while the puppet moves.
    pairs = [("left_shoulder", "left_elbow"), ("right_elbow", "right_wrist"), ("left_knee", "left_ankle")]
    for v in videos:
        for a, b in pairs:
            d = np.linalg.norm(
                v.landmarks[:, JOINT_NAMES.index(a)] - v.landmarks[:, JOINT_NAMES.index(b)], axis=-1
            )
            assert d.std() < 1e-3 * d.mean() and d.mean() > 3


def test_limbs_swing_widely_and_the_figure_is_large(videos):
    swings, heights = [], []
    for v in videos:
        shoulder, elbow = v.landmarks[:, 2], v.landmarks[:, 3]
        neck = v.landmarks[:, 1]
        hips = (v.landmarks[:, 8] + v.landmarks[:, 11]) / 2
        arm = np.arctan2(*(elbow - shoulder).T[::-1])
        body = np.arctan2(*(neck - hips).T[::-1])
        relative = np.unwrap(arm - body)
        swings.append(np.degrees(relative.max() - relative.min()))
        rows = np.nonzero(v.mask.any(axis=2))
        for t in range(FRAMES):
            ys = rows[1][rows[0] == t]
            heights.append((ys.max() - ys.min() + 1) / SIZE)
    assert np.median(swings) > 60
    assert 0.45 < np.median(heights) < 0.8


def test_deterministic_per_seed_and_video():
    a = render_puppet_video(2, 1, num_frames=6, size=32, seed=7)
    b = render_puppet_video(2, 1, num_frames=6, size=32, seed=7)
    c = render_puppet_video(2, 1, num_frames=6, size=32, seed=8)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert not np.array_equal(a.frames, c.frames)


def test_clips_of_an_identity_share_the_look_not_the_motion():
    a = render_puppet_video(4, 0, num_frames=6, size=SIZE)
    b = render_puppet_video(4, 1, num_frames=6, size=SIZE)
    np.testing.assert_array_equal(a.part_colors, b.part_colors)
    assert not np.allclose(a.landmarks, b.landmarks)
    assert a.name == "puppet00004#clip00" and b.name == "puppet00004#clip01"


def test_renders_at_256():
    v = render_puppet_video(0, 0, num_frames=3, size=256)
    assert v.frames.shape == (3, 256, 256, 3)
    assert 0.03 < v.mask.mean() < 0.4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("puppets"))
    roots = synthetic.generate_synthetic_dataset(
        root,
        num_videos=10,
        num_frames=8,
        size=SIZE,
        formats=("mp4", "png", "frames", "gif"),
        clips_per_identity=2,
    )
    return root, roots


def test_dataset_layout_and_split(dataset):
    root, roots = dataset
    assert roots == {f: os.path.join(root, f) for f in ("mp4", "png", "frames", "gif")}
    names = {
        split: sorted(n[:-4] for n in os.listdir(os.path.join(root, "png", split)))
        for split in ("train", "test")
    }
    assert len(names["train"]) == 8 and len(names["test"]) == 2  # 1 of 5 identities
    assert {n.split("#")[0] for n in names["train"]}.isdisjoint({n.split("#")[0] for n in names["test"]})
    for split, split_names in names.items():
        assert sorted(n[:-4] for n in os.listdir(os.path.join(root, "mp4", split))) == split_names
        assert sorted(os.listdir(os.path.join(root, "frames", split))) == split_names
        assert sorted(n[:-4] for n in os.listdir(os.path.join(root, "ground_truth", split))) == split_names
    info = json.load(open(os.path.join(root, "ground_truth", "info.json")))
    assert info["part_names"] == list(PART_NAMES) and info["joint_names"] == list(JOINT_NAMES)


def test_written_files_match_the_rendering_and_ground_truth(dataset):
    root, _ = dataset
    for split in ("train", "test"):
        for name in sorted(os.listdir(os.path.join(root, "ground_truth", split))):
            if not name.endswith(".npz"):
                continue
            name = name[:-4]
            identity, clip = int(name[6:11]), int(name.split("#clip")[1])
            v = render_puppet_video(identity, clip, num_frames=8, size=SIZE)
            gt = synthetic.load_ground_truth(root, split, name)
            np.testing.assert_array_equal(gt["labels"], v.labels)
            np.testing.assert_array_equal(gt["mask"], v.labels > 0)
            np.testing.assert_array_equal(gt["landmarks"], v.landmarks)
            png = video_io.read_video(os.path.join(root, "png", split, f"{name}.png"), [SIZE, SIZE, 3])
            np.testing.assert_array_equal(np.round(png * 255).astype(np.uint8), v.frames)
            frames = video_io.read_video(os.path.join(root, "frames", split, name), [SIZE, SIZE, 3])
            np.testing.assert_array_equal(frames, png)
            gif = video_io.read_video(os.path.join(root, "gif", split, f"{name}.gif"), [SIZE, SIZE, 3])
            np.testing.assert_array_equal(gif[v.labels > 0], png[v.labels > 0])  # palette keeps part colours
            assert np.abs(gif - png).max() < 0.1
            mp4 = video_io.read_video(os.path.join(root, "mp4", split, f"{name}.mp4"), [SIZE, SIZE, 3])
            assert mp4.shape == png.shape
            assert np.abs(mp4 - png).mean() < 0.03  # lossy, but this video's frames


def test_mp4_segments_are_not_shifted(dataset):
    # One encoder writes a split's videos and cuts them: each file must hold its own frames.
    root, _ = dataset
    names = sorted(n[:-4] for n in os.listdir(os.path.join(root, "png", "train")))
    mp4 = [
        video_io.read_video(os.path.join(root, "mp4", "train", f"{n}.mp4"), [SIZE, SIZE, 3]) for n in names
    ]
    png = [
        video_io.read_video(os.path.join(root, "png", "train", f"{n}.png"), [SIZE, SIZE, 3]) for n in names
    ]
    for i, m in enumerate(mp4):
        errors = [np.abs(m - p).mean() for p in png]
        assert int(np.argmin(errors)) == i
        per_frame = [[np.abs(m[t] - png[i][s]).mean() for s in range(8)] for t in range(8)]
        assert [int(np.argmin(row)) for row in per_frame] == list(range(8))


def test_generation_is_fast():
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        start = time.time()
        synthetic.generate_synthetic_dataset(root, num_videos=200, num_frames=32, size=64)
        elapsed = time.time() - start
    assert elapsed < 20, elapsed  # ~3 s on 2 cores; generous for a shared machine


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown formats"):
        synthetic.generate_synthetic_dataset(str(tmp_path), num_videos=1, num_frames=2, formats=("webm",))
    with pytest.raises(ValueError, match="even frame size"):
        synthetic.generate_synthetic_dataset(str(tmp_path), num_videos=1, num_frames=2, size=33)


def test_synth_command(tmp_path):
    out = str(tmp_path / "cli")
    result = run_module(
        "coseg_tf.data.make_synthetic",
        [
            f"--output_dir={out}",
            "--num_videos=3",
            "--num_frames=4",
            "--size=32",
            "--layouts=png",
        ],
    )
    assert result.returncode == 0, result.stderr
    assert f"png: dataset_params.root_dir={out}/png" in result.stdout
    written = os.listdir(os.path.join(out, "png", "train")) + os.listdir(os.path.join(out, "png", "test"))
    assert len(written) == 3


def test_synthetic_data_does_not_need_tensorflow():
    code = "import sys, coseg_tf.data.make_synthetic; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_generate_once_reuses_its_set_and_refuses_one_made_otherwise(tmp_path):
    root = str(tmp_path / "set")
    roots = synthetic.generate_once(root, num_videos=2, num_frames=2, size=32, formats=("png",))
    info = tmp_path / "set" / "ground_truth" / "info.json"
    made = info.stat().st_mtime_ns
    assert synthetic.generate_once(root, num_videos=2, num_frames=2, size=32, formats=("png",)) == roots
    assert info.stat().st_mtime_ns == made
    with pytest.raises(
        video_io.DatasetError, match=r"made with \{'num_frames': 2\}, not \{'num_frames': 3\}"
    ):
        synthetic.generate_once(root, num_videos=2, num_frames=3, size=32, formats=("png",))
    with pytest.raises(video_io.DatasetError, match=r"without the formats \['frames'\]"):
        synthetic.generate_once(root, num_videos=2, num_frames=2, size=32, formats=("frames",))
