"""Agreement of every exported artifact with the Keras model it came from.

Each check runs the artifact (SavedModel signatures in TensorFlow, TFLite models in the
LiteRT interpreter) and the Keras modules on the same frames and reduces the difference to
one number with a threshold: the largest absolute difference of the float outputs for
float32 artifacts, the share of pixels with the same part label (argmax) for float16 and
the int8 variants, the mean absolute difference of the image for the float16 part swap.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from coseg_tf import graphs
from coseg_tf.export import samples
from coseg_tf.inference import PART_SWAP_SIGNATURE, SEGMENT_SIGNATURE, LiteRunner
from coseg_tf.model_files import LoadedModel


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Pass marks (see the README's export section for how they were chosen)."""

    float32_max_diff: float = 1e-4
    float16_label_agreement: float = 0.98
    dynamic_int8_label_agreement: float = 0.98
    int8_label_agreement: float = 0.95
    part_swap_float32_max_diff: float = 1e-4
    part_swap_float16_mean_diff: float = 1e-2

    def label_agreement(self, variant: str) -> float:
        """The label-agreement pass mark of a quantised segmenter variant.

        Args:
          variant: "float16", "dynamic_int8" or "int8".

        Returns:
          The minimum share of pixels with the same part label as Keras.

        Raises:
          AttributeError: `variant` has no label-agreement threshold.
        """
        return getattr(self, f"{variant}_label_agreement")


