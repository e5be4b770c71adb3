"""The frame-pair pipeline: formats, sampling, augmentation, split, sharding, bad input."""

import collections
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf.data import (
    DatasetStats,
    augment,
    catalog,
    make_pair_dataset,
    make_video_dataset,
    testing,
    video_io,
)
from coseg_tf.data.video_io import DatasetError

SHAPE = [32, 32, 3]


def params(root, **kwargs):
    return {"root_dir": str(root), "frame_shape": SHAPE, **kwargs}


@pytest.fixture(scope="module")
def layout_roots(tmp_path_factory):
    """For each layout, a dataset with train/ (3 videos of 5, 6 and 8 frames) and test/ (1 video)."""
    roots = {}
    for layout in testing.LAYOUTS:
        root = tmp_path_factory.mktemp(f"ds_{layout}")
        testing.write_dataset(str(root / "train"), layout, [5, 6, 8], names=["a", "b", "c"])
        testing.write_dataset(str(root / "test"), layout, [4], names=["z"])
        roots[layout] = root
    return roots


@pytest.mark.parametrize("layout", testing.LAYOUTS)
def test_pairs_are_two_sorted_distinct_frames_of_one_video(layout_roots, layout):
    root = layout_roots[layout]
    ds = make_pair_dataset(
        params(root, distinct_frames=True), batch_size=4, num_repeats=4, include_metadata=True
    )
    first = next(iter(ds))
    assert first["source"].shape == (4, 32, 32, 3) and first["source"].dtype == tf.float32
    ex = testing.collect(ds)
    assert len(ex["source"]) == 12  # 3 videos x 4 repeats
    videos = {
        n: video_io.read_video(str(root / "train" / n) + testing.EXTENSIONS[layout], SHAPE) for n in "abc"
    }
    for src, tgt, name, (i, j) in zip(
        ex["source"], ex["target"], ex["video"], ex["frame_indices"], strict=True
    ):
        frames = videos[name.decode()]
        assert 0 <= i < j < len(frames)
        np.testing.assert_array_equal(src, frames[i])
        np.testing.assert_array_equal(tgt, frames[j])
    assert collections.Counter(ex["video"]) == {b"a": 4, b"b": 4, b"c": 4}


def test_frame_pairs_cover_the_video_uniformly(layout_roots):
    ds = make_pair_dataset(params(layout_roots["png"]), batch_size=10, num_repeats=400, include_metadata=True)
    ex = testing.collect(ds)
    counts = collections.Counter()
    for name, (i, j) in zip(ex["video"], ex["frame_indices"], strict=True):
        if name == b"c":
            counts.update([int(i), int(j)])
    # 400 pairs of video c (8 frames): each frame expected in 2/8 of them (100 times).
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 60 and max(counts.values()) < 140


def test_same_frame_twice_only_without_distinct_frames(layout_roots):
    root = layout_roots["frames"]
    equal = 0
    # The default is the original's draw: with replacement, so a pair may be one frame twice.
    assert config_lib.DEFAULTS["dataset_params"]["distinct_frames"] is False
    for distinct in (True, False):
        ex = testing.collect(
            make_pair_dataset(
                params(root, distinct_frames=distinct), batch_size=10, num_repeats=60, include_metadata=True
            )
        )
        equal = sum(int(i == j) for i, j in ex["frame_indices"])
        assert (equal == 0) if distinct else (equal > 0)


def test_num_repeats_lengthens_the_epoch(layout_roots):
    root = layout_roots["frames"]
    for repeats in (1, 5):
        ex = testing.collect(
            make_pair_dataset(
                params(root), batch_size=2, num_repeats=repeats, drop_remainder=False, include_metadata=True
            )
        )
        assert collections.Counter(ex["video"]) == {b"a": repeats, b"b": repeats, b"c": repeats}


