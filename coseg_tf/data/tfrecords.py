"""Sharded TFRecords of encoded frames: the converter and a pure-TF reader.

Layout written by `convert_to_tfrecords` (and the `coseg-prepare` command):

    out_dir/coseg_tfrecords.json        manifest: frame shape, encoding, shards and videos per split
    out_dir/train-00000.tfrecord ...    one `tf.train.Example` per video
    out_dir/test-00000.tfrecord ...

Each example holds `name` (bytes), `num_frames`, `height`, `width` (int64) and `frames`
(bytes list, one PNG or JPEG per frame, already resized to the manifest's frame shape).
The manifest is written last, so a half-written conversion is never mistaken for a dataset;
its presence is how the pipeline recognises a TFRecord root.

Reading is pure TF (no Python in the loop, no GIL): shard files are shuffled per epoch and
interleaved, each video record emits its pairs (as many per epoch as the original's
repeated list gives it; with `id_sampling`, `num_repeats / clips of its identity` in
expectation), pairs from several videos are interleaved and shuffled in a buffer, and only
the two frames of a pair are decoded. Videos are streamed, so the pair order is random
within a window rather than globally as in the file-based pipeline; the train split is
written in a seeded random order to help that.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import tensorflow as tf
from absl import logging

from coseg_tf import fileio
from coseg_tf.data import catalog, video_io
from coseg_tf.data.augment import finish_pair
from coseg_tf.data.catalog import DatasetStats, PairRequest
from coseg_tf.data.video_io import DatasetError

MANIFEST_NAME = "coseg_tfrecords.json"
FORMAT_NAME = "coseg-tfrecords"
FORMAT_VERSION = 1
IMAGE_FORMATS = ("png", "jpeg")
# Pairs shuffled together, and videos whose pairs are interleaved, by the pair reader.
SHUFFLE_BUFFER = 1024
PAIR_CYCLE_LENGTH = 16

_FEATURES = {
    "name": tf.io.FixedLenFeature([], tf.string),
    "num_frames": tf.io.FixedLenFeature([], tf.int64),
    "frames": tf.io.RaggedFeature(tf.string),
}


def is_tfrecord_dataset(root: str) -> bool:
    """Whether `root` is a TFRecord dataset (holds the converter's manifest).

    Args:
      root: A dataset root (local or cloud).

    Returns:
      True if the manifest file exists there.
    """
    return fileio.exists(fileio.join(str(root), MANIFEST_NAME))


def read_manifest(root: str) -> dict[str, Any]:
    """The manifest of a TFRecord dataset.

    Args:
      root: The TFRecord dataset root.

    Returns:
      The manifest's JSON object.

    Raises:
      DatasetError: The manifest is not of this format and version.
    """
    path = fileio.join(root, MANIFEST_NAME)
    manifest = json.loads(fileio.read_bytes(path).decode("utf-8"))
    if manifest.get("format") != FORMAT_NAME or manifest.get("version") != FORMAT_VERSION:
        raise DatasetError(f"{path} is not a {FORMAT_NAME} v{FORMAT_VERSION} manifest")
    return manifest


def _encode_frames(frames: np.ndarray, image_format: str, jpeg_quality: int) -> list[bytes]:
    if image_format == "png":
        ext, args = ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        ext, args = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    out = []
    for frame in frames:
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(frame[..., ::-1]), args)
        if not ok:
            raise RuntimeError(f"cannot encode a frame as {image_format}")
        out.append(buf.tobytes())
    return out


def _video_example(name: str, encoded: Sequence[bytes], height: int, width: int) -> bytes:
    feature = {
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode("utf-8")])),
        "num_frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[len(encoded)])),
        "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
        "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[width])),
        "frames": tf.train.Feature(bytes_list=tf.train.BytesList(value=list(encoded))),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _ordered_map(fn: Callable, items: Iterable, num_threads: int) -> Iterator:
    """`map` over a thread pool, in order, with a bounded number of results in flight."""
    window = max(1, 2 * num_threads)
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_threads) as pool:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def convert_to_tfrecords(
    dataset_params: Mapping[str, Any],
    out_dir: str,
    *,
    splits: Sequence[str] = catalog.SPLITS,
    image_format: str = "png",
    jpeg_quality: int = 95,
    shard_mb: float = 64.0,
    seed: int = 0,
    num_threads: int = 2,
    stats: DatasetStats | None = None,
) -> dict[str, Any]:
    """Converts a video dataset (any supported layout) to sharded TFRecords; returns the manifest.

    Frames are resized to `frame_shape` and stored as PNG (lossless: the reader gives exactly
    the frames the file pipeline gives) or JPEG. Unreadable videos are skipped and listed in
    the manifest. A split the source does not have is left out with a warning.

    Args:
      dataset_params: The source's `dataset_params` (`root_dir`, `frame_shape`, ...).
      out_dir: Folder to write the shards and manifest to (local or cloud).
      splits: Splits to convert.
      image_format: "png" or "jpeg".
      jpeg_quality: JPEG quality, 0-100.
      shard_mb: Approximate size of a shard in MB.
      seed: Seed of the train videos' order in the records (test keeps catalog order).
      num_threads: Threads decoding and encoding videos.
      stats: Where skipped videos are counted (default: `dataset_stats(root)`).

    Returns:
      The manifest also written to `out_dir`.

    Raises:
      ValueError: `image_format` is unknown.
      DatasetError: The source is already a TFRecord dataset, or no split has a usable video.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    params = catalog.resolve_params(dataset_params)
    root = str(params["root_dir"] or "").rstrip("/")
    if root and is_tfrecord_dataset(root):
        raise DatasetError(f"{root} is already a TFRecord dataset")
    stats = stats or catalog.dataset_stats(params)
    height, width = catalog.frame_size(params)
    out_dir = out_dir.rstrip("/")
    tf.io.gfile.makedirs(out_dir)
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "frame_shape": [height, width, 3],
        "image_format": image_format,
        "source_root": root,
        "splits": {},
    }
    for split in splits:
        try:
            cat = catalog.build_catalog(params, split, stats)
        except DatasetError as e:
            if split == "test" or len(splits) > 1:
                logging.warning("not converting split %s: %s", split, e)
                continue
            raise
        order = list(range(len(cat.videos)))
        if split == "train":
            order = list(np.random.default_rng(seed).permutation(len(order)))

        def encode(i: int, cat: catalog.Catalog = cat) -> tuple[int, list[bytes] | None, str]:
            source = cat.videos[i].source
            try:
                frames = video_io.load_frames(source, (height, width))
            except Exception as e:  # noqa: BLE001 - skip, as training would
                return i, None, f"{type(e).__name__}: {e}"
            if len(frames) < 2:
                return i, None, f"{len(frames)} frame(s); a pair needs at least 2"
            return i, _encode_frames(frames, image_format, jpeg_quality), ""

        shards: list[str] = []
        videos: list[dict[str, Any]] = []
        writer = None
        shard_bytes = 0
        limit = max(1, int(shard_mb * (1 << 20)))
        for i, encoded, reason in _ordered_map(encode, order, num_threads):
            if encoded is None:
                stats.skip(cat.videos[i].source.path, reason)
                continue
            if writer is None:
                shards.append(f"{split}-{len(shards):05d}.tfrecord")
                writer = tf.io.TFRecordWriter(fileio.join(out_dir, shards[-1]))
                shard_bytes = 0
            record = _video_example(cat.videos[i].source.name, encoded, height, width)
            writer.write(record)
            shard_bytes += len(record)
            videos.append(
                {"name": cat.videos[i].source.name, "num_frames": len(encoded), "shard": len(shards) - 1}
            )
            if shard_bytes >= limit:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()
        if not videos:
            logging.warning("split %s: every video was skipped; not converted", split)
            continue
        manifest["splits"][split] = {"shards": shards, "videos": videos}
        logging.info("split %s: %d videos in %d shard(s)", split, len(videos), len(shards))
    if not manifest["splits"]:
        raise DatasetError(f"nothing to convert in {root}")
    manifest["skipped"] = stats.skipped
    with tf.io.gfile.GFile(fileio.join(out_dir, MANIFEST_NAME), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def _split_info(root: str, split: str) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest = read_manifest(root)
    if split not in catalog.SPLITS:
        raise ValueError(f"split must be one of {catalog.SPLITS}, got {split!r}")
    info = manifest["splits"].get(split)
    if not info or not info["videos"]:
        raise DatasetError(f"TFRecord dataset {root} has no '{split}' split")
    return manifest, info


def video_names(root: str, split: str) -> list[str]:
    """Names of the videos of a split of a TFRecord dataset, in record order.

    Args:
      root: The TFRecord dataset root.
      split: "train" or "test".

    Returns:
      The names, in record order.
    """
    return [v["name"] for v in _split_info(str(root).rstrip("/"), split)[1]["videos"]]


def _decoder(stored: Sequence[int], size: tuple[int, int]) -> Callable[[tf.Tensor], tf.Tensor]:
    """Encoded frame(s) -> uint8 [..., H, W, 3] at `size` (resized only if stored at another size)."""
    resize = tuple(stored[:2]) != tuple(size)

    def decode_one(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        if resize:
            method = "area" if stored[0] * stored[1] > size[0] * size[1] else "bilinear"
            image = tf.image.resize(image, size, method=method)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        image.set_shape([size[0], size[1], 3])
        return image

    return decode_one


def pair_dataset(request: PairRequest) -> tf.data.Dataset:
    """The unbatched pairs of `pipeline.make_pair_dataset` for a TFRecord root (same elements).

    Args:
      request: The resolved arguments of `make_pair_dataset`.

    Returns:
      A dataset of unbatched pairs.
    """
    params, num_repeats, seed_value = request.params, request.num_repeats, request.seed
    num_pipelines, pipeline_id, shuffle = request.num_pipelines, request.pipeline_id, request.shuffle
    root = str(params["root_dir"]).rstrip("/")
    manifest, info = _split_info(root, request.split)
    files = [fileio.join(root, s) for s in info["shards"]]
    videos = info["videos"]
    if params["id_sampling"]:
        per_identity = collections.Counter(v["name"].split("#")[0] for v in videos)
        expected = [num_repeats / per_identity[v["name"].split("#")[0]] for v in videos]
        epoch = len(per_identity) * num_repeats
    else:
        expected = [float(num_repeats)] * len(videos)
        epoch = len(videos) * num_repeats
    request.check_epoch_size(epoch)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant([v["name"] for v in videos]), tf.constant(expected, tf.float32)
        ),
        default_value=0.0,
    )
    distinct = bool(params["distinct_frames"])
    decode_one = _decoder(manifest["frame_shape"], catalog.frame_size(params))
    aug_params = params["augmentation_params"]

    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        file_ds = file_ds.shuffle(len(files), seed=seed_value, reshuffle_each_iteration=True)
    by_file = num_pipelines > 1 and len(files) % num_pipelines == 0
    if by_file:
        file_ds = file_ds.shard(num_pipelines, pipeline_id)
    records = file_ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 4),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    records = tf.data.Dataset.zip(
        records, tf.data.Dataset.random(seed=seed_value + 1, rerandomize_each_iteration=True)
    )
    if num_pipelines > 1 and not by_file:
        records = records.shard(num_pipelines, pipeline_id)

    def parse(record: tf.Tensor, record_seed: tf.Tensor):
        ex = tf.io.parse_single_example(record, _FEATURES)
        return ex["name"], ex["frames"], record_seed

    def pairs_of_video(name: tf.Tensor, frames: tf.Tensor, record_seed: tf.Tensor) -> tf.data.Dataset:
        # Stochastic rounding keeps the expected number of pairs per video exact.
        mean = table.lookup(name)
        frac = tf.random.stateless_uniform([], tf.stack([record_seed, tf.constant(0, tf.int64)]))
        count = tf.cast(tf.floor(mean) + tf.cast(frac < mean - tf.floor(mean), tf.float32), tf.int64)
        num = tf.size(frames, out_type=tf.int64)
        count = tf.where(num >= 2, count, tf.constant(0, tf.int64))

        def draw(k: tf.Tensor):
            def seed_of(stream: int) -> tf.Tensor:
                return tf.stack([record_seed, 3 * k + stream])

            first = tf.random.stateless_uniform([], seed_of(1), minval=0, maxval=num, dtype=tf.int64)
            if distinct:
                second = tf.random.stateless_uniform([], seed_of(2), minval=0, maxval=num - 1, dtype=tf.int64)
                second = second + tf.cast(second >= first, tf.int64)
            else:
                second = tf.random.stateless_uniform([], seed_of(2), minval=0, maxval=num, dtype=tf.int64)
            indices = tf.sort(tf.stack([first, second]))
            example_seed = tf.random.stateless_uniform(
                [], seed_of(3), minval=None, maxval=None, dtype=tf.int64
            )
            return tf.gather(frames, indices), name, tf.cast(indices, tf.int32), example_seed

        return tf.data.Dataset.range(count).map(draw)

    pairs = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE).interleave(
        pairs_of_video, cycle_length=PAIR_CYCLE_LENGTH if shuffle else 1, block_length=1
    )
    if shuffle:
        pairs = pairs.shuffle(SHUFFLE_BUFFER, seed=seed_value + 2, reshuffle_each_iteration=True)

    def finish(encoded: tf.Tensor, name: tf.Tensor, indices: tf.Tensor, example_seed: tf.Tensor):
        frames = tf.stack([decode_one(encoded[0]), decode_one(encoded[1])])
        name = name if request.include_metadata else None
        return finish_pair(frames, example_seed, aug_params, name, indices)

    return pairs.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=request.deterministic)


