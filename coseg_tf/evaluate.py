"""`coseg-eval`: the paper's evaluation (Sec. 4) of a model on ground truth, as JSON and a picture.

Figures (definitions in `coseg_tf.metrics`; every one at the ground truth's resolution, the
segmentation bilinearly resized to it):

- landmark regression (paper Sec. 4, after Hung et al.): the K part centroids of every image
  (soft-mask weighted, background excluded) -> a linear regression per landmark coordinate,
  fitted on the train split, scored on the test split, whose identities must differ; the
  paper's figure (sum over landmarks and coordinates of the MAE, pixels at 256x256) and a
  normalised mean error;
- foreground IoU: sum of the K part maps > 0.5 against the ground-truth mask (mean over
  test images, and pooled over all their pixels), with the pooled precision (1 - the
  paper's "false fg" share), recall, and the share of false fg within 1 px of the true mask
  (a boundary halo rather than background leaking into the parts);
- part NMI and ARI against ground-truth part labels, pooled over the test images' pixels:
  over all pixels (labels = argmax of the K+1 maps, background included) and over the
  ground-truth foreground only (argmax of the K part maps); and `part_nmi_fg`, issue 21's
  part score: per test image, the NMI with the geometric mean of the entropies between the
  argmax of the K+1 maps and the part labels over the ground-truth foreground, averaged.

Models: whatever `inference.load_segmenter` reads (a trainer run dir, a `.keras` file, a
tf.train checkpoint, an original `.pth.tar` with `--config`, an exported SavedModel, a
`.tflite` segmenter), run through its `Segmenter.segment`, or `kmeans` (the non-learned
baseline of `baselines`, behind the same interface).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from absl import app, flags, logging

from coseg_tf import cli, ground_truth
from coseg_tf import config as config_lib
from coseg_tf import metrics as metrics_lib

if TYPE_CHECKING:  # TensorFlow comes with the model, not for --help
    from coseg_tf.inference import Segmenter

FLAGS = flags.FLAGS

# Table 1(a) of the paper, K = 10, for comparison in the report.
PAPER_TABLE_1A = {
    "taichi": {"mae_sum_256": 389.78, "foreground_iou": 0.7686},
    "vox": {"mae_sum_256": 424.96, "foreground_iou": 0.9135},
}
NORMALIZERS = ("auto", "bbox_diagonal", "mask_height")


def _define_flags() -> None:
    # Defined when run as a command only, so importing this module (tests, benchmarks) does
    # not add flags to the process.
    cli.define_model_flags(
        "What to evaluate: a trainer model directory, a .keras file, a tf.train checkpoint, an original "
        ".pth.tar (with --config), an exported SavedModel directory, a .tflite segmenter, or `kmeans` "
        "(the non-learned baseline)."
    )
    flags.DEFINE_enum(
        "data_format",
        "synthetic",
        ground_truth.FORMATS,
        "Ground-truth layout of --data_dir.",
    )
    flags.DEFINE_string("data_dir", None, "Ground-truth root (see --data_format).", required=True)
    flags.DEFINE_integer("frames_per_video", 8, "synthetic: evenly spaced frames taken from each video.")
    flags.DEFINE_string(
        "synthetic_layout",
        None,
        "synthetic: video folder to read (png, mp4, ...); default: lossless first.",
    )
    flags.DEFINE_string("train_landmarks", None, "original: pandas pickle of the train split's landmarks.")
    flags.DEFINE_string("test_landmarks", None, "original: pandas pickle of the test split's landmarks.")
    flags.DEFINE_string(
        "masks_dir",
        None,
        "original: foreground masks, <masks_dir>/<split>/<name> or <masks_dir>/<name>.",
    )
    flags.DEFINE_bool(
        "trust_pickles",
        False,
        "Read the landmark pickles of --data_format=original. Pickles can run code: without this flag they "
        "are refused; with it they are read by an allow-list unpickler that builds DataFrame data only.",
    )
    flags.DEFINE_integer(
        "max_train_images",
        5000,
        "Regression fit images (paper: 5000); a seeded subset if more; 0: all.",
    )
    flags.DEFINE_integer(
        "max_test_images",
        300,
        "Test images (paper: 300); a seeded subset if more; 0: all.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of the image subsets.")
    flags.DEFINE_integer("batch_size", 16, "Images per forward pass (TFLite: 1).", lower_bound=1)
    flags.DEFINE_string(
        "nme_normalizer",
        "auto",
        "Normaliser of the NME: bbox_diagonal (of the image's present landmarks), mask_height (rows of the "
        "ground-truth mask: the puppets' figure height), landmarks:I,J (distance between landmarks I and J, "
        "e.g. the outer eye corners 36,45 of 68-point faces), or auto (mask_height for synthetic, else "
        "bbox_diagonal).",
    )
    flags.DEFINE_integer(
        "reference_size",
        metrics_lib.PAPER_RESOLUTION,
        "Frame size the summed MAE is expressed at.",
    )
    flags.DEFINE_integer("kmeans_parts", 10, "kmeans: number of parts K.")
    flags.DEFINE_integer("kmeans_work_size", 64, "kmeans: images are clustered at this size.")
    flags.DEFINE_float(
        "kmeans_position_weight",
        1.0,
        "kmeans: weight of the (x, y) / size features against CIELAB / 100.",
    )
    flags.DEFINE_string("output_dir", "coseg_eval", "Where metrics.json and parts.png are written.")
    flags.DEFINE_integer("num_visualize", 6, "Test images shown in parts.png.")


# Flags passed on by name: to `load_splits` (and recorded in the report), to the k-means
# baseline, and to `EvalSettings` (its fields that are flags).
GROUND_TRUTH_FLAGS = (
    "frames_per_video",
    "synthetic_layout",
    "train_landmarks",
    "test_landmarks",
    "masks_dir",
    "trust_pickles",
)
KMEANS_FLAGS = ("kmeans_parts", "kmeans_work_size", "kmeans_position_weight", "seed")


def _flag_values(names: Iterable[str]) -> dict[str, Any]:
    return {name: FLAGS[name].value for name in names}


def load_predictor(
    model: str,
    config: str | None = None,
    *,
    kmeans_parts: int = 10,
    kmeans_work_size: int = 64,
    kmeans_position_weight: float = 1.0,
    seed: int = 0,
) -> Segmenter:
    """The segmenter for `--model`: any model file of `inference.load_segmenter`, or `kmeans`.

    Args:
      model: A model path for `inference.load_segmenter`, or "kmeans".
      config: The config for a checkpoint without one, or None.
      kmeans_parts: Clusters K of the k-means baseline.
      kmeans_work_size: Side in pixels the baseline clusters at.
      kmeans_position_weight: Weight of pixel position against colour in the baseline.
      seed: Seed of the baseline's k-means.

    Returns:
      The segmenter.
    """
    if model == "kmeans":
        from coseg_tf.baselines import KMeansSegmenter

        return KMeansSegmenter(
            kmeans_parts, work_size=kmeans_work_size, position_weight=kmeans_position_weight, seed=seed
        )
    from coseg_tf.inference import load_segmenter

    return load_segmenter(model, config)


# ----------------------------------------------------------------------------- evaluation


@dataclasses.dataclass
class EvalSettings:
    """Everything that changes the figures, recorded in the JSON."""

    max_train_images: int | None = 5000
    max_test_images: int | None = 300
    seed: int = 0
    batch_size: int = 16
    nme_normalizer: str = "auto"
    reference_size: int = metrics_lib.PAPER_RESOLUTION
    num_visualize: int = 6
    iou_threshold: float = 0.5


@dataclasses.dataclass
class _SplitOutputs:
    centroids: np.ndarray  # [N, K, 2]
    ious: list[float] = dataclasses.field(default_factory=list)
    iou_counts: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(len(metrics_lib.FOREGROUND_COUNTS), np.int64)
    )
    table_all: np.ndarray | None = None
    table_foreground: np.ndarray | None = None
    part_nmi_fg: list[float] = dataclasses.field(default_factory=list)  # per frame, NaN: no fg
    mask_heights: list[float] = dataclasses.field(default_factory=list)
    shown: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)


def _run_split(
    segmenter: Segmenter, split: ground_truth.EvalSplit, settings: EvalSettings, score: bool
) -> _SplitOutputs:
    """Centroids of every item; for the scored split also IoU, contingency tables and pictures."""
    centroids = []
    out = _SplitOutputs(np.zeros((0, segmenter.num_segments, 2)))
    # Pictured items spread over the split (its videos or identities), not its first few.
    count = min(settings.num_visualize, len(split)) if score else 0
    shown_indices = (
        set(np.round(np.linspace(0, len(split) - 1, count)).astype(int).tolist()) if count else set()
    )
    for start in range(0, len(split), settings.batch_size):
        indices = list(range(start, min(start + settings.batch_size, len(split))))
        batch = split.load(indices)
        segmentation = segmenter.segment(batch.images).soft
        maps = metrics_lib.upsample_segmentation(segmentation, split.image_size)
        centroids.append(metrics_lib.part_centroids(maps))
        if not score:
            continue
        if batch.masks is not None:
            out.ious.extend(
                np.atleast_1d(
                    metrics_lib.foreground_iou(segmentation, batch.masks, settings.iou_threshold)
                ).tolist()
            )
            predicted_fg = maps[..., 1:].sum(-1) > settings.iou_threshold
            out.iou_counts += metrics_lib.foreground_counts(predicted_fg, batch.masks)
            out.mask_heights.extend(metrics_lib.mask_height(batch.masks).tolist())
        if batch.labels is not None:
            labels = maps.argmax(-1)
            out.table_all = metrics_lib.add_tables(
                out.table_all, metrics_lib.contingency_table(batch.labels, labels)
            )
            inside = batch.labels > 0
            parts = maps[..., 1:].argmax(-1) + 1
            out.table_foreground = metrics_lib.add_tables(
                out.table_foreground, metrics_lib.contingency_table(batch.labels[inside], parts[inside])
            )
            out.part_nmi_fg.extend(metrics_lib.part_nmi_per_frame(batch.labels, labels).tolist())
        for i, index in enumerate(indices):
            if index in shown_indices:
                shown = {"image": batch.images[i], "maps": maps[i], "index": np.array(index)}
                if batch.labels is not None:
                    shown["labels"] = batch.labels[i]
                if batch.masks is not None:
                    shown["mask"] = batch.masks[i]
                out.shown.append(shown)
    out.centroids = np.concatenate(centroids) if centroids else out.centroids
    return out


def _normalizer(
    name: str, data_format: str, test: ground_truth.EvalSplit, outputs: _SplitOutputs
) -> tuple[str, np.ndarray | None]:
    if name == "auto":
        name = "mask_height" if data_format == "synthetic" else "bbox_diagonal"
    if name == "bbox_diagonal":
        return name, metrics_lib.bbox_diagonal(test.landmarks)
    if name == "mask_height":
        if not outputs.mask_heights:
            raise ValueError("--nme_normalizer=mask_height needs ground-truth masks")
        return name, np.asarray(outputs.mask_heights)
    if name.startswith("landmarks:"):
        try:
            i, j = (int(v) for v in name.split(":", 1)[1].split(","))
        except ValueError:
            raise ValueError(f"--nme_normalizer={name}: expected landmarks:I,J") from None
        points = test.landmarks
        return name, np.hypot(*(points[:, i] - points[:, j]).T)
    raise ValueError(f"unknown --nme_normalizer {name!r}; choose from {NORMALIZERS} or landmarks:I,J")


def evaluate(
    segmenter: Segmenter,
    splits: dict[str, ground_truth.EvalSplit],
    settings: EvalSettings,
    data_format: str = "synthetic",
) -> dict[str, Any]:
    """Every figure the ground truth allows, with the counts behind it; `_shown` holds pictures.

    Args:
      segmenter: The model (or baseline) to score.
      splits: The ground truth's splits; "test" is required, "train" fits the landmark regression.
      settings: Sizes, seed and options of the evaluation.
      data_format: The ground truth's format (`ground_truth.FORMATS`), which picks the NME normaliser.

    Returns:
      `splits`, `landmark_regression`, `foreground_iou`, `parts` (each with `available` and a `reason` when
      not) and `seconds`; keys starting with `_` hold arrays for `write_picture`.

    Raises:
      SplitOverlapError: An identity is in both the train and test splits.
    """
    test = ground_truth.limit(splits["test"], settings.max_test_images, settings.seed)
    train = splits.get("train")
    if train is not None:
        train = ground_truth.limit(train, settings.max_train_images, settings.seed)
    started = time.time()
    test_out = _run_split(segmenter, test, settings, score=True)
    results: dict[str, Any] = {
        "splits": {
            "test": _split_info(test),
            **({"train": _split_info(train)} if train is not None else {}),
        }
    }
    landmarks: dict[str, Any] = {"available": False}
    if test.landmarks is None:
        landmarks["reason"] = "the test split has no landmarks"
    elif train is None or train.landmarks is None:
        landmarks["reason"] = "no train split with landmarks to fit the regression on"
    else:
        metrics_lib.check_disjoint_identities(train.identities, test.identities)
        train_out = _run_split(segmenter, train, settings, score=False)
        predictions, fitted = metrics_lib.landmark_regression(
            train_out.centroids.reshape(len(train), -1),
            train.landmarks,
            test_out.centroids.reshape(len(test), -1),
            test.landmarks,
        )
        normalizer_name, normalizer = _normalizer(settings.nme_normalizer, data_format, test, test_out)
        scores = metrics_lib.landmark_errors(
            predictions, test.landmarks, test.image_size, normalizer, settings.reference_size
        )
        landmarks = {
            "available": True,
            **scores,
            "nme_normalizer": normalizer_name,
            "num_landmarks": int(test.landmarks.shape[1]),
            "landmark_names": test.landmark_names,
            "num_train_images": len(train),
            "num_test_images": len(test),
            "num_coordinates_fitted": int(fitted.sum()),
            "identities_disjoint": True,
            "num_train_identities": len(set(train.identities)),
            "num_test_identities": len(set(test.identities)),
        }
        results["_predictions"] = predictions
    results["landmark_regression"] = landmarks
    if test_out.ious:
        counts = dict(zip(metrics_lib.FOREGROUND_COUNTS, (int(v) for v in test_out.iou_counts), strict=True))
        false_fg = counts["predicted"] - counts["intersection"]
        results["foreground_iou"] = {
            "available": True,
            "mean_per_image": float(np.mean(test_out.ious)),
            "pooled": counts["intersection"] / counts["union"] if counts["union"] else 1.0,
            # Of the predicted foreground, the share that is true: 1 - the paper's "false fg".
            "precision": counts["intersection"] / counts["predicted"] if counts["predicted"] else 1.0,
            "recall": counts["intersection"] / counts["truth"] if counts["truth"] else 1.0,
            "false_fg_within_1px": counts["false_fg_near_truth"] / false_fg if false_fg else 0.0,
            "pixel_counts": counts,
            "threshold": settings.iou_threshold,
            "num_images": len(test_out.ious),
        }
    else:
        results["foreground_iou"] = {"available": False, "reason": "no ground-truth masks"}
    if test_out.table_all is not None:
        results["parts"] = {
            "available": True,
            "nmi_all_pixels": metrics_lib.normalized_mutual_information(test_out.table_all),
            "ari_all_pixels": metrics_lib.adjusted_rand_index(test_out.table_all),
            "nmi_foreground": metrics_lib.normalized_mutual_information(test_out.table_foreground),
            "ari_foreground": metrics_lib.adjusted_rand_index(test_out.table_foreground),
            # Issue 21's part score: per frame, I / sqrt(H H) over the true foreground, labels
            # the argmax of all K + 1 maps; averaged over the frames with foreground.
            "part_nmi_fg": float(np.nanmean(test_out.part_nmi_fg))
            if np.isfinite(test_out.part_nmi_fg).any()
            else float("nan"),
            "part_nmi_fg_num_frames": int(np.isfinite(test_out.part_nmi_fg).sum()),
            "num_pixels_all": int(test_out.table_all.sum()),
            "num_pixels_foreground": int(test_out.table_foreground.sum()),
            "num_ground_truth_labels": int((test_out.table_all.sum(1) > 0).sum()),
            "ground_truth_part_names": test.part_names,
        }
    else:
        results["parts"] = {"available": False, "reason": "no ground-truth part labels"}
    results["seconds"] = time.time() - started
    results["_shown"] = test_out.shown
    results["_test"] = test
    return results


def _split_info(split: ground_truth.EvalSplit) -> dict[str, Any]:
    return {
        "num_images": len(split),
        "num_identities": len(set(split.identities)),
        "image_size": list(split.image_size),
        "has_landmarks": split.landmarks is not None,
        "has_masks": split.has_masks,
        "has_part_labels": split.has_labels,
    }


# ----------------------------------------------------------------------------- report


def write_picture(results: dict[str, Any], num_segments: int, path: str) -> str | None:
    """Rows of [image | predicted parts over it | predicted part map | ground truth | landmarks].

    Ground-truth parts are coloured by their own ids (a part's colour need not match the
    predicted part's: unsupervised ids are arbitrary). Landmarks: ground truth as green
    dots, the regression's predictions as red crosses.

    Args:
      results: `evaluate`'s results, with their `_` keys.
      num_segments: K, for the part colours.
      path: The PNG to write.

    Returns:
      `path`, or None when there was nothing to show.
    """
    import cv2

    from coseg_tf import visualize

    shown = results["_shown"]
    if not shown:
        return None
    predictions = results.get("_predictions")
    test = results["_test"]
    if test.part_names:
        num_truth = len(test.part_names) - 1
    else:
        num_truth = max([int(item["labels"].max(initial=0)) for item in shown if "labels" in item] + [1])
    height, width = shown[0]["image"].shape[:2]
    zoom = max(1, int(np.ceil(128 / max(height, width))))
    rows = []
    for item in shown:
        image = item["image"]
        labels = item["maps"].argmax(-1)
        predicted = visualize.color_labels(labels, num_segments)
        foreground = (labels > 0)[..., None]
        overlay = np.where(foreground, (0.45 * image + 0.55 * predicted).astype(np.uint8), image)
        cells = [image, overlay, predicted]
        if "labels" in item:
            cells.append(visualize.color_labels(item["labels"], num_truth))
        elif "mask" in item:
            cells.append(np.repeat(item["mask"][..., None].astype(np.uint8) * 255, 3, -1))
        cells = [cv2.resize(c, (width * zoom, height * zoom), interpolation=cv2.INTER_NEAREST) for c in cells]
        if predictions is not None:
            canvas = np.ascontiguousarray(cells[0].copy())
            index = int(item["index"])
            for point, color, marker in (
                (test.landmarks[index], (0, 255, 0), None),
                (predictions[index], (255, 0, 0), cv2.MARKER_CROSS),
            ):
                for x, y in point:
                    if np.isfinite(x) and np.isfinite(y):
                        center = (int(round((x + 0.5) * zoom - 0.5)), int(round((y + 0.5) * zoom - 0.5)))
                        if marker is None:
                            cv2.circle(canvas, center, max(2, zoom), color, -1)
                        else:
                            cv2.drawMarker(canvas, center, color, marker, 3 * max(2, zoom), 1)
            cells.append(canvas)
        rows.append(cells)
    return visualize.write_png(path, visualize.grid(rows, border=2))


def public_results(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of `evaluate`'s results (without the arrays kept for the picture).

    Args:
      results: `evaluate`'s results.

    Returns:
      A new dict without the keys starting with `_`.
    """
    return {k: v for k, v in results.items() if not k.startswith("_")}


def load_splits(
    data_format: str,
    data_dir: str,
    *,
    frames_per_video: int = 8,
    synthetic_layout: str | None = None,
    train_landmarks: str | None = None,
    test_landmarks: str | None = None,
    masks_dir: str | None = None,
    trust_pickles: bool = False,
) -> dict[str, ground_truth.EvalSplit]:
    """The ground truth of `--data_format` as train/test splits.

    Args:
      data_format: "synthetic", "plain" or "original".
      data_dir: The ground truth's root.
      frames_per_video: Synthetic only: frames taken per video.
      synthetic_layout: Synthetic only: the video folder to read, or None for the first there.
      train_landmarks: Original only: the train split's landmark pickle.
      test_landmarks: Original only: the test split's landmark pickle.
      masks_dir: Original only: folder of foreground masks.
      trust_pickles: Original only: whether the landmark pickles may be read.

    Returns:
      {"test": ..., and "train" if present}.

    Raises:
      ValueError: `data_format` is unknown.
    """
    if data_format == "synthetic":
        return ground_truth.read_synthetic(
            data_dir, frames_per_video=frames_per_video, layout=synthetic_layout
        )
    if data_format == "plain":
        return ground_truth.read_plain(data_dir)
    if data_format == "original":
        return ground_truth.read_original(
            data_dir, train_landmarks, test_landmarks, trust_pickles=trust_pickles, masks_dir=masks_dir
        )
    raise ValueError(f"unknown data format {data_format!r}; choose from {ground_truth.FORMATS}")


# Printed summary: (title, results key, line of an available figure).
_SUMMARY = (
    (
        "landmark regression",
        "landmark_regression",
        lambda lm: (
            f"MAE sum {lm['mae_sum_256']:.2f} (pixels at {lm['reference_size']}, "
            f"{lm['num_coordinates_scored']}/{lm['num_coordinates']} coordinates), "
            f"NME {lm.get('nme', float('nan')):.4f} "
            f"({lm['nme_normalizer']}); {lm['num_train_images']} fit / {lm['num_test_images']} test images"
        ),
    ),
    (
        "foreground IoU",
        "foreground_iou",
        lambda iou: (
            f"{iou['mean_per_image']:.4f} (mean per image), {iou['pooled']:.4f} (pooled); "
            f"precision {iou['precision']:.4f}, recall {iou['recall']:.4f}, "
            f"false fg within 1 px {iou['false_fg_within_1px']:.1%}"
        ),
    ),
    (
        "parts",
        "parts",
        lambda parts: (
            f"NMI {parts['nmi_all_pixels']:.4f} / ARI {parts['ari_all_pixels']:.4f} (all pixels), "
            f"NMI {parts['nmi_foreground']:.4f} / ARI {parts['ari_foreground']:.4f} (foreground); "
            f"part NMI fg {parts['part_nmi_fg']:.4f} (per frame, geometric)"
        ),
    ),
)


def _summary_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for title, key, figures in _SUMMARY:
        found = results[key]
        text = figures(found) if found["available"] else f"not available ({found['reason']})"
        lines.append(f"{title}: {text}")
    return lines


def _run(argv: list[str]) -> None:
    """Evaluates `--model` on `--data_dir`; writes metrics.json and parts.png."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    settings = EvalSettings(
        **_flag_values(f.name for f in dataclasses.fields(EvalSettings) if f.name in FLAGS)
    )
    reading = _flag_values(GROUND_TRUTH_FLAGS)
    cli.check_output_dir(FLAGS.output_dir, "--output_dir")  # before the work: a bad path fails fast
    splits = load_splits(FLAGS.data_format, FLAGS.data_dir, **reading)
    segmenter = load_predictor(
        FLAGS.model, config_lib.config_path(FLAGS.config), **_flag_values(KMEANS_FLAGS)
    )
    segmenter.set_batch_size(FLAGS.batch_size)
    results = evaluate(segmenter, splits, settings, FLAGS.data_format)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    picture = write_picture(results, segmenter.num_segments, os.path.join(FLAGS.output_dir, "parts.png"))
    report = {
        "command": " ".join(["coseg-eval", *sys.argv[1:]]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": segmenter.describe(),
        "data": {"format": FLAGS.data_format, "dir": FLAGS.data_dir, **reading},
        "settings": dataclasses.asdict(settings),
        "resolution": "ground truth's; segmentation maps bilinearly resized to it (argmax for labels)",
        "paper_table_1a_k10": PAPER_TABLE_1A,
        **public_results(results),
        "picture": picture,
    }
    json_path = os.path.join(FLAGS.output_dir, "metrics.json")
    write_json(report, json_path)
    for line in _summary_lines(results):
        print(line)
    print(f"metrics: {json_path}")
    if picture:
        print(f"picture: {picture}  (image | predicted parts | part map | ground truth | landmarks)")


def _plain(value: Any) -> Any:
    """numpy values to Python ones and NaN/inf to null, so that the file is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(report: dict[str, Any], path: str) -> str:
    """Writes `report` as strict JSON (NaN as null).

    Args:
      report: The results (numpy values are converted).
      path: The local file to write.

    Returns:
      `path`.
    """
    with open(path, "w") as f:
        json.dump(_plain(report), f, indent=1, allow_nan=False)
    return path


def main() -> None:
    """Console-script entry point (`coseg-eval`)."""
    cli.run(_run, _define_flags, "coseg-eval")


if __name__ == "__main__":
    main()
