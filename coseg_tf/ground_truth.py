"""Ground truth for evaluation: the synthetic puppets, a plain folder format, the original layout.

Every reader returns `EvalSplit`s (a `train` split to fit the landmark regression on and a
`test` split to score on) with one convention: landmarks are (x, y) in pixels of the stored
image, x to the right, y down, pixel centres at integer coordinates (the synthetic set's
convention and the one of the original evaluation's part centroids); a missing coordinate is
NaN (the original tables write -1, which is read as missing, as the original evaluation
does). Images are decoded only when a batch is asked for.

Formats:

- `synthetic`: a root written by `coseg-synth` (`<root>/<layout>/{train,test}/` videos and
  `<root>/ground_truth/{train,test}/<video>.npz`). `frames_per_video` evenly spaced frames
  of each video are items; landmarks not visible in a frame are missing.
- `plain`: `<root>/{train,test}/images/<name>.png|jpg`, optional `masks/<stem>.png`
  (foreground where the value is above half of the range), optional `parts/<stem>.png`
  (single-channel part labels, 0 = background) and optional `landmarks.csv` (header
  `name[,identity],<landmark>_x,<landmark>_y,...`; an empty cell, `nan` or `-1` is missing).
- `original`: the original repository's evaluation layout: `<root>/{train,test}/` images and
  one pandas pickle per split with `file_name` and `value` ([J, 2]) columns, read with the
  restricted unpickler of `pickle_tables` only when trusted; optional masks in
  `<masks_dir>/<split>/<name>` or `<masks_dir>/<name>`.

Identities (for the disjoint-split check) are the `identity` column of the CSV, else the
part of the name before the first `#` (the project's `<identity>#<clip>` convention).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from coseg_tf import fileio
from coseg_tf.data import video_io
from coseg_tf.errors import CosegError

FORMATS = ("synthetic", "plain", "original")
# Lossless layouts first: the synthetic labels match their pixels exactly.
_SYNTHETIC_LAYOUTS = ("png", "frames", "jpg", "mp4", "mov", "avi", "gif")


class GroundTruthError(CosegError):
    """Ground truth that is missing or malformed."""


@dataclasses.dataclass
class Batch:
    """Decoded items: images uint8 [B, H, W, 3], masks bool [B, H, W], labels int32 [B, H, W]."""

    images: np.ndarray
    masks: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclasses.dataclass
class EvalSplit:
    """The items of one split; `load(indices)` decodes a batch of them."""

    name: str
    items: list[str]
    identities: list[str]
    image_size: tuple[int, int]
    load: Callable[[Sequence[int]], Batch]
    landmarks: np.ndarray | None = None  # float64 [N, J, 2], NaN = missing
    landmark_names: list[str] | None = None
    has_masks: bool = False
    has_labels: bool = False
    part_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: Sequence[int]) -> EvalSplit:
        """The split restricted to `indices` (in that order).

        Args:
          indices: Item indices into this split.

        Returns:
          A new split of those items, its loader reading through this one's.
        """
        indices = [int(i) for i in indices]
        load = self.load
        return dataclasses.replace(
            self,
            items=[self.items[i] for i in indices],
            identities=[self.identities[i] for i in indices],
            landmarks=None if self.landmarks is None else self.landmarks[indices],
            load=lambda chosen: load([indices[i] for i in chosen]),
        )


def identity_of(name: str) -> str:
    """`puppet00003#clip00/00012` -> `puppet00003`: the part before the first `#` (or the stem).

    Args:
      name: An item name (`<video>/<frame>` or an image file name).

    Returns:
      The identity.
    """
    return os.path.splitext(name.split("/")[0])[0].split("#")[0]


def limit(split: EvalSplit, max_items: int | None, seed: int) -> EvalSplit:
    """A seeded random subset of at most `max_items` items (kept in their order); all if None.

    Args:
      split: The split to subsample.
      max_items: Most items to keep; None or <= 0 keeps all.
      seed: Seed of the choice.

    Returns:
      `split` itself if small enough, else its seeded subset.
    """
    if max_items is None or max_items <= 0 or len(split) <= max_items:
        return split
    chosen = np.sort(np.random.default_rng(seed).choice(len(split), max_items, replace=False))
    return split.subset(chosen)


# ----------------------------------------------------------------------------- synthetic


def read_synthetic(
    root: str, *, frames_per_video: int = 8, layout: str | None = None
) -> dict[str, EvalSplit]:
    """The synthetic set's train and test splits; items are `<video>/<frame>`.

    Args:
      root: The root a synthetic set was generated into (with `ground_truth/info.json`).
      frames_per_video: Frames taken per video, evenly spaced.
      layout: Video folder to read (e.g. "png"); None takes the first present of `_SYNTHETIC_LAYOUTS`.

    Returns:
      {"test": ..., and "train" if present}.

    Raises:
      GroundTruthError: `info.json` is missing, unreadable or incomplete, no video folder exists, or there
        are no test videos.
    """
    info_path = fileio.join(root, "ground_truth", "info.json")
    if not fileio.exists(info_path):
        raise GroundTruthError(f"{root} is not a synthetic set: {info_path} not found (made by coseg-synth)")
    try:
        info = json.loads(fileio.read_bytes(info_path))
    except ValueError as e:
        raise GroundTruthError(f"{info_path}: not readable JSON ({e})") from None
    missing = [key for key in ("size", "joint_names", "part_names") if key not in info]
    if missing:
        raise GroundTruthError(f"{info_path}: no {', '.join(missing)} (made by another coseg-synth?)")
    if layout is None:
        available = [f for f in _SYNTHETIC_LAYOUTS if fileio.isdir(fileio.join(root, f))]
        if not available:
            raise GroundTruthError(f"no video folder ({', '.join(_SYNTHETIC_LAYOUTS)}) under {root}")
        layout = available[0]
    size = int(info["size"])
    splits = {}
    for split in ("train", "test"):
        folder = fileio.join(root, layout, split)
        if not fileio.isdir(folder):
            continue
        videos = video_io.list_videos(folder)
        if videos:
            splits[split] = _synthetic_split(root, split, videos, size, frames_per_video, info)
    if "test" not in splits:
        raise GroundTruthError(f"no test videos under {root}/{layout}/test")
    return splits


def read_synthetic_ground_truth(path: str, size: int, num_landmarks: int) -> dict[str, np.ndarray]:
    """One synthetic video's ground truth, checked: `labels` [T, size, size], `landmarks` [T, J, 2],
    `landmark_visible` [T, J].

    Args:
      path: The video's `ground_truth/<split>/<name>.npz`.
      size: The set's frame size.
      num_landmarks: J, the number of the set's landmarks (`info.json`'s joint names).

    Returns:
      The three arrays by name.

    Raises:
      GroundTruthError: If the file does not read as an .npz, or an array is missing or has
        another shape or frame count than the others; the message names the file and array.
    """
    import zipfile

    try:
        with np.load(io.BytesIO(fileio.read_bytes(path))) as gt:
            arrays = {name: gt[name] for name in gt.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise GroundTruthError(f"{path}: not a readable .npz of ground truth ({e})") from None
    expected = {
        "labels": ("T", size, size),
        "landmarks": ("T", num_landmarks, 2),
        "landmark_visible": ("T", num_landmarks),
    }
    for name, shape in expected.items():
        if name not in arrays:
            raise GroundTruthError(f"{path}: no array '{name}' (has {sorted(arrays)})")
        got = arrays[name].shape
        frames = arrays["labels"].shape[0] if arrays["labels"].ndim else -1
        want = tuple(frames if d == "T" else d for d in shape)
        if got != want:
            described = "[" + ", ".join(str(d) for d in shape) + "]"
            raise GroundTruthError(
                f"{path}: array '{name}' has shape {list(got)}, expected {described} (T = {frames})"
            )
    return arrays


def _synthetic_split(
    root: str, split: str, videos: list, size: int, frames_per_video: int, info: dict[str, Any]
) -> EvalSplit:
    items, identities, landmarks, where = [], [], [], []
    for v, source in enumerate(videos):
        gt_path = fileio.join(root, "ground_truth", split, f"{source.name}.npz")
        if not fileio.exists(gt_path):
            raise GroundTruthError(f"no ground truth {gt_path} for video {source.path}")
        gt = read_synthetic_ground_truth(gt_path, size, len(info["joint_names"]))
        num_frames = gt["labels"].shape[0]
        points = gt["landmarks"].astype(np.float64)
        points[~gt["landmark_visible"].astype(bool)] = np.nan
        count = min(frames_per_video, num_frames)
        for t in np.unique(np.round(np.linspace(0, num_frames - 1, count)).astype(int)):
            items.append(f"{source.name}/{t:05d}")
            identities.append(identity_of(source.name))
            landmarks.append(points[t])
            where.append((v, int(t)))
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def load(indices: Sequence[int]) -> Batch:
        images, labels = [], []
        for i in indices:
            v, t = where[i]
            if v not in cache:
                cache.clear()  # videos are visited in order: keep one decoded
                source = videos[v]
                frames = video_io.load_frames(source, (size, size))
                gt_path = fileio.join(root, "ground_truth", split, f"{source.name}.npz")
                label_maps = read_synthetic_ground_truth(gt_path, size, len(info["joint_names"]))["labels"]
                if len(frames) != len(label_maps):
                    raise GroundTruthError(
                        f"{gt_path}: array 'labels' has {len(label_maps)} frames, "
                        f"the video {source.path} {len(frames)}"
                    )
                cache[v] = (frames, label_maps)
            frames, label_maps = cache[v]
            images.append(frames[t])
            labels.append(label_maps[t].astype(np.int32))
        labels_array = np.stack(labels)
        return Batch(np.stack(images), labels_array > 0, labels_array)

    return EvalSplit(
        name=split,
        items=items,
        identities=identities,
        image_size=(size, size),
        load=load,
        landmarks=np.stack(landmarks),
        landmark_names=list(info["joint_names"]),
        has_masks=True,
        has_labels=True,
        part_names=list(info["part_names"]),
    )


# ----------------------------------------------------------------------------- image folders


def _list_images(folder: str) -> list[str]:
    names = [n.rstrip("/") for n in fileio.listdir(folder)]
    return sorted(n for n in names if os.path.splitext(n)[1].lower() in video_io.IMAGE_EXTENSIONS)


def _decode_gray(path: str) -> np.ndarray:
    """A single-channel image as stored (uint8/uint16); the first channel of a colour image."""
    image = cv2.imdecode(np.frombuffer(fileio.read_bytes(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise GroundTruthError(f"cannot decode image {path}")
    return image if image.ndim == 2 else image[..., 0]


def _read_mask(path: str) -> np.ndarray:
    """Foreground where the value is above half of its type's range (uint8 > 127), as the original."""
    image = _decode_gray(path)
    limit_value = np.iinfo(image.dtype).max if image.dtype.kind in "iu" else 1.0
    return image > limit_value / 2


