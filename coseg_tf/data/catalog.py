"""Which videos make up a split, how many frames each has, and which ones were skipped.

Everything that can be checked before training is checked here, in Python, when the
pipeline is built: a missing or empty dataset and a stacked image of the wrong width raise
`DatasetError`; unreadable videos and videos with fewer than two frames are skipped with a
warning naming them and counted in the dataset's `DatasetStats`, so one bad file among
thousands does not stop a run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from coseg_tf import fileio
from coseg_tf.data import video_io
from coseg_tf.data.video_io import DatasetError, VideoReadError, VideoSource

SPLITS = ("train", "test")
TEST_FRACTION = 0.2


class DatasetStats:
    """Counts of one dataset root: videos per split and the skipped videos with the reason.

    Thread-safe: decode failures are recorded from tf.data worker threads.
    """

    def __init__(self, root_dir: str = "") -> None:
        self.root_dir = root_dir
        self._lock = threading.Lock()
        self._skipped: dict[str, str] = {}
        self.num_videos: dict[str, int] = {}

    def skip(self, path: str, reason: str) -> bool:
        """Records a skipped video once (warning included); False if it was already recorded.

        Args:
          path: The skipped video's path (the key it is recorded under).
          reason: Why it was skipped, for the warning and the stats.

        Returns:
          True if this call recorded it, False if it was already recorded.
        """
        with self._lock:
            if path in self._skipped:
                return False
            self._skipped[path] = reason
        logging.warning("skipping video %s: %s", path, reason)
        return True

    @property
    def num_skipped(self) -> int:
        """The number of distinct videos skipped so far."""
        with self._lock:
            return len(self._skipped)

    @property
    def skipped(self) -> dict[str, str]:
        """Path -> reason of every skipped video."""
        with self._lock:
            return dict(self._skipped)

    def __repr__(self) -> str:
        return (
            f"DatasetStats(root_dir={self.root_dir!r}, num_videos={self.num_videos}, "
            f"skipped={self.num_skipped})"
        )


_STATS: dict[str, DatasetStats] = {}
_STATS_LOCK = threading.Lock()


def dataset_stats(dataset_params_or_root: Mapping[str, Any] | str) -> DatasetStats:
    """The process-wide stats of a dataset root (by `dataset_params` or by its `root_dir`).

    Args:
      dataset_params_or_root: The `dataset_params` mapping (its `root_dir` is used) or the root path itself.

    Returns:
      The `DatasetStats` of that root (trailing '/' ignored), created on first use.
    """
    root = (
        dataset_params_or_root
        if isinstance(dataset_params_or_root, str)
        else dataset_params_or_root.get("root_dir")
    )
    key = str(root).rstrip("/")
    with _STATS_LOCK:
        if key not in _STATS:
            _STATS[key] = DatasetStats(key)
        return _STATS[key]


def resolve_params(dataset_params: Mapping[str, Any]) -> dict[str, Any]:
    """`dataset_params` validated and completed with the schema defaults (aliases accepted).

    Args:
      dataset_params: The `dataset_params` section of a config, possibly partial.

    Returns:
      A new dict with every `dataset_params` key of the schema.
    """
    from coseg_tf.config import build_config

    return build_config({"dataset_params": dict(dataset_params)})["dataset_params"]


def frame_size(params: Mapping[str, Any]) -> tuple[int, int]:
    """The configured frame size of `dataset_params`.

    Args:
      params: Resolved `dataset_params` (with `frame_shape`).

    Returns:
      (height, width) in pixels.
    """
    shape = params["frame_shape"]
    return int(shape[0]), int(shape[1])


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """A probed, usable video of a catalog: its source and frame count (-1 if unknown before decoding)."""

    source: VideoSource
    num_frames: int  # from headers/listings; -1 if unknown before decoding


@dataclasses.dataclass
class Catalog:
    """The usable videos of one split, grouped by identity for `id_sampling`."""

    root_dir: str
    split: str
    videos: list[VideoEntry]
    identities: list[str]
    clips: list[list[int]]  # per identity, indices into `videos`

    @property
    def names(self) -> list[str]:
        """The videos' names, in catalog order."""
        return [v.source.name for v in self.videos]