@pytest.fixture(scope="module")
def identity_root(tmp_path_factory):
    """Identity A has 9 clips, identity B one."""
    root = tmp_path_factory.mktemp("ids")
    names = [f"A#clip{k}" for k in range(9)] + ["B#clip0"]
    testing.write_dataset(str(root / "train"), "frames", [3] * 10, names=names, size=(16, 16))
    testing.write_dataset(str(root / "test"), "frames", [3], names=["C#clip0"], size=(16, 16))
    return root


def test_id_sampling_draws_an_identity_then_a_clip(identity_root):
    def share_of_b(id_sampling):
        ds = make_pair_dataset(
            {"root_dir": str(identity_root), "frame_shape": [16, 16, 3], "id_sampling": id_sampling},
            batch_size=10,
            num_repeats=100,
            include_metadata=True,
        )
        names = testing.collect(ds)["video"]
        return len(names), sum(n == b"B#clip0" for n in names) / len(names), set(names)

    size, share, names = share_of_b(True)
    assert size == 200  # 2 identities x 100 repeats
    assert 0.4 < share < 0.6
    assert len(names) == 10  # all of A's clips are used
    size, share, _ = share_of_b(False)
    assert size == 1000 and share == pytest.approx(0.1)


@pytest.fixture(scope="module")
def still_root(tmp_path_factory):
    """Videos whose frames are all the same colourful image: both frames of a pair are equal."""
    root = tmp_path_factory.mktemp("still")
    rng = np.random.default_rng(0)
    for v in range(2):
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        testing.write_video(str(root / "train" / f"s{v}"), np.stack([image] * 4), "frames")
    return root


@pytest.mark.parametrize("jitter", ["brightness", "contrast", "saturation", "hue"])
def test_colour_jitter_is_the_same_for_both_frames(still_root, jitter):
    aug = {"jitter_param": {jitter: 0.3}}
    plain = testing.collect(
        make_pair_dataset(params(still_root), batch_size=4, num_repeats=8, include_metadata=True)
    )
    ex = testing.collect(
        make_pair_dataset(
            params(still_root, augmentation_params=aug), batch_size=4, num_repeats=8, include_metadata=True
        )
    )
    changed = 0
    for src, tgt, name, before, before_name in zip(
        ex["source"], ex["target"], ex["video"], plain["source"], plain["video"], strict=True
    ):
        assert name == before_name  # same seed: same order, only the jitter differs
        np.testing.assert_allclose(src, tgt, atol=1e-6)
        assert 0.0 <= src.min() and src.max() <= 1.0
        changed += np.abs(src - before).mean() > 0.005
    assert changed >= 12  # of 16: jitter really changes frames (the factor can land near 1)


def test_horizontal_flip_flips_both_frames(layout_roots):
    aug = {"flip_param": {"horizontal_flip": True}}
    ex = testing.collect(
        make_pair_dataset(params(layout_roots["png"], augmentation_params=aug), batch_size=4, num_repeats=8)
    )
    flipped = []
    for src, tgt in zip(ex["source"], ex["target"], strict=True):
        # Unflipped, the pattern's left half is darker than its right half (frames 0..8).
        states = [frame[:, :16, 0].mean() > frame[:, 16:, 0].mean() for frame in (src, tgt)]
        assert states[0] == states[1]
        flipped.append(states[0])
        # The flip is a mirror image: un-mirroring gives a pattern frame again.
        if states[0]:
            assert src[:, ::-1][:, :16, 0].mean() < src[:, ::-1][:, 16:, 0].mean()
    assert any(flipped) and not all(flipped)


def test_time_flip_swaps_source_and_target(layout_roots):
    aug = {"flip_param": {"time_flip": True}}
    ex = testing.collect(
        make_pair_dataset(
            params(layout_roots["png"], augmentation_params=aug),
            batch_size=4,
            num_repeats=8,
            include_metadata=True,
        )
    )
    swapped = 0
    for src, tgt, (i, j) in zip(ex["source"], ex["target"], ex["frame_indices"], strict=True):
        assert round(testing.frame_index_of(src)) == i and round(testing.frame_index_of(tgt)) == j
        swapped += i > j
    assert 0 < swapped < len(ex["source"])