@dataclasses.dataclass
class Check:
    """One artifact's agreement: `value` against `threshold` (`higher_is_better` for agreements)."""

    artifact: str
    metric: str
    value: float
    threshold: float
    higher_is_better: bool = False
    details: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether `value` is finite and on the right side of `threshold`."""
        if not np.isfinite(self.value):
            return False
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        """The check's fields and its verdict as a JSON-ready dict.

        Returns:
          `dataclasses.asdict` of the check plus `passed`.
        """
        return {**dataclasses.asdict(self), "passed": self.passed}


def _max_diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _max_scaled_diff(reference: Any, got: Any) -> float:
    """Max of |diff| / max(1, |reference|): absolute below 1, relative above.

    The affine entries are unbounded (a trained synthetic model's reach 20), and float32
    rounding grows with them: at |A| = 20 one ulp is 2e-6, and a 7x7 conv over 1715 inputs
    then a 4096-term weighted sum differ by ~40 ulps between TF and XNNPACK. The maps and
    shifts lie in [0, 1] and [-1, 1], where this is the plain absolute difference.
    """
    reference = np.asarray(reference, np.float64)
    diff = np.abs(reference - np.asarray(got, np.float64))
    return float(np.max(diff / np.maximum(1.0, np.abs(reference))))


def _at_size(segmentation: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Reference soft maps resized like an export with `resize_to_input` does."""
    if tuple(segmentation.shape[1:3]) == tuple(shape[1:3]):
        return segmentation
    return tf.image.resize(segmentation, shape[1:3], method="bilinear").numpy()


def segmentation_agreement(reference: dict[str, Any], got: dict[str, Any]) -> dict[str, float]:
    """Max differences of the float outputs (affine scaled, see `_max_scaled_diff`) and the
    share of equal argmax labels.

    Args:
      reference: Keras outputs: `segmentation` [N, h, w, K+1], `shift`, `affine`.
      got: The exported model's outputs, same keys (`segmentation` possibly at another size, which
        the reference is resized to), optionally `parts` (argmax labels).

    Returns:
      `segmentation_max_diff`, `shift_max_diff`, `affine_max_scaled_diff`, `label_agreement` and,
      when `got` has `parts`, `parts_consistent` (share of `parts` equal to the argmax of its segmentation).
    """
    ref_seg = _at_size(np.asarray(reference["segmentation"]), np.shape(got["segmentation"]))
    got_seg = np.asarray(got["segmentation"])
    same = np.argmax(ref_seg, axis=-1) == np.argmax(got_seg, axis=-1)
    out = {
        "segmentation_max_diff": _max_diff(ref_seg, got_seg),
        "shift_max_diff": _max_diff(reference["shift"], got["shift"]),
        "affine_max_scaled_diff": _max_scaled_diff(reference["affine"], got["affine"]),
        "label_agreement": float(np.mean(same)),
    }
    if "parts" in got:
        out["parts_consistent"] = float(np.mean(np.asarray(got["parts"]) == np.argmax(got_seg, axis=-1)))
    return out


def _float_check(artifact: str, numbers: dict[str, float], threshold: float) -> Check:
    keys = ("segmentation_max_diff", "shift_max_diff", "affine_max_scaled_diff")
    worst = max(numbers[key] for key in keys)
    metric = "max |diff| of segmentation, shift, affine (scaled)"
    return Check(artifact, metric, worst, threshold, details=numbers)


def part_masks(num_parts: int, count: int) -> np.ndarray:
    """One part selection per pair, cycling through single parts and every other part.

    Args:
      num_parts: Channels of a selection, background included (K+1).
      count: Number of pairs.

    Returns:
      float32 [count, num_parts] 0/1 masks: even rows select every other part (1, 3, ...), odd rows one part.
    """
    masks = np.zeros((count, num_parts), np.float32)
    for i in range(count):
        if i % 2:
            masks[i, 1 + (i // 2) % (num_parts - 1)] = 1.0
        else:
            masks[i, 1::2] = 1.0
    return masks


def keras_segment(model: LoadedModel, frames: np.ndarray) -> dict[str, np.ndarray]:
    """The Keras reference, one image at a time (batch statistics play no part at inference).

    Args:
      model: The loaded model whose segmenter is the reference.
      frames: [N, H, W, 3] float32 images in [0, 1].

    Returns:
      The segmenter's outputs (`graphs.segment`) as numpy arrays concatenated over N.
    """
    outs = [graphs.segment(model.segmenter, frames[i : i + 1]) for i in range(len(frames))]
    return {key: np.concatenate([o[key].numpy() for o in outs]) for key in outs[0]}


def keras_part_swap(model: LoadedModel, pairs: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """The Keras part-swap reference, one pair at a time.

    Args:
      model: The loaded model (segmenter and generator).
      pairs: [N, 2, H, W, 3] float32 (source, target) images in [0, 1].
      masks: [N, K+1] part selections (`part_masks`).

    Returns:
      The outputs of `graphs.part_swap` as numpy arrays concatenated over N.
    """
    outs = [
        graphs.part_swap(model.segmenter, model.generator, p[0:1], p[1:2], m[None])
        for p, m in zip(pairs, masks, strict=True)
    ]
    return {key: np.concatenate([o[key].numpy() for o in outs]) for key in outs[0]}


def _png(frame: np.ndarray) -> bytes:
    return tf.io.encode_png(tf.constant(frame)).numpy()


def verify_saved_model(
    path: str, model: LoadedModel, pairs: np.ndarray, thresholds: Thresholds = Thresholds()
) -> list[Check]:
    """Every signature of the exported SavedModel at `path` against Keras.

    Args:
      path: The SavedModel folder.
      model: The Keras model it was exported from.
      pairs: [N, 2, H, W, 3] float32 (source, target) images in [0, 1] at the model's frame size.
      thresholds: Pass marks.

    Returns:
      One `Check` per signature (see `verify_saved_model_signatures`).
    """
    return verify_saved_model_signatures(tf.saved_model.load(path), model, pairs, thresholds)


def verify_saved_model_signatures(
    loaded: Any, model: LoadedModel, pairs: np.ndarray, thresholds: Thresholds = Thresholds()
) -> list[Check]:
    """Every signature of a loaded SavedModel against Keras, on pairs at the model's frame size.

    Args:
      loaded: The result of `tf.saved_model.load`.
      model: The Keras model it was exported from.
      pairs: [N, 2, H, W, 3] float32 (source, target) images in [0, 1]; targets feed the segmenter signatures.
      thresholds: Pass marks.

    Returns:
      Checks of `serving_default`, `serve_uint8`, `serve_bytes` and, if exported, `part_swap`.
    """
    signatures = loaded.signatures
    frames = pairs[:, 1]
    checks = []
    reference = keras_segment(model, frames)
    got = signatures["serving_default"](images=tf.constant(frames))
    checks.append(
        _float_check(
            "saved_model:serving_default", segmentation_agreement(reference, got), thresholds.float32_max_diff
        )
    )

    pixels = np.round(frames * 255.0).astype(np.uint8)
    reference = keras_segment(model, pixels.astype(np.float32) / 255.0)
    got = signatures["serve_uint8"](images=tf.constant(pixels))
    checks.append(
        _float_check(
            "saved_model:serve_uint8", segmentation_agreement(reference, got), thresholds.float32_max_diff
        )
    )
    got = signatures["serve_bytes"](images=tf.constant([_png(p) for p in pixels]))
    checks.append(
        _float_check(
            "saved_model:serve_bytes (PNG)",
            segmentation_agreement(reference, got),
            thresholds.float32_max_diff,
        )
    )
    if "part_swap" in signatures:
        masks = part_masks(model.num_segments + 1, len(pairs))
        reference = keras_part_swap(model, pairs, masks)
        got = signatures["part_swap"](
            source=tf.constant(pairs[:, 0]), target=tf.constant(pairs[:, 1]), part_mask=tf.constant(masks)
        )
        image = np.asarray(got["image"])
        ref_image = _at_size(reference["image"], image.shape)
        checks.append(
            Check(
                "saved_model:part_swap",
                "max |diff| of the image",
                _max_diff(ref_image, image),
                thresholds.part_swap_float32_max_diff,
                details={"mean_diff": float(np.mean(np.abs(ref_image - image)))},
            )
        )
    return checks


def verify_tflite_segmenter(
    content: bytes,
    variant: str,
    model: LoadedModel,
    frames: np.ndarray,
    thresholds: Thresholds = Thresholds(),
    num_threads: int = 2,
) -> Check:
    """One segmenter variant against Keras, on `frames` already at the model's fixed size.

    Args:
      content: The `.tflite` flatbuffer.
      variant: "float32", "float16", "dynamic_int8" or "int8".
      model: The Keras model it was converted from.
      frames: [N, H, W, 3] float32 images in [0, 1].
      thresholds: Pass marks.
      num_threads: Threads of the TFLite interpreter.

    Returns:
      For float32 the max-difference check, otherwise the label-agreement check.
    """
    runner = LiteRunner(content, SEGMENT_SIGNATURE, num_threads)
    outs = [runner(image=frames[i : i + 1]) for i in range(len(frames))]
    got = {key: np.concatenate([o[key] for o in outs]) for key in outs[0]}
    numbers = segmentation_agreement(keras_segment(model, frames), got)
    artifact = f"tflite:segmenter_{variant}"
    if variant == "float32":
        return _float_check(artifact, numbers, thresholds.float32_max_diff)
    return Check(
        artifact,
        "share of pixels with the same part label",
        numbers["label_agreement"],
        thresholds.label_agreement(variant),
        higher_is_better=True,
        details=numbers,
    )


def verify_tflite_part_swap(
    content: bytes,
    variant: str,
    model: LoadedModel,
    pairs: np.ndarray,
    thresholds: Thresholds = Thresholds(),
    num_threads: int = 2,
) -> Check:
    """The part-swap model against Keras on `pairs` [N, 2, H, W, 3] at its fixed size.

    Args:
      content: The `.tflite` flatbuffer.
      variant: "float32", or a quantised variant (judged on the mean difference).
      model: The Keras model it was converted from.
      pairs: [N, 2, H, W, 3] float32 (source, target) images in [0, 1].
      thresholds: Pass marks.
      num_threads: Threads of the TFLite interpreter.

    Returns:
      The max |diff| check for float32, otherwise the mean |diff| check, of the swapped images.
    """
    runner = LiteRunner(content, PART_SWAP_SIGNATURE, num_threads)
    masks = part_masks(model.num_segments + 1, len(pairs))
    images = np.concatenate(
        [
            runner(source=p[0:1], target=p[1:2], part_mask=m[None])["image"]
            for p, m in zip(pairs, masks, strict=True)
        ]
    )
    reference = keras_part_swap(model, pairs, masks)["image"]
    numbers = {
        "max_diff": _max_diff(reference, images),
        "mean_diff": float(np.mean(np.abs(reference - images))),
    }
    artifact = f"tflite:part_swap_{variant}"
    if variant == "float32":
        return Check(
            artifact,
            "max |diff| of the image",
            numbers["max_diff"],
            thresholds.part_swap_float32_max_diff,
            details=numbers,
        )
    return Check(
        artifact,
        "mean |diff| of the image",
        numbers["mean_diff"],
        thresholds.part_swap_float16_mean_diff,
        details=numbers,
    )


def at_size(pairs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pairs [N, 2, H, W, 3] resized to a TFLite model's fixed size.

    Args:
      pairs: [N, 2, H, W, 3] images.
      size: (height, width) of the TFLite model.

    Returns:
      [N, 2, height, width, 3] images.
    """
    flat = samples.resize(pairs.reshape(-1, *pairs.shape[2:]), size)
    return flat.reshape(len(pairs), 2, *size, 3)


def format_table(checks: Sequence[Check]) -> str:
    """A plain-text table: one row per artifact with its metric, value, threshold and verdict.

    Args:
      checks: The checks to list.

    Returns:
      The table, one line per row, each ending in a newline.
    """
    rows = [("artifact", "metric", "value", "threshold", "ok")]
    for c in checks:
        bound = (">= " if c.higher_is_better else "<= ") + f"{c.threshold:.3g}"
        value = f"{100 * c.value:.2f}%" if c.higher_is_better else f"{c.value:.3g}"
        rows.append((c.artifact, c.metric, value, bound, "yes" if c.passed else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = io.StringIO()
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return out.getvalue()