def _find(folder: str, name: str) -> str | None:
    """`folder/name`, else `folder/<stem>.png`: masks and parts are usually PNG beside JPEG images."""
    for candidate in (name, os.path.splitext(name)[0] + ".png"):
        path = fileio.join(folder, candidate)
        if fileio.exists(path):
            return path
    return None


def _folder_loader(
    image_dir: str, names: list[str], mask_dir: str | None, part_dir: str | None, size: tuple[int, int]
) -> Callable[[Sequence[int]], Batch]:
    def load(indices: Sequence[int]) -> Batch:
        images, masks, labels = [], [], []
        for i in indices:
            name = names[i]
            image = video_io.decode_image(fileio.read_bytes(fileio.join(image_dir, name)), name)
            if image.shape[:2] != size:
                raise GroundTruthError(
                    f"{name} is {image.shape[1]}x{image.shape[0]} but the set's images are "
                    f"{size[1]}x{size[0]}; every image of an evaluation set must have one size"
                )
            images.append(image)
            if mask_dir is not None:
                path = _find(mask_dir, name)
                if path is None:
                    raise GroundTruthError(f"no mask for {name} in {mask_dir}")
                masks.append(_read_mask(path))
            if part_dir is not None:
                path = _find(part_dir, name)
                if path is None:
                    raise GroundTruthError(f"no part label image for {name} in {part_dir}")
                labels.append(_decode_gray(path).astype(np.int32))
        for what, maps in (("mask", masks), ("part label image", labels)):
            for name, m in zip([names[i] for i in indices], maps, strict=False):
                if m.shape != size:
                    raise GroundTruthError(f"the {what} of {name} is {m.shape}, its image {size}")
        batch = Batch(np.stack(images))
        if labels:
            batch.labels = np.stack(labels)
            batch.masks = np.stack(masks) if masks else batch.labels > 0
        elif masks:
            batch.masks = np.stack(masks)
        return batch

    return load