def test_time_and_horizontal_flip_are_exclusive_as_the_original():
    # Frames whose halves differ, so that a mirror and a swap are both visible.
    frames = np.zeros((2, 8, 8, 3), np.float32)
    frames[0, :, :4] = 0.25
    frames[1, :, :4] = 0.75
    aug = {"flip_param": {"horizontal_flip": True, "time_flip": True}}
    counts = collections.Counter()
    for seed in range(400):
        out, swapped = augment.augment_pair(tf.constant(frames), tf.constant(seed, tf.int64), aug)
        out = out.numpy()
        ordered = out[::-1] if bool(swapped) else out
        mirrored = not np.array_equal(ordered, frames)
        if mirrored:
            np.testing.assert_array_equal(ordered[:, :, ::-1], frames)
        counts[(bool(swapped), mirrored)] += 1
    assert counts[(True, True)] == 0  # never both
    # P(time) = 1/2, P(mirror) = 1/4, P(neither) = 1/4 (400 draws: sd about 9-10).
    assert 160 < counts[(True, False)] < 240
    assert 60 < counts[(False, True)] < 140 and 60 < counts[(False, False)] < 140


def test_a_seed_fixes_the_stream_and_each_epoch_redraws(layout_roots):
    make = lambda seed: make_pair_dataset(  # noqa: E731
        params(layout_roots["frames"]), batch_size=3, num_repeats=4, seed=seed, include_metadata=True
    )
    ds = make(1)
    a = testing.collect(ds)
    b = testing.collect(make(1))
    np.testing.assert_array_equal(a["frame_indices"], b["frame_indices"])
    assert a["video"] == b["video"]
    second_epoch = testing.collect(ds)
    assert (second_epoch["video"], [tuple(x) for x in second_epoch["frame_indices"]]) != (
        a["video"],
        [tuple(x) for x in a["frame_indices"]],
    )
    other = testing.collect(make(2))
    assert [tuple(x) for x in other["frame_indices"]] != [tuple(x) for x in a["frame_indices"]]


def test_train_and_test_folders_are_the_split(layout_roots):
    names = [n.numpy().decode() for n, _ in make_video_dataset(params(layout_roots["png"]), split="test")]
    assert names == ["z"]


def test_without_split_folders_a_seeded_80_20_split(tmp_path):
    testing.write_dataset(str(tmp_path), "png", [3] * 10, size=(8, 8))
    p = {"root_dir": str(tmp_path), "frame_shape": [8, 8, 3]}
    train = {s.name for s in catalog.split_sources(catalog.resolve_params(p), "train")}
    test = {s.name for s in catalog.split_sources(catalog.resolve_params(p), "test")}
    assert len(train) == 8 and len(test) == 2 and not train & test
    assert train | test == {f"video{v:03d}" for v in range(10)}
    again = {s.name for s in catalog.split_sources(catalog.resolve_params(p), "test")}
    assert again == test
    other_seed = {
        s.name for s in catalog.split_sources(catalog.resolve_params({**p, "split_seed": 5}), "test")
    }
    assert other_seed != test
    seen = {n.numpy().decode() for n, _ in make_video_dataset(p, split="test")}
    assert seen == test


def test_seeded_split_with_id_sampling_keeps_identities_apart(tmp_path):
    names = [f"id{i}#c{k}" for i in range(5) for k in range(3)]
    testing.write_dataset(str(tmp_path), "frames", [2] * 15, names=names, size=(8, 8))
    p = catalog.resolve_params({"root_dir": str(tmp_path), "frame_shape": [8, 8, 3], "id_sampling": True})
    train = {s.identity for s in catalog.split_sources(p, "train")}
    test = {s.identity for s in catalog.split_sources(p, "test")}
    assert len(train) == 4 and len(test) == 1 and not train & test