def _split_names(names: Sequence[str], split: str, seed: int) -> set[str]:
    """The seeded 80/20 split of a folder without train/test subfolders."""
    names = sorted(names)
    if len(names) < 2:
        return set(names) if split == "train" else set()
    order = np.random.default_rng(seed).permutation(len(names))
    num_test = min(len(names) - 1, max(1, round(TEST_FRACTION * len(names))))
    test = {names[i] for i in order[:num_test]}
    return test if split == "test" else set(names) - test


def split_sources(params: Mapping[str, Any], split: str) -> list[VideoSource]:
    """The videos of `split`: `root/<split>` if the root has train/test folders, else a seeded split.

    With `id_sampling` the seeded split is by identity, so that no identity is in both.

    Args:
      params: Resolved `dataset_params` (`root_dir`, `id_sampling`, `split_seed`).
      split: "train" or "test".

    Returns:
      The videos of the split (not yet probed).

    Raises:
      ValueError: `split` is not a known split.
      DatasetError: `root_dir` is unset or not a folder, or the root has split folders but not this one.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = params["root_dir"]
    if not root:
        raise DatasetError("dataset_params.root_dir is not set")
    root = str(root).rstrip("/")
    if not fileio.exists(root) or not fileio.isdir(root):
        raise DatasetError(f"dataset root_dir {root} does not exist or is not a folder")
    has_split_folders = any(fileio.isdir(fileio.join(root, s)) for s in SPLITS)
    if has_split_folders:
        folder = fileio.join(root, split)
        if not fileio.isdir(folder):
            raise DatasetError(f"dataset {root} has split folders but no '{split}' folder")
        return video_io.list_videos(folder)
    sources = video_io.list_videos(root)
    if params.get("id_sampling"):
        chosen = _split_names({s.identity for s in sources}, split, params["split_seed"])
        return [s for s in sources if s.identity in chosen]
    chosen = _split_names([s.name for s in sources], split, params["split_seed"])
    return [s for s in sources if s.name in chosen]


def _probe(source: VideoSource, frame_width: int) -> tuple[VideoSource, int]:
    if source.kind == video_io.FRAMES:
        files = video_io.list_frame_files(source.path)
        return dataclasses.replace(source, frame_files=files), len(files)
    return source, video_io.probe_num_frames(source, frame_width)


_CATALOGS: dict[tuple, tuple[tuple, Catalog, dict[str, str]]] = {}
_CATALOGS_LOCK = threading.Lock()


def build_catalog(
    params: Mapping[str, Any], split: str, stats: DatasetStats, *, num_threads: int = 8
) -> Catalog:
    """Lists and probes the videos of `split`; raises `DatasetError` if none is usable.

    The folder is listed on every call, but the probing (frame counts, headers) is reused
    within the process while the listing is unchanged: the trainer rebuilds its dataset every
    epoch, and probing thousands of videos each time would be wasted I/O. Skips found while
    probing are recorded into `stats` on every call.

    Args:
      params: Resolved `dataset_params`.
      split: "train" or "test".
      stats: Where skipped videos and the split's video count are recorded.
      num_threads: Threads probing the videos concurrently.

    Returns:
      The split's `Catalog` of videos with at least two frames (or an unknown count).

    Raises:
      DatasetError: The split has no videos, or every video was skipped.
    """
    sources = split_sources(params, split)
    root = str(params["root_dir"]).rstrip("/")
    if not sources:
        raise DatasetError(
            f"no videos found for split '{split}' in {root} (expected frame folders, stacked "
            f"images {video_io.IMAGE_EXTENSIONS} or videos {video_io.VIDEO_EXTENSIONS})"
        )
    frame_width = frame_size(params)[1]
    key = (root, split, frame_width, bool(params["id_sampling"]))
    listing = tuple((s.path, s.kind) for s in sources)
    with _CATALOGS_LOCK:
        cached = _CATALOGS.get(key)
    if cached is not None and cached[0] == listing:
        _, cat, skipped = cached
        for path, reason in skipped.items():
            stats.skip(path, reason)
        stats.num_videos[split] = len(cat.videos)
        return cat
    videos: list[VideoEntry] = []
    skipped: dict[str, str] = {}
    # Probing is header/listing I/O: threads overlap it (it matters on cloud storage).
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_threads) as pool:
        futures = [pool.submit(_probe, s, frame_width) for s in sources]
        for source, future in zip(sources, futures, strict=True):
            try:
                probed, count = future.result()
            except VideoReadError as e:
                skipped[source.path] = str(e)
                continue
            if 0 <= count < 2:
                skipped[source.path] = f"{count} frame(s); a pair needs at least 2"
                continue
            videos.append(VideoEntry(probed, count))
    for path, reason in skipped.items():
        stats.skip(path, reason)
    if not videos:
        raise DatasetError(f"no usable videos for split '{split}' in {root}: all {len(sources)} were skipped")
    by_identity: dict[str, list[int]] = {}
    for i, entry in enumerate(videos):
        by_identity.setdefault(entry.source.identity, []).append(i)
    identities = sorted(by_identity)
    stats.num_videos[split] = len(videos)
    logging.info(
        "dataset %s, split %s: %d videos, %d identities, %d skipped",
        root,
        split,
        len(videos),
        len(identities),
        len(skipped),
    )
    cat = Catalog(root, split, videos, identities, [by_identity[i] for i in identities])
    with _CATALOGS_LOCK:
        _CATALOGS[key] = (listing, cat, skipped)
    return cat


def check_epoch_size(num_examples: int, num_pipelines: int, batch_size: int, drop_remainder: bool) -> None:
    """Fails early when an epoch would yield no batch at all (training would silently do nothing).

    Args:
      num_examples: Examples in one epoch, over all input pipelines.
      num_pipelines: Input pipelines the examples are sharded over.
      batch_size: Batch size of one pipeline (per replica).
      drop_remainder: Whether incomplete batches are dropped.

    Raises:
      DatasetError: With `drop_remainder`, a pipeline's share is smaller than one batch.
    """
    per_pipeline = math.floor(num_examples / max(1, num_pipelines))
    if drop_remainder and per_pipeline < batch_size:
        raise DatasetError(
            f"an epoch has {num_examples} examples ({per_pipeline} per input pipeline), fewer than one "
            f"batch of {batch_size}; raise train_params.num_repeats or lower the batch size"
        )


@dataclasses.dataclass(frozen=True)
class PairRequest:
    """`make_pair_dataset`'s arguments, resolved once for whichever reader serves the root
    (the file pipeline of `pipeline.py`, or `tfrecords.pair_dataset`); both yield unbatched pairs."""

    params: Mapping[str, Any]  # from `resolve_params`
    split: str
    num_repeats: int
    seed: int  # `effective_seed` of the caller's seed
    deterministic: bool  # the caller gave a seed
    shuffle: bool
    include_metadata: bool
    drop_remainder: bool
    num_pipelines: int
    pipeline_id: int
    per_replica: int  # batch size of one replica

    def check_epoch_size(self, num_examples: int) -> None:
        """Fails early when an epoch of this request would yield no batch (see `check_epoch_size`).

        Args:
          num_examples: Examples in one epoch, over all input pipelines.

        Raises:
          DatasetError: With `drop_remainder`, a pipeline's share is smaller than one batch.
        """
        check_epoch_size(num_examples, self.num_pipelines, self.per_replica, self.drop_remainder)


_PROCESS_SEED: int | None = None
_SEED_LOCK = threading.Lock()


def effective_seed(seed: int | None) -> int:
    """`seed`, or for `None` one random seed per process.

    Every input pipeline of a process must shuffle identically for position-based sharding to
    give disjoint examples, so "unseeded" means "seeded once per process", not "per dataset".

    Args:
      seed: A seed, or None.

    Returns:
      `seed` as an int, or the process's random seed (drawn once, from `os.urandom`).
    """
    global _PROCESS_SEED
    if seed is not None:
        return int(seed)
    with _SEED_LOCK:
        if _PROCESS_SEED is None:
            _PROCESS_SEED = int.from_bytes(os.urandom(4), "little")
        return _PROCESS_SEED


def pipeline_shard(input_context: Any, batch_size: int) -> tuple[int, int, int]:
    """(num_pipelines, pipeline_id, per-replica batch size) for an optional `tf.distribute.InputContext`.

    Args:
      input_context: A `tf.distribute.InputContext`, or None for a single pipeline.
      batch_size: The global batch size.

    Returns:
      (num_pipelines, pipeline_id, per-replica batch size); (1, 0, batch_size) without a context.
    """
    if input_context is None:
        return 1, 0, batch_size
    return (
        int(input_context.num_input_pipelines),
        int(input_context.input_pipeline_id),
        int(input_context.get_per_replica_batch_size(batch_size)),
    )
