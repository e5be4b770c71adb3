"""The tf.data frame-pair pipeline (training) and the whole-video reader (evaluation).

Sampling follows the original implementation: an epoch is the list of videos (or, with
`id_sampling`, of identities) repeated `num_repeats` times and shuffled; each element picks
two frames of its video uniformly at random, sorted (source before target); with
`id_sampling` it first picks one clip of the identity. The element order and the frame draws
come from seeded tf.data sources (`shuffle`, `Dataset.random`), so a seed fixes the stream
and each re-iteration of the dataset (the next epoch) reshuffles and redraws.

Decoding runs in `tf.numpy_function` (OpenCV/PIL release the GIL) under a parallel `map`.
Frame folders decode only the two frames of a pair; mp4/mov/avi/gif and stacked images
have no cheap random access, so each is decoded once and kept in a per-process LRU cache of
`decoded_cache_mb` (the original decodes the whole video again for every pair).

A dataset root written by `coseg-prepare` (TFRecords + manifest) is detected and read by the
pure-TF reader in `tfrecords.py`, which yields the same structure.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from coseg_tf.data import catalog, tfrecords, video_io
from coseg_tf.data.augment import finish_pair
from coseg_tf.data.catalog import Catalog, DatasetStats, PairRequest, effective_seed, pipeline_shard


class _DecodedCache:
    """LRU of decoded uint8 videos bounded in bytes; concurrent misses of one video decode once."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._lock = threading.Lock()
        self._items: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._loading: dict[int, threading.Event] = {}
        self._bytes = 0

    def get(self, key: int, load) -> np.ndarray:
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
                event = self._loading.get(key)
                if event is None:
                    event = self._loading[key] = threading.Event()
                    break
            event.wait()  # another thread decodes it; then retry (it may not have been cached)
        try:
            value = load()
            self._put(key, value)
            return value
        finally:
            with self._lock:
                del self._loading[key]
            event.set()

    def _put(self, key: int, value: np.ndarray) -> None:
        if value.nbytes > self.capacity:
            return
        with self._lock:
            self._items[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.capacity:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes


_CACHES: dict[tuple, _DecodedCache] = {}
_CACHES_LOCK = threading.Lock()


def _shared_cache(key: tuple, capacity_bytes: int) -> _DecodedCache:
    # Input pipelines of one process (several replicas, rebuilt datasets) share decoded videos.
    with _CACHES_LOCK:
        if key not in _CACHES or _CACHES[key].capacity != capacity_bytes:
            _CACHES[key] = _DecodedCache(capacity_bytes)
        return _CACHES[key]


class PairLoader:
    """Draws and decodes one (source, target) pair in Python; called from `tf.numpy_function`."""

    def __init__(self, cat: Catalog, params: Mapping[str, Any], stats: DatasetStats) -> None:
        self.catalog = cat
        self.size = catalog.frame_size(params)
        self.id_sampling = bool(params["id_sampling"])
        self.distinct = bool(params["distinct_frames"])
        self.stats = stats
        capacity = int(float(params["decoded_cache_mb"]) * (1 << 20))
        self.cache = _shared_cache((cat.root_dir, cat.split, self.size), capacity)
        self._bad: set[int] = set()

    @property
    def num_items(self) -> int:
        """Elements per epoch before repeats: identities with `id_sampling`, else videos."""
        return len(self.catalog.identities) if self.id_sampling else len(self.catalog.videos)

    def draw_indices(self, rng: np.random.Generator, num_frames: int) -> np.ndarray:
        """Draws the two frame indices of a pair, sorted (distinct with `distinct_frames`).

        Args:
          rng: The generator of this example.
          num_frames: Frames of the video.

        Returns:
          int64 [2] frame indices in [0, num_frames), ascending.
        """
        if self.distinct:
            return np.sort(rng.choice(num_frames, size=2, replace=False))
        return np.sort(rng.integers(0, num_frames, size=2))

    def _decode_whole(self, video: int) -> np.ndarray:
        entry = self.catalog.videos[video]
        return video_io.load_frames(entry.source, self.size)

    def load(self, item: int, seed: int) -> tuple[np.ndarray, int, np.ndarray]:
        """Frames uint8 [2, H, W, 3], the video index and the frame indices; raises on bad input.

        Args:
          item: Index of a video, or of an identity with `id_sampling` (a clip is then drawn).
          seed: The example's seed (video choice and frame indices).

        Returns:
          (frames uint8 [2, H, W, 3], video index in the catalog, frame indices [2]).

        Raises:
          VideoReadError: A decoded video has fewer than two frames.
        """
        rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
        if self.id_sampling:
            clips = self.catalog.clips[item]
            video = clips[int(rng.integers(len(clips)))]
        else:
            video = int(item)
        if video in self._bad:
            raise _AlreadySkipped()
        entry = self.catalog.videos[video]
        if entry.source.kind == video_io.FRAMES:
            indices = self.draw_indices(rng, entry.num_frames)
            frames = video_io.load_frames(entry.source, self.size, indices)
        else:
            whole = self.cache.get(video, lambda: self._decode_whole(video))
            if len(whole) < 2:
                raise video_io.VideoReadError(f"{len(whole)} frame(s); a pair needs at least 2")
            indices = self.draw_indices(rng, len(whole))
            frames = whole[indices]
        return frames, video, indices

    def __call__(self, item: np.ndarray, seed: np.ndarray):
        """The `tf.numpy_function` body: never raises, reports failures through `ok`."""
        height, width = self.size
        try:
            frames, video, indices = self.load(int(item), int(seed))
            return frames, np.int32(video), indices.astype(np.int32), np.bool_(True)
        except _AlreadySkipped:
            pass
        except Exception as e:  # noqa: BLE001 - any decoder failure skips the video, training goes on
            video = self._video_of_failure(int(item), int(seed))
            self._bad.add(video)
            self.stats.skip(self.catalog.videos[video].source.path, f"{type(e).__name__}: {e}")
        return (
            np.zeros((2, height, width, 3), np.uint8),
            np.int32(-1),
            np.zeros(2, np.int32),
            np.bool_(False),
        )

    def _video_of_failure(self, item: int, seed: int) -> int:
        if not self.id_sampling:
            return item
        rng = np.random.default_rng(seed & 0xFFFFFFFFFFFFFFFF)
        clips = self.catalog.clips[item]
        return clips[int(rng.integers(len(clips)))]


class _AlreadySkipped(Exception):
    pass


def make_pair_dataset(
    dataset_params: Mapping[str, Any],
    *,
    split: str = "train",
    batch_size: int,
    num_repeats: int = 1,
    seed: int | None = 0,
    input_context: tf.distribute.InputContext | None = None,
    shuffle: bool = True,
    drop_remainder: bool = True,
    include_metadata: bool = False,
    stats: DatasetStats | None = None,
) -> tf.data.Dataset:
    """Batches of `{"source", "target"}` float32 [B, H, W, 3] frame pairs in [0, 1], one epoch.

    One epoch is `num_repeats` passes over the videos (identities with `id_sampling`);
    iterate the dataset again (or `.repeat()` it) for more epochs, each reshuffled and
    redrawn. With `input_context` the epoch is split by position between the input pipelines
    (disjoint examples of one shared shuffled order) and batches are per replica.
    `include_metadata` adds `video` (name) and `frame_indices` ([B, 2], source first) for
    tests and debugging. Skipped videos are counted in `stats` (default: `dataset_stats(root)`).
    Raises `DatasetError` for a missing/empty dataset, a bad stacked image width or an epoch
    shorter than one batch.

    Args:
      dataset_params: The config's `dataset_params` (completed with defaults).
      split: "train" or "test".
      batch_size: The global batch size (per replica with `input_context`).
      num_repeats: Passes over the videos in one epoch.
      seed: Seed of shuffling, pair draws and augmentation; None for a random seed per process.
      input_context: The `tf.distribute.InputContext` to shard by, or None.
      shuffle: Whether to shuffle the videos.
      drop_remainder: Whether to drop the last incomplete batch.
      include_metadata: Whether to add `video` and `frame_indices`.
      stats: Where skipped videos are counted.

    Returns:
      The dataset of batches.
    """
    params = catalog.resolve_params(dataset_params)
    num_pipelines, pipeline_id, per_replica = pipeline_shard(input_context, batch_size)
    request = PairRequest(
        params=params,
        split=split,
        num_repeats=int(num_repeats),
        seed=effective_seed(seed),
        deterministic=seed is not None,
        shuffle=shuffle,
        include_metadata=include_metadata,
        drop_remainder=drop_remainder,
        num_pipelines=num_pipelines,
        pipeline_id=pipeline_id,
        per_replica=per_replica,
    )
    root = params["root_dir"]
    if root and tfrecords.is_tfrecord_dataset(str(root)):
        pairs = tfrecords.pair_dataset(request)
    else:
        pairs = _file_pairs(request, stats or catalog.dataset_stats(params))
    return pairs.batch(per_replica, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _file_pairs(request: PairRequest, stats: DatasetStats) -> tf.data.Dataset:
    """Unbatched pairs of a dataset of video files (any layout of `video_io`)."""
    params = request.params
    cat = catalog.build_catalog(params, request.split, stats)
    loader = PairLoader(cat, params, stats)
    epoch = loader.num_items * request.num_repeats
    request.check_epoch_size(epoch)
    height, width = loader.size
    names = tf.constant(cat.names)
    aug_params = params["augmentation_params"]

    order = tf.data.Dataset.range(loader.num_items).repeat(request.num_repeats)
    if request.shuffle:
        order = order.shuffle(epoch, seed=request.seed, reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed=request.seed + 1, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(order, draws)
    if request.num_pipelines > 1:
        ds = ds.shard(request.num_pipelines, request.pipeline_id)

    def load(item: tf.Tensor, example_seed: tf.Tensor):
        frames, video, indices, ok = tf.numpy_function(
            loader, [item, example_seed], [tf.uint8, tf.int32, tf.int32, tf.bool], stateful=False
        )
        frames.set_shape([2, height, width, 3])
        indices.set_shape([2])
        ok.set_shape([])
        return frames, video, indices, ok, example_seed

    def finish(frames, video, indices, ok, example_seed):
        name = tf.gather(names, tf.maximum(video, 0)) if request.include_metadata else None
        return finish_pair(frames, example_seed, aug_params, name, indices)

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=request.deterministic)
    ds = ds.filter(lambda frames, video, indices, ok, s: ok)
    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=request.deterministic)


def epoch_size(dataset_params: Mapping[str, Any], *, split: str = "train", num_repeats: int = 1) -> int:
    """Pairs in one epoch of `make_pair_dataset` (before sharding and batching).

    `num_repeats` x the number of videos, or of identities with `id_sampling`. For a
    TFRecord root with `id_sampling` it is the expected count (pairs per clip are drawn).

    Args:
      dataset_params: The config's `dataset_params`.
      split: "train" or "test".
      num_repeats: Passes over the videos in one epoch.

    Returns:
      The number of pairs.
    """
    params = catalog.resolve_params(dataset_params)
    root = str(params["root_dir"] or "")
    if root and tfrecords.is_tfrecord_dataset(root):
        names = tfrecords.video_names(root, split)
    else:
        names = catalog.build_catalog(params, split, catalog.dataset_stats(params)).names
    if params["id_sampling"]:
        return len({name.split("#")[0] for name in names}) * int(num_repeats)
    return len(names) * int(num_repeats)


def _iterate_catalog(
    cat: Catalog, size: tuple[int, int], stats: DatasetStats, num_pipelines: int, pipeline_id: int
) -> Iterator[tuple[str, np.ndarray]]:
    for i, entry in enumerate(cat.videos):
        if i % num_pipelines != pipeline_id:
            continue
        try:
            frames = video_io.load_frames(entry.source, size)
        except Exception as e:  # noqa: BLE001 - a bad video is skipped, evaluation goes on
            stats.skip(entry.source.path, f"{type(e).__name__}: {e}")
            continue
        if len(frames) < 2:
            stats.skip(entry.source.path, f"{len(frames)} frame(s); a pair needs at least 2")
            continue
        yield entry.source.name, video_io.to_float(frames)


def iterate_videos(
    dataset_params: Mapping[str, Any],
    *,
    split: str = "test",
    input_context: tf.distribute.InputContext | None = None,
    stats: DatasetStats | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 [T, H, W, 3]) of every video of `split`, in name order, in plain Python.

    The catalog is built (and errors raised) at the call, not at the first `next`.

    Args:
      dataset_params: The config's `dataset_params`.
      split: "train" or "test".
      input_context: With one, this pipeline's share of the videos (i, i + n, ...).
      stats: Where skipped videos are counted (default: `dataset_stats(root)`).

    Returns:
      An iterator of (name, frames) pairs; unreadable videos are skipped.
    """
    params = catalog.resolve_params(dataset_params)
    stats = stats or catalog.dataset_stats(params)
    cat = catalog.build_catalog(params, split, stats)
    num_pipelines, pipeline_id, _ = pipeline_shard(input_context, 1)
    return _iterate_catalog(cat, catalog.frame_size(params), stats, num_pipelines, pipeline_id)


def make_video_dataset(
    dataset_params: Mapping[str, Any],
    *,
    split: str = "test",
    input_context: tf.distribute.InputContext | None = None,
    stats: DatasetStats | None = None,
) -> tf.data.Dataset:
    """Whole videos in name order as `(name, frames float32 [T, H, W, 3])`, for evaluation.

    Errors that must stop the run (missing/empty dataset, bad stacked width) are raised here,
    when the dataset is built; unreadable videos are skipped and counted as in training.
    With `input_context`, pipeline i gets videos i, i + n, ... .

    Args:
      dataset_params: The config's `dataset_params`.
      split: "train" or "test".
      input_context: With one, this pipeline's share of the videos.
      stats: Where skipped videos are counted (default: `dataset_stats(root)`).

    Returns:
      A dataset of (name string, float32 [T, H, W, 3] frames in [0, 1]).
    """
    params = catalog.resolve_params(dataset_params)
    num_pipelines, pipeline_id, _ = pipeline_shard(input_context, 1)
    root = params["root_dir"]
    if root and tfrecords.is_tfrecord_dataset(str(root)):
        return tfrecords.video_dataset(params, split, num_pipelines, pipeline_id)
    stats = stats or catalog.dataset_stats(params)
    cat = catalog.build_catalog(params, split, stats)  # fail now, not at the first iteration
    size = catalog.frame_size(params)
    signature = (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([None, size[0], size[1], 3], tf.float32),
    )
    ds = tf.data.Dataset.from_generator(
        lambda: _iterate_catalog(cat, size, stats, num_pipelines, pipeline_id),
        output_signature=signature,
    )
    return ds.prefetch(1)