def _first_image_size(image_dir: str, names: list[str]) -> tuple[int, int]:
    image = video_io.decode_image(fileio.read_bytes(fileio.join(image_dir, names[0])), names[0])
    return int(image.shape[0]), int(image.shape[1])


def _parse_coordinate(cell: str) -> float:
    cell = cell.strip()
    if not cell or cell.lower() == "nan":
        return math.nan
    value = float(cell)
    return math.nan if value == -1 else value


def read_landmark_csv(path: str) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """The plain format's `landmarks.csv`: ({name: [J, 2]}, {name: identity}, landmark names).

    Header: `name`, optionally `identity`, then `<landmark>_x`, `<landmark>_y` per landmark.
    Empty, `nan` and `-1` cells are missing coordinates.

    Args:
      path: The CSV file (local or cloud).

    Returns:
      ({name: float64 [J, 2] with NaN for missing}, {name: identity} (empty without an identity column),
      landmark names).

    Raises:
      GroundTruthError: A malformed header, a row of the wrong length, or a coordinate that is not a number.
    """
    reader = csv.reader(io.StringIO(fileio.read_bytes(path).decode("utf-8")))
    header = [h.strip() for h in next(reader, [])]
    if not header or header[0] != "name":
        raise GroundTruthError(f"{path}: the first column must be 'name' (got {header[:1]})")
    start = 2 if len(header) > 1 and header[1] == "identity" else 1
    coords = header[start:]
    if not coords or len(coords) % 2:
        raise GroundTruthError(f"{path}: expected <landmark>_x,<landmark>_y column pairs after the names")
    landmark_names = []
    for x_col, y_col in zip(coords[::2], coords[1::2], strict=True):
        if not (x_col.endswith("_x") and y_col.endswith("_y") and x_col[:-2] == y_col[:-2]):
            raise GroundTruthError(f"{path}: columns {x_col!r}, {y_col!r} are not a <name>_x, <name>_y pair")
        landmark_names.append(x_col[:-2])
    points, identities = {}, {}
    for line, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise GroundTruthError(f"{path}:{line}: {len(row)} cells, header has {len(header)}")
        try:
            values = [_parse_coordinate(c) for c in row[start:]]
        except ValueError:
            raise GroundTruthError(f"{path}:{line}: a coordinate is not a number") from None
        name = row[0].strip()
        points[name] = np.asarray(values, np.float64).reshape(-1, 2)
        if start == 2:
            identities[name] = row[1].strip()
    return points, identities, landmark_names