def test_input_pipelines_see_disjoint_shares_of_the_epoch(layout_roots):
    root = layout_roots["frames"]
    shares = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = make_pair_dataset(
            params(root), batch_size=4, num_repeats=4, input_context=context, include_metadata=True
        )
        assert next(iter(ds))["source"].shape[0] == 2  # per-replica batch
        ex = testing.collect(ds)
        shares.append(list(zip(ex["video"], map(tuple, ex["frame_indices"]), strict=True)))
    assert len(shares[0]) == len(shares[1]) == 6
    assert shares[0] != shares[1]
    both = collections.Counter(name for share in shares for name, _ in share)
    assert both == {b"a": 4, b"b": 4, b"c": 4}  # together exactly one epoch


def test_plugs_into_distribute_datasets_from_function(layout_roots):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: make_pair_dataset(
            params(layout_roots["frames"]), batch_size=3, num_repeats=2, input_context=ctx
        )
    )
    batch = next(iter(dist))
    assert batch["source"].shape == (3, 32, 32, 3)


def test_whole_videos_in_name_order(layout_roots):
    root = layout_roots["mp4"]
    out = [(n.numpy().decode(), f.numpy()) for n, f in make_video_dataset(params(root), split="train")]
    assert [n for n, _ in out] == ["a", "b", "c"]
    for name, frames in out:
        np.testing.assert_array_equal(frames, video_io.read_video(str(root / "train" / f"{name}.mp4"), SHAPE))


def test_gray_and_other_size_inputs_come_out_rgb_at_frame_shape(tmp_path):
    testing.write_video(str(tmp_path / "train" / "g"), testing.pattern_frames(4, (48, 48))[..., 0], "frames")
    testing.write_video(str(tmp_path / "train" / "m"), testing.pattern_frames(4, (64, 48)), "mp4")
    ex = testing.collect(make_pair_dataset(params(tmp_path), batch_size=2, num_repeats=2))
    assert np.stack(ex["source"]).shape == (4, 32, 32, 3)


@pytest.fixture()
def bad_root(tmp_path):
    train = tmp_path / "train"
    testing.write_dataset(str(train), "png", [4, 4], names=["good1", "good2"])
    (train / "corrupt.mp4").write_bytes(os.urandom(3000))
    testing.write_video(str(train / "single"), testing.pattern_frames(1), "png")
    (train / "empty").mkdir()
    broken = train / "garbled"  # listed fine, fails only when decoded
    broken.mkdir()
    for t in range(3):
        (broken / f"{t}.png").write_bytes(b"\x89PNG not really")
    return tmp_path


