"""The talking heads (coseg_tf/data/heads.py): ground truth agrees with the pixels and the motion."""

import json
import os

import numpy as np
import pytest

from coseg_tf import ground_truth
from coseg_tf.data import heads, synthetic
from coseg_tf.data.heads import (
    HAIR,
    JOINT_NAMES,
    JOINT_PARTS,
    L_EYE,
    MOUTH,
    PART_NAMES,
    R_EYE,
    render_head_video,
)
from coseg_tf.testing import run_module

SIZE, FRAMES = 64, 24


@pytest.fixture(scope="module")
def videos():
    return [render_head_video(i, 0, num_frames=FRAMES, size=SIZE) for i in range(6)]


def part_area(video, part):
    return (video.labels == part).sum(axis=(1, 2))


def test_shapes_and_every_part_is_seen(videos):
    for v in videos:
        assert v.frames.shape == (FRAMES, SIZE, SIZE, 3) and v.frames.dtype == np.uint8
        assert v.labels.shape == (FRAMES, SIZE, SIZE) and v.labels.dtype == np.uint8
        assert v.landmarks.shape == (FRAMES, len(JOINT_NAMES), 2) and v.landmarks.dtype == np.float32
        assert v.part_colors.shape == (len(PART_NAMES), 2, 3)
        assert set(np.unique(v.labels)) == set(range(len(PART_NAMES)))
        assert v.name == f"head{videos.index(v):05d}#clip00"
        # A head and shoulders, not the whole frame.
        assert 0.2 < v.mask.mean() < 0.7


def test_every_part_pixel_has_one_of_the_part_colours(videos):
    for v in videos:
        for part in range(1, len(PART_NAMES)):
            pixels = v.frames[v.labels == part]
            first = np.all(pixels == v.part_colors[part, 0], axis=-1)
            second = np.all(pixels == v.part_colors[part, 1], axis=-1)
            assert np.all(first | second), PART_NAMES[part]
            assert first.any() and second.any(), PART_NAMES[part]  # the pattern is there


def test_flat_parts_have_exactly_their_colour_and_the_background_is_static():
    v = render_head_video(2, 0, num_frames=8, size=SIZE, part_style="flat")
    for part in range(1, len(PART_NAMES)):
        assert np.all(v.frames[v.labels == part] == v.part_colors[part, 0])
    always_background = (~v.mask).all(axis=0)
    assert always_background.mean() > 0.2
    np.testing.assert_array_equal(v.frames[0][always_background], v.frames[-1][always_background])
    with pytest.raises(ValueError, match="part_style"):
        render_head_video(0, 0, num_frames=2, part_style="striped")


def test_eyes_shut_at_a_blink_and_stay_on_the_face(videos):
    for v in videos:
        eyes = part_area(v, L_EYE) + part_area(v, R_EYE)
        shut = np.flatnonzero(eyes == 0)
        assert len(shut) >= 1  # at least one blink per clip
        assert (eyes > 0).mean() > 0.6  # open most of the time
        for t in shut:
            # Both eyes together, the face still there, and the eye landmarks seen on the face.
            assert part_area(v, heads.FACE)[t] > 0.5 * np.median(part_area(v, heads.FACE))
            for j in (JOINT_NAMES.index("left_eye"), JOINT_NAMES.index("right_eye")):
                x, y = np.round(v.landmarks[t, j]).astype(int)
                assert v.labels[t, y, x] == heads.FACE and v.landmark_visible[t, j]
        # An open eye has iris and white.
        t = int(np.argmax(eyes))
        pixels = v.frames[t][v.labels[t] == L_EYE]
        assert all(np.all(pixels == c, axis=-1).any() for c in v.part_colors[L_EYE])


def test_the_mouth_opens_and_closes(videos):
    for v in videos:
        area = part_area(v, MOUTH)
        assert area.min() > 0
        assert area.max() >= 2 * area.min(), area
        # The open mouth shows its inside colour; a closed one only lips.
        inside = np.all(v.frames == v.part_colors[MOUTH, 1], axis=-1) & (v.labels == MOUTH)
        assert inside[int(np.argmax(area))].any() and not inside[int(np.argmin(area))].any()


def test_the_head_moves_more_than_the_shoulders():
    def motion(points):  # mean distance from the mean position, pixels
        return np.linalg.norm(points - points.mean(0), axis=-1).mean()

    head, shoulders = [], []
    for i in range(6):
        v = render_head_video(i, 0, num_frames=48, size=SIZE)
        head.append(motion(v.landmarks[:, JOINT_NAMES.index("nose")]))
        shoulders.append(motion(v.landmarks[:, JOINT_NAMES.index("left_shoulder")]))
    assert min(shoulders) > 0.1  # the shoulders move too
    assert np.mean(head) > 2 * np.mean(shoulders), (head, shoulders)