def _match(table: dict[str, Any], name: str) -> Any:
    """A table row by file name, else by stem (tables often omit or change the extension)."""
    if name in table:
        return table[name]
    stem = os.path.splitext(name)[0]
    if stem in table:
        return table[stem]
    for key, value in table.items():
        if os.path.splitext(key)[0] == stem:
            return value
    return None


def _landmark_array(table: dict[str, np.ndarray], names: list[str]) -> np.ndarray | None:
    if not table:
        return None
    num = next(iter(table.values())).shape[0]
    out = np.full((len(names), num, 2), np.nan)
    for i, name in enumerate(names):
        row = _match(table, name)
        if row is not None:
            if row.shape != (num, 2):
                raise GroundTruthError(f"landmarks of {name} have shape {row.shape}, expected {(num, 2)}")
            out[i] = row
    return out


def read_plain(root: str) -> dict[str, EvalSplit]:
    """The plain folder format (see the module docstring).

    Args:
      root: Root of `<root>/<split>/images/` (with optional `masks/`, `parts/`, `landmarks.csv`).

    Returns:
      {"test": ..., and "train" if present}.

    Raises:
      GroundTruthError: There are no test images.
    """
    splits = {}
    for split in ("train", "test"):
        image_dir = fileio.join(root, split, "images")
        if not fileio.isdir(image_dir):
            continue
        names = _list_images(image_dir)
        if not names:
            continue
        mask_dir = fileio.join(root, split, "masks")
        part_dir = fileio.join(root, split, "parts")
        mask_dir = mask_dir if fileio.isdir(mask_dir) else None
        part_dir = part_dir if fileio.isdir(part_dir) else None
        table, identity_table, landmark_names = {}, {}, None
        csv_path = fileio.join(root, split, "landmarks.csv")
        if fileio.exists(csv_path):
            table, identity_table, landmark_names = read_landmark_csv(csv_path)
        size = _first_image_size(image_dir, names)
        identities = [_match(identity_table, n) or identity_of(n) for n in names]
        splits[split] = EvalSplit(
            name=split,
            items=names,
            identities=identities,
            image_size=size,
            load=_folder_loader(image_dir, names, mask_dir, part_dir, size),
            landmarks=_landmark_array(table, names),
            landmark_names=landmark_names,
            has_masks=mask_dir is not None or part_dir is not None,
            has_labels=part_dir is not None,
        )
    if "test" not in splits:
        raise GroundTruthError(f"no images in {root}/test/images (plain format: <root>/<split>/images/)")
    return splits


