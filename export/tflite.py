"""TFLite (LiteRT) models of the segmenter and of the part-swap generator, builtin ops only.

The segmenter comes in four variants: `float32`; `float16` (float16 weights, float
compute where the runtime wants); `dynamic_int8` (int8 weights, activations quantised on
the fly); `int8` (weights and activations int8, calibrated on a representative data set;
float32 input and output, so every variant has the same interface). Its signature
`segment` takes `image` float32 [1, H, W, 3] in [0, 1] at a fixed size and returns
`segmentation` [1, h, w, K+1], `shift` [1, K, 2] and `affine` [1, K, 2, 2]; the graph holds
no GATHER_ND and no tensor above rank 4, so the GPU and NNAPI delegates can take it whole.
The part-swap model (`part_swap`: `source`, `target`, `part_mask` [1, K+1] -> `image`,
`blend_mask`) is float32 or float16 only: its warp samples at computed coordinates, which
int8 would round to a few pixels.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from coseg_tf import graphs
from coseg_tf.inference import PART_SWAP_SIGNATURE, SEGMENT_SIGNATURE
from coseg_tf.model_files import LoadedModel

SEGMENTER_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
PART_SWAP_VARIANTS = ("float32", "float16")
# Ops that the segmenter's graph must not contain (GPU/NNAPI delegates reject them).
FORBIDDEN_SEGMENTER_OPS = ("GATHER_ND",)
MAX_SEGMENTER_RANK = 4


class ConversionError(RuntimeError):
    """A conversion that failed or produced a model outside the builtin/delegate constraints."""


def _segmenter_fn(model: LoadedModel) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    def segment(image: tf.Tensor) -> dict[str, tf.Tensor]:
        out = model.segmenter(image, training=False)
        return {key: tf.cast(out[key], tf.float32) for key in ("segmentation", "shift", "affine")}

    return segment


def segmenter_specs(size: tuple[int, int]) -> list[tf.TensorSpec]:
    """The segmenter's TFLite input: one `image`.

    Args:
      size: (height, width) of the fixed input.

    Returns:
      [TensorSpec [1, height, width, 3] float32 named "image"].
    """
    return [tf.TensorSpec([1, size[0], size[1], 3], tf.float32, name="image")]


def part_swap_specs(model: LoadedModel, size: tuple[int, int]) -> list[tf.TensorSpec]:
    """The part-swap model's TFLite inputs: `source`, `target` and `part_mask`.

    Args:
      model: The model (its `num_segments` sizes the mask).
      size: (height, width) of the fixed inputs.

    Returns:
      TensorSpecs [1, height, width, 3] float32 for source and target, [1, K+1] float32 for the mask.
    """
    return [
        tf.TensorSpec([1, size[0], size[1], 3], tf.float32, name="source"),
        tf.TensorSpec([1, size[0], size[1], 3], tf.float32, name="target"),
        tf.TensorSpec([1, model.num_segments + 1], tf.float32, name="part_mask"),
    ]


def frozen_function(
    fn: Callable[..., Any], input_signature: Sequence[tf.TensorSpec]
) -> tf.types.experimental.ConcreteFunction:
    """`fn` traced at `input_signature` with every variable folded into a constant.

    The TFLite converter leaves Keras 3 variables as VAR_HANDLE/READ_VARIABLE ops (they
    block batch-norm folding and most delegates); freezing first gives plain constant
    weights. The outputs keep their names (freezing alone would number them).

    Args:
      fn: The function to trace.
      input_signature: Its inputs.

    Returns:
      A concrete function with constant weights and `fn`'s output structure.
    """
    concrete = tf.function(fn, input_signature=input_signature).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    @tf.function(input_signature=input_signature)
    def named(*args: tf.Tensor) -> Any:
        return tf.nest.pack_sequence_as(structure, frozen(*args))

    return named.get_concrete_function()


def _convert(
    fn: Callable[..., Any],
    specs: Sequence[tf.TensorSpec],
    signature: str,
    configure: Callable[[tf.lite.TFLiteConverter], None],
) -> bytes:
    """Freezes `fn`, stores it as a one-signature SavedModel and converts that (named signature)."""
    frozen = frozen_function(fn, specs)
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "frozen")
        tf.saved_model.save(tf.Module(), path, signatures={signature: frozen})
        converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[signature])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        configure(converter)
        try:
            return converter.convert()
        except Exception as e:  # the converter raises several unrelated types
            raise ConversionError(f"TFLite conversion of `{signature}` failed: {e}") from e


def _configure(variant: str, representative: Iterable[np.ndarray] | None) -> Callable[[Any], None]:
    def configure(converter: tf.lite.TFLiteConverter) -> None:
        if variant == "float32":
            return
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif variant == "int8":
            if representative is None:
                raise ConversionError("int8 needs a representative data set (calibration images)")
            samples = list(representative)
            if not samples:
                raise ConversionError("int8 needs a representative data set; got no images")
            converter.representative_dataset = lambda: ([np.asarray(s, np.float32)] for s in samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        elif variant != "dynamic_int8":
            raise ValueError(f"unknown TFLite variant {variant!r}")

    return configure


def convert_segmenter(
    model: LoadedModel,
    variant: str,
    size: tuple[int, int],
    representative: Iterable[np.ndarray] | None = None,
) -> bytes:
    """The segmenter as a TFLite flatbuffer; `representative` yields [1, H, W, 3] float images (int8).

    Args:
      model: The model to convert.
      variant: One of `SEGMENTER_VARIANTS`.
      size: (height, width) of the fixed input.
      representative: The calibration images for "int8"; not used by the other variants.

    Returns:
      The `.tflite` flatbuffer.

    Raises:
      ValueError: `variant` is unknown.
      ConversionError: The converted graph has ops or tensors the delegates reject (`delegate_problems`).
    """
    if variant not in SEGMENTER_VARIANTS:
        raise ValueError(f"segmenter variant must be one of {SEGMENTER_VARIANTS}, got {variant!r}")
    content = _convert(
        _segmenter_fn(model), segmenter_specs(size), SEGMENT_SIGNATURE, _configure(variant, representative)
    )
    problems = delegate_problems(inspect_model(content))
    if problems:
        raise ConversionError(f"segmenter {variant}: {'; '.join(problems)}")
    return content


def convert_part_swap(model: LoadedModel, variant: str, size: tuple[int, int]) -> bytes:
    """The part-swap model (both segmentations, warp, blend, decoder) as a TFLite flatbuffer.

    Args:
      model: The model to convert (with a generator).
      variant: One of `PART_SWAP_VARIANTS`.
      size: (height, width) of the fixed inputs.

    Returns:
      The `.tflite` flatbuffer.

    Raises:
      ValueError: `variant` is unknown.
      ConversionError: `model` has no generator, or the graph has non-builtin or rejected ops (high-rank
        tensors are allowed here).
    """
    if variant not in PART_SWAP_VARIANTS:
        raise ValueError(f"part-swap variant must be one of {PART_SWAP_VARIANTS}, got {variant!r}")
    if model.generator is None:
        raise ConversionError(f"{model.source} has no generator: part swap cannot be exported")

    def swap(source: tf.Tensor, target: tf.Tensor, part_mask: tf.Tensor) -> dict[str, tf.Tensor]:
        return graphs.part_swap(model.segmenter, model.generator, source, target, part_mask)

    content = _convert(swap, part_swap_specs(model, size), PART_SWAP_SIGNATURE, _configure(variant, None))
    problems = [p for p in delegate_problems(inspect_model(content)) if "rank" not in p]
    if problems:
        raise ConversionError(f"part swap {variant}: {'; '.join(problems)}")
    return content


@dataclasses.dataclass
class ModelReport:
    """The op names and tensor ranks of a TFLite model, read through the LiteRT interpreter."""

    ops: list[str]
    max_rank: int
    high_rank_tensors: list[tuple[str, tuple[int, ...]]]
    signatures: dict[str, Any]


def inspect_model(content: bytes) -> ModelReport:
    """Lists the model's own ops (no delegate applied, so none are hidden in DELEGATE nodes).

    Args:
      content: The `.tflite` flatbuffer.

    Returns:
      Its ops, maximum tensor rank, tensors above `MAX_SEGMENTER_RANK` and signatures.
    """
    interpreter = Interpreter(
        model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    tensors = [(t["name"], tuple(int(d) for d in t["shape"])) for t in interpreter.get_tensor_details()]
    high = [(name, shape) for name, shape in tensors if len(shape) > MAX_SEGMENTER_RANK]
    return ModelReport(
        ops=ops,
        max_rank=max((len(shape) for _, shape in tensors), default=0),
        high_rank_tensors=high,
        signatures=interpreter.get_signature_list(),
    )


def delegate_problems(report: ModelReport) -> list[str]:
    """Why a graph would not run on builtins alone or not fit the GPU/NNAPI delegates.

    Args:
      report: The model's `inspect_model` report.

    Returns:
      One message per problem (non-builtin ops, forbidden ops, high-rank tensors); empty if none.
    """
    problems = []
    flex = [op for op in report.ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    if flex:
        problems.append(f"non-builtin ops {flex}")
    forbidden = [op for op in report.ops if op in FORBIDDEN_SEGMENTER_OPS]
    if forbidden:
        problems.append(f"ops the delegates reject {forbidden}")
    if report.high_rank_tensors:
        problems.append(
            f"{len(report.high_rank_tensors)} tensors above rank {MAX_SEGMENTER_RANK}, "
            f"e.g. {report.high_rank_tensors[:3]}"
        )
    return problems


def file_name(model_name: str, kind: str, variant: str, size: tuple[int, int]) -> str:
    """E.g. `coseg_segmenter_int8_256x256.tflite`: kind, precision and the fixed input size.

    Args:
      model_name: Prefix, e.g. "coseg".
      kind: "segmenter" or "part_swap".
      variant: The precision variant.
      size: (height, width) of the fixed input.

    Returns:
      The file name.
    """
    return f"{model_name}_{kind}_{variant}_{size[0]}x{size[1]}.tflite"