def video_dataset(
    params: Mapping[str, Any], split: str, num_pipelines: int, pipeline_id: int
) -> tf.data.Dataset:
    """`pipeline.make_video_dataset` for a TFRecord root: whole videos `(name, float32
    [T, H, W, 3])` in the converter's order (sorted for test), input pipeline `pipeline_id`'s share.

    Args:
      params: Resolved `dataset_params` of a TFRecord root.
      split: "train" or "test".
      num_pipelines: Input pipelines the videos are sharded over.
      pipeline_id: This pipeline's index.

    Returns:
      A dataset of (name, float32 [T, H, W, 3] frames in [0, 1]).
    """
    root = str(params["root_dir"]).rstrip("/")
    manifest, info = _split_info(root, split)
    files = [fileio.join(root, s) for s in info["shards"]]
    decode_one = _decoder(manifest["frame_shape"], catalog.frame_size(params))
    height, width = catalog.frame_size(params)
    ds = tf.data.TFRecordDataset(files)
    if num_pipelines > 1:
        ds = ds.shard(num_pipelines, pipeline_id)

    def parse(record: tf.Tensor):
        ex = tf.io.parse_single_example(record, _FEATURES)
        frames = tf.map_fn(
            decode_one, ex["frames"], fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8)
        )
        return ex["name"], tf.cast(frames, tf.float32) * (1.0 / 255.0)

    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(1)