def read_original(
    root: str,
    train_landmarks: str | None,
    test_landmarks: str | None,
    *,
    trust_pickles: bool,
    masks_dir: str | None = None,
) -> dict[str, EvalSplit]:
    """The original evaluation layout: `<root>/{train,test}/` images, one landmark pickle per split.

    The pickles are read by `pickle_tables.read_dataframe_pickle`, which refuses them unless
    `trust_pickles` is set and even then admits only the types of a plain DataFrame.

    Args:
      root: Root of `<root>/train/` and `<root>/test/` images.
      train_landmarks: The train split's landmark pickle, or None.
      test_landmarks: The test split's landmark pickle, or None.
      trust_pickles: Whether the pickles may be read at all.
      masks_dir: Folder of foreground masks (with per-split subfolders or not), or None.

    Returns:
      {"test": ..., and "train" if present}; -1 landmark coordinates become NaN.

    Raises:
      GroundTruthError: There are no test images.
    """
    from coseg_tf import pickle_tables

    splits = {}
    for split, table_path in (("train", train_landmarks), ("test", test_landmarks)):
        image_dir = fileio.join(root, split)
        if not fileio.isdir(image_dir):
            continue
        names = _list_images(image_dir)
        if not names:
            continue
        table: dict[str, np.ndarray] = {}
        if table_path:
            columns = pickle_tables.read_dataframe_pickle(table_path, trust=trust_pickles)
            table = pickle_tables.landmark_table(columns, table_path)
            table = {k: np.where(v == -1, np.nan, v) for k, v in table.items()}
        mask_dir = None
        if masks_dir:
            per_split = fileio.join(masks_dir, split)
            mask_dir = per_split if fileio.isdir(per_split) else masks_dir
        size = _first_image_size(image_dir, names)
        splits[split] = EvalSplit(
            name=split,
            items=names,
            identities=[identity_of(n) for n in names],
            image_size=size,
            load=_folder_loader(image_dir, names, mask_dir, None, size),
            landmarks=_landmark_array(table, names),
            has_masks=mask_dir is not None,
        )
    if "test" not in splits:
        raise GroundTruthError(f"no test images in {root}/test (original layout: <root>/train, <root>/test)")
    return splits