def test_landmarks_are_in_the_frame_and_on_their_parts(videos):
    for v in videos:
        assert np.all(v.landmarks >= 0) and np.all(v.landmarks <= SIZE - 1)
        pixel = np.round(v.landmarks).astype(int)
        for j, parts in enumerate(JOINT_PARTS):
            seen = v.labels[np.arange(FRAMES), pixel[:, j, 1], pixel[:, j, 0]]
            np.testing.assert_array_equal(v.landmark_visible[:, j], np.isin(seen, parts))
        # Only long hair covers a shoulder point; everything else is seen nearly always.
        assert v.landmark_visible[:, : JOINT_NAMES.index("left_shoulder")].mean() > 0.95


def test_identity_sets_the_look_and_the_clip_the_motion():
    a0, a1 = render_head_video(4, 0, num_frames=6), render_head_video(4, 1, num_frames=6)
    b0 = render_head_video(5, 0, num_frames=6)
    np.testing.assert_array_equal(a0.part_colors, a1.part_colors)
    assert not np.array_equal(a0.part_colors, b0.part_colors)
    assert not np.array_equal(a0.landmarks, a1.landmarks)
    # Hair shapes differ between identities: the hair's share of the foreground spreads widely.
    share = [(render_head_video(i, 0, num_frames=2).labels == HAIR).mean() for i in range(12)]
    assert max(share) > 1.5 * min(share)


def test_rendering_is_deterministic():
    a = render_head_video(2, 1, num_frames=6, size=32, seed=7)
    b = render_head_video(2, 1, num_frames=6, size=32, seed=7)
    c = render_head_video(2, 1, num_frames=6, size=32, seed=8)
    for field in ("frames", "labels", "landmarks", "landmark_visible", "part_colors"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.frames, c.frames)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("heads"))
    synthetic.generate_synthetic_dataset(
        root, num_videos=10, num_frames=6, size=SIZE, formats=("png",), clips_per_identity=2, family="heads"
    )
    return root


def test_dataset_has_the_puppets_layout_and_disjoint_identities(dataset):
    names = {
        split: sorted(n[:-4] for n in os.listdir(os.path.join(dataset, "png", split)))
        for split in ("train", "test")
    }
    assert len(names["train"]) == 8 and len(names["test"]) == 2
    assert all(n.startswith("head") for n in names["train"] + names["test"])
    assert {n.split("#")[0] for n in names["train"]}.isdisjoint({n.split("#")[0] for n in names["test"]})
    info = json.load(open(os.path.join(dataset, "ground_truth", "info.json")))
    assert info["family"] == "heads" and info["part_names"] == list(PART_NAMES)
    assert info["joint_names"] == list(JOINT_NAMES)
    name = names["test"][0]
    identity, clip = int(name[4:9]), int(name.split("#clip")[1])
    v = render_head_video(identity, clip, num_frames=6, size=SIZE)
    gt = synthetic.load_ground_truth(dataset, "test", name)
    np.testing.assert_array_equal(gt["labels"], v.labels)
    np.testing.assert_array_equal(gt["mask"], v.labels > 0)
    np.testing.assert_array_equal(gt["landmarks"], v.landmarks)


def test_the_evaluation_reads_it_as_it_reads_the_puppets(dataset):
    splits = ground_truth.read_synthetic(dataset, frames_per_video=3)
    test = splits["test"]
    assert test.part_names == list(PART_NAMES) and test.landmark_names == list(JOINT_NAMES)
    batch = test.load([0, 1])
    assert batch.images.shape == (2, SIZE, SIZE, 3) and batch.labels.max() <= len(PART_NAMES) - 1
    assert not set(splits["train"].identities) & set(test.identities)


def test_unknown_family_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic family 'faces'"):
        synthetic.generate_synthetic_dataset(str(tmp_path), num_videos=1, num_frames=2, family="faces")
    assert not os.listdir(tmp_path)  # refused before writing anything


def test_synth_command_writes_heads(tmp_path):
    out = str(tmp_path / "cli")
    result = run_module(
        "coseg_tf.data.make_synthetic",
        [
            f"--output_dir={out}",
            "--family=heads",
            "--num_videos=3",
            "--num_frames=4",
            "--size=32",
            "--layouts=png",
        ],
    )
    assert result.returncode == 0, result.stderr
    with open(os.path.join(out, "ground_truth", "info.json")) as f:
        assert json.load(f)["family"] == "heads"
    written = os.listdir(os.path.join(out, "png", "train")) + os.listdir(os.path.join(out, "png", "test"))
    assert len(written) == 3 and all(n.startswith("head") for n in written)
