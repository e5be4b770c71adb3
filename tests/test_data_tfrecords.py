"""TFRecords: the converter, the round trip, sampling and sharding of the reader, the command."""

import collections
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf.data import (
    DatasetStats,
    convert_to_tfrecords,
    is_tfrecord_dataset,
    make_pair_dataset,
    make_video_dataset,
    testing,
    video_io,
)
from coseg_tf.data.tfrecords import MANIFEST_NAME
from coseg_tf.data.video_io import DatasetError
from coseg_tf.testing import run_module

SHAPE = [32, 32, 3]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Mixed layouts in one dataset, plus one corrupt file."""
    root = tmp_path_factory.mktemp("src")
    train = str(root / "train")
    testing.write_video(os.path.join(train, "a"), testing.pattern_frames(5, video=0), "png")
    testing.write_video(os.path.join(train, "b"), testing.pattern_frames(6, video=1), "frames")
    testing.write_video(os.path.join(train, "c"), testing.pattern_frames(7, (48, 48), video=2), "mp4")
    with open(os.path.join(train, "bad.mp4"), "wb") as f:
        f.write(os.urandom(1000))
    testing.write_video(str(root / "test" / "y"), testing.pattern_frames(4, video=3), "gif")
    testing.write_video(str(root / "test" / "x"), testing.pattern_frames(3, video=0), "png")
    return root


@pytest.fixture(scope="module")
def converted(source, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tfr"))
    stats = DatasetStats()
    manifest = convert_to_tfrecords({"root_dir": str(source), "frame_shape": SHAPE}, out, stats=stats)
    return out, manifest, stats


def test_converter_writes_shards_and_a_manifest(converted):
    out, manifest, stats = converted
    assert is_tfrecord_dataset(out)
    on_disk = json.loads(open(os.path.join(out, MANIFEST_NAME)).read())
    assert on_disk == json.loads(json.dumps(manifest))
    assert sorted(v["name"] for v in manifest["splits"]["train"]["videos"]) == ["a", "b", "c"]
    assert [v["name"] for v in manifest["splits"]["test"]["videos"]] == ["x", "y"]  # sorted
    for info in manifest["splits"].values():
        for shard in info["shards"]:
            assert os.path.getsize(os.path.join(out, shard)) > 0
    assert stats.num_skipped == 1 and any(p.endswith("bad.mp4") for p in manifest["skipped"])


def test_pairs_round_trip_exactly(source, converted):
    out, _, _ = converted
    originals = {
        "a": video_io.read_video(str(source / "train" / "a.png"), SHAPE),
        "b": video_io.read_video(str(source / "train" / "b"), SHAPE),
        "c": video_io.read_video(str(source / "train" / "c.mp4"), SHAPE),
    }
    ex = testing.collect(
        make_pair_dataset(
            {"root_dir": out, "frame_shape": SHAPE}, batch_size=5, num_repeats=10, include_metadata=True
        )
    )
    assert collections.Counter(ex["video"]) == {b"a": 10, b"b": 10, b"c": 10}
    for src, tgt, name, (i, j) in zip(
        ex["source"], ex["target"], ex["video"], ex["frame_indices"], strict=True
    ):
        frames = originals[name.decode()]
        assert 0 <= i <= j < len(frames)  # drawn with replacement by default, as the original
        np.testing.assert_array_equal(src, frames[i])
        np.testing.assert_array_equal(tgt, frames[j])


def test_whole_videos_round_trip_exactly(source, converted):
    out, _, _ = converted
    got = [
        (n.numpy().decode(), f.numpy())
        for n, f in make_video_dataset({"root_dir": out, "frame_shape": SHAPE})
    ]
    assert [n for n, _ in got] == ["x", "y"]
    np.testing.assert_array_equal(got[0][1], video_io.read_video(str(source / "test" / "x.png"), SHAPE))
    np.testing.assert_array_equal(got[1][1], video_io.read_video(str(source / "test" / "y.gif"), SHAPE))


def test_reading_at_another_frame_shape_resizes(converted):
    out, _, _ = converted
    batch = next(
        iter(make_pair_dataset({"root_dir": out, "frame_shape": [16, 16, 3]}, batch_size=2, num_repeats=2))
    )
    assert batch["source"].shape == (2, 16, 16, 3)
    _, frames = next(iter(make_video_dataset({"root_dir": out, "frame_shape": [16, 16, 3]})))
    assert frames.shape == (3, 16, 16, 3)


def test_jpeg_frames_are_close(source, tmp_path):
    out = str(tmp_path / "jpeg")
    convert_to_tfrecords(
        {"root_dir": str(source), "frame_shape": SHAPE}, out, image_format="jpeg", splits=["test"]
    )
    _, frames = next(iter(make_video_dataset({"root_dir": out, "frame_shape": SHAPE})))
    original = video_io.read_video(str(source / "test" / "x.png"), SHAPE)
    assert np.abs(frames.numpy() - original).mean() < 0.02


def test_time_flip_and_seed_behave_as_in_the_file_pipeline(converted):
    out, _, _ = converted
    p = {"root_dir": out, "frame_shape": SHAPE, "augmentation_params": {"flip_param": {"time_flip": True}}}
    ex = testing.collect(make_pair_dataset(p, batch_size=5, num_repeats=10, include_metadata=True))
    swapped = sum(int(i > j) for i, j in ex["frame_indices"])
    assert 0 < swapped < 30
    for src, (i, _) in zip(ex["source"], ex["frame_indices"], strict=True):
        assert round(testing.frame_index_of(src)) == i
    again = testing.collect(make_pair_dataset(p, batch_size=5, num_repeats=10, include_metadata=True))
    np.testing.assert_array_equal(again["frame_indices"], ex["frame_indices"])


@pytest.fixture(scope="module")
def identity_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("ids")
    names = [f"A#clip{k}" for k in range(9)] + ["B#clip0"]
    testing.write_dataset(str(root / "train"), "png", [3] * 10, names=names, size=(8, 8))
    out = str(tmp_path_factory.mktemp("ids_tfr"))
    # One video per shard: 10 files, so two pipelines split the files rather than the records.
    manifest = convert_to_tfrecords(
        {"root_dir": str(root), "frame_shape": [8, 8, 3]}, out, shard_mb=0.0001, splits=["train"]
    )
    assert len(manifest["splits"]["train"]["shards"]) == 10
    return out


def test_id_sampling_in_expectation(identity_records):
    p = {"root_dir": identity_records, "frame_shape": [8, 8, 3], "id_sampling": True}
    names = testing.collect(
        make_pair_dataset(p, batch_size=10, num_repeats=100, drop_remainder=False, include_metadata=True)
    )["video"]
    assert 160 < len(names) < 240  # 2 identities x 100 repeats, in expectation
    assert 0.4 < sum(n == b"B#clip0" for n in names) / len(names) < 0.6
    plain = testing.collect(
        make_pair_dataset({**p, "id_sampling": False}, batch_size=10, num_repeats=100, include_metadata=True)
    )["video"]
    assert len(plain) == 1000 and collections.Counter(plain)[b"B#clip0"] == 100


@pytest.mark.parametrize("many_shards", [True, False])
def test_input_pipelines_get_disjoint_shares(identity_records, converted, many_shards):
    root, shape = (identity_records, [8, 8, 3]) if many_shards else (converted[0], SHAPE)
    shares = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id)
        ds = make_pair_dataset(
            {"root_dir": root, "frame_shape": shape},
            batch_size=2,
            num_repeats=4,
            input_context=context,
            drop_remainder=False,
            include_metadata=True,
        )
        shares.append(collections.Counter(testing.collect(ds)["video"]))
    assert shares[0] != shares[1] and all(shares)
    total = shares[0] + shares[1]
    assert set(total.values()) == {4}  # every video exactly num_repeats times over both


def test_missing_split_and_double_conversion_are_errors(identity_records):
    with pytest.raises(DatasetError, match="no 'test' split"):
        make_video_dataset({"root_dir": identity_records, "frame_shape": [8, 8, 3]})
    with pytest.raises(DatasetError, match="already a TFRecord dataset"):
        convert_to_tfrecords(
            {"root_dir": identity_records, "frame_shape": [8, 8, 3]}, identity_records + "_again"
        )


def test_prepare_command(source, tmp_path):
    out = str(tmp_path / "cli")
    result = run_module(
        "coseg_tf.data.prepare",
        [
            f"--data_dir={source}",
            "--frame_shape=32,32",
            f"--output_dir={out}",
        ],
    )
    assert result.returncode == 0, result.stderr
    assert "train: 3 videos" in result.stdout and "skipped: 1" in result.stdout
    assert is_tfrecord_dataset(out)


def test_epoch_size_of_a_tfrecord_dataset(identity_records):
    from coseg_tf.data import epoch_size

    p = {"root_dir": identity_records, "frame_shape": [8, 8, 3]}
    assert epoch_size(p, num_repeats=3) == 30
    assert epoch_size({**p, "id_sampling": True}, num_repeats=3) == 6


def _upload(local: str, remote: str) -> None:
    for folder, _, files in os.walk(local):
        relative = os.path.relpath(folder, local)
        target = remote if relative == "." else f"{remote}/{relative}"
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f"{target}/{name}", overwrite=True)


def test_non_local_paths_go_through_gfile(source, tmp_path):
    # TensorFlow's in-memory filesystem stands in for cloud storage (gs://, s3://).
    remote = f"ram://coseg-test-{os.getpid()}"
    _upload(str(source), f"{remote}/src")
    p = {"root_dir": f"{remote}/src", "frame_shape": SHAPE}
    ex = testing.collect(make_pair_dataset(p, batch_size=3, num_repeats=2, include_metadata=True))
    assert collections.Counter(ex["video"]) == {b"a": 2, b"b": 2, b"c": 2}
    c = video_io.read_video(str(source / "train" / "c.mp4"), SHAPE)
    for src, name, (i, _) in zip(ex["source"], ex["video"], ex["frame_indices"], strict=True):
        if name == b"c":  # an mp4 read from a non-local path (decoded from a temp copy)
            np.testing.assert_array_equal(src, c[i])
    stats = DatasetStats()
    convert_to_tfrecords(p, f"{remote}/tfr", stats=stats)
    assert is_tfrecord_dataset(f"{remote}/tfr") and stats.num_skipped == 1
    names = [n.numpy() for n, _ in make_video_dataset({"root_dir": f"{remote}/tfr", "frame_shape": SHAPE})]
    assert names == [b"x", b"y"]