def test_bad_videos_are_skipped_named_and_counted(bad_root, caplog):
    stats = DatasetStats()
    caplog.set_level(logging.WARNING)
    ds = make_pair_dataset(
        params(bad_root),
        batch_size=2,
        num_repeats=20,
        stats=stats,
        drop_remainder=False,
        include_metadata=True,
    )
    assert stats.num_skipped == 3  # found while building: corrupt, 1 frame, no frames
    ex = testing.collect(ds)  # training goes on through the garbled frames
    assert set(ex["video"]) == {b"good1", b"good2"}
    assert len(ex["video"]) == 40
    assert stats.num_skipped == 4
    skipped = {os.path.basename(p) for p in stats.skipped}
    assert skipped == {"corrupt.mp4", "single.png", "empty", "garbled"}
    for name in skipped:
        assert any(name in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_stats_are_kept_per_dataset_root(bad_root):
    from coseg_tf.data import dataset_stats

    make_pair_dataset(params(bad_root), batch_size=2, num_repeats=2)
    assert dataset_stats(params(bad_root)).num_skipped >= 3
    assert dataset_stats(str(bad_root)) is dataset_stats(params(bad_root))


def test_bad_videos_are_skipped_in_whole_video_mode(bad_root):
    stats = DatasetStats()
    names = [n.numpy().decode() for n, _ in make_video_dataset(params(bad_root), split="train", stats=stats)]
    assert names == ["good1", "good2"]
    assert stats.num_skipped == 4


def test_missing_and_empty_datasets_fail_before_training(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        make_pair_dataset(params(tmp_path / "nowhere"), batch_size=2)
    with pytest.raises(DatasetError, match="root_dir is not set"):
        make_pair_dataset({"frame_shape": SHAPE}, batch_size=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no videos"):
        make_pair_dataset(params(tmp_path / "empty"), batch_size=2)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("no videos here")
    with pytest.raises(DatasetError, match="no videos"):
        make_video_dataset(params(tmp_path / "junk"))
    testing.write_dataset(str(tmp_path / "trainonly" / "train"), "png", [3])
    with pytest.raises(DatasetError, match="no 'test' folder"):
        make_video_dataset(params(tmp_path / "trainonly"), split="test")


def test_all_videos_unusable_is_an_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="all 1 were skipped"):
        make_pair_dataset(params(tmp_path), batch_size=1, stats=DatasetStats())


def test_wrong_stacked_width_fails_before_training(tmp_path):
    testing.write_dataset(str(tmp_path / "train"), "png", [3, 3], size=(32, 32))
    with pytest.raises(DatasetError, match="multiple of the frame width"):
        make_pair_dataset({"root_dir": str(tmp_path), "frame_shape": [32, 40, 3]}, batch_size=2)


def test_an_epoch_shorter_than_a_batch_fails_before_training(layout_roots):
    with pytest.raises(DatasetError, match="fewer than one batch"):
        make_pair_dataset(params(layout_roots["png"]), batch_size=4, num_repeats=1)
    ds = make_pair_dataset(params(layout_roots["png"]), batch_size=4, num_repeats=1, drop_remainder=False)
    assert sum(b["source"].shape[0] for b in ds) == 3


def test_original_config_key_spellings_are_accepted(layout_roots):
    ds = make_pair_dataset(
        {
            "root_dir": str(layout_roots["png"]),
            "image_shape": [16, 16, 3],
            "augmentation_params": {"flip_param": {"horizontal_flip": True, "time_flip": True}},
        },
        batch_size=3,
        num_repeats=1,
    )
    assert next(iter(ds))["target"].shape == (3, 16, 16, 3)


def test_epoch_size_counts_videos_or_identities(layout_roots, identity_root):
    from coseg_tf.data import epoch_size

    assert epoch_size(params(layout_roots["png"]), num_repeats=3) == 9
    assert epoch_size(params(layout_roots["png"]), split="test") == 1
    ids = {"root_dir": str(identity_root), "frame_shape": [16, 16, 3]}
    assert epoch_size({**ids, "id_sampling": True}, num_repeats=5) == 10
    assert epoch_size(ids, num_repeats=5) == 50


def test_probing_is_reused_but_a_changed_folder_is_seen(bad_root):
    p = catalog.resolve_params(params(bad_root))
    first = catalog.build_catalog(p, "train", DatasetStats())
    fresh = DatasetStats()
    assert catalog.build_catalog(p, "train", fresh) is first
    assert fresh.num_skipped == 3  # the probe's skips are recorded into every stats object
    testing.write_video(str(bad_root / "train" / "good3"), testing.pattern_frames(3), "png")
    again = catalog.build_catalog(p, "train", DatasetStats())
    assert again is not first and "good3" in again.names


def test_colour_jitter_runs_its_ops_in_a_random_order_per_pair():
    frames = tf.random.stateless_uniform([2, 8, 8, 3], [1, 2])
    jitter = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue": 0.3}
    orders, differs_from_fixed_order = set(), 0
    for seed in range(24):
        seed = tf.constant(seed, tf.int64)
        out, _ = augment.augment_pair(frames, seed, {"jitter_param": jitter})
        ops, order = augment.jitter_ops(seed, jitter), augment.jitter_order(seed, 4).numpy().tolist()
        assert sorted(order) == [0, 1, 2, 3]
        in_order, fixed = frames, frames
        for i in order:
            in_order = ops[i](in_order)
        for op in ops:
            fixed = op(fixed)
        np.testing.assert_allclose(out, in_order, atol=1e-6)
        orders.add(tuple(order))
        differs_from_fixed_order += not np.allclose(out, fixed, atol=1e-4)
    assert len(orders) >= 10  # of the 24 orders of four ops
    assert differs_from_fixed_order >= 10  # the order changes the result
