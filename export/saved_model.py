"""The SavedModel for TF Serving: `<base>/<model_name>/<version>/` with four signatures.

Signatures (TF signatures take one dtype per input, so each image encoding has its own):

* `serving_default`: `images` float32 [batch, height, width, 3] in [0, 1] (the Keras
  model's own input);
* `serve_uint8`: `images` uint8 [batch, height, width, 3] (0-255 pixels, as decoded);
* `serve_bytes`: `images` string [batch] of encoded JPEG/PNG/GIF/BMP files (TF Serving's
  REST API decodes `{"b64": ...}` into these);
* `part_swap` (when the generator is exported): `source`, `target` float32 images and
  `part_mask` float32 [batch, K+1], the weight of each part (background first) to take
  from the source; returns `image` and `blend_mask`.

Images of any size are resized (bilinear, anti-aliased when shrinking) to the model's frame
size; a non-square input is stretched, as the training frames were. The segmentation
signatures return `segmentation` [batch, h, w, K+1] soft part maps (background first),
`parts` int32 [batch, h, w] labels, `foreground` [batch, h, w], `shift` [batch, K, 2],
`affine` [batch, K, 2, 2] and `input_size` int32 [batch, 2] (height, width of each input).
Exported with `resize_to_input`, the maps (and the part-swap image) are resized back to the
input size (one size per batch); otherwise they are at the model's resolution, h = frame
height * scale_factor. Wrong rank, channel count or value range fail inside the graph with
a message naming the input and the expected layout.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import tensorflow as tf

from coseg_tf import graphs
from coseg_tf.model_files import LoadedModel

SEGMENT_OUTPUTS = ("segmentation", "parts", "foreground", "shift", "affine", "input_size")
# Magic numbers of the formats that tf.io.decode_image reads.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _guard(ok: tf.Tensor, tensor: tf.Tensor, message: str, *data: tf.Tensor) -> tf.Tensor:
    """`tensor` when `ok`, else an InvalidArgumentError whose text starts with `message`.

    The check is a data dependency (a cond whose false branch asserts): every op reading
    the result waits for it. A control dependency is not enough, since Grappler may run ops
    that only have control edges on an assert first, and those fail on a malformed input
    with an obscure message. For the same reason `ok` must be computed with ops that cannot
    fail on any input (see `_padded_shape`).
    """

    def fail() -> tf.Tensor:
        with tf.control_dependencies([tf.debugging.Assert(False, [message, *data])]):
            return tf.identity(tensor)

    return tf.cond(tf.reduce_all(ok), lambda: tf.identity(tensor), fail)


def _padded_shape(tensor: tf.Tensor, rank: int) -> tf.Tensor:
    """The first `rank` dimensions, padded with -1: safe to index whatever the real rank."""
    return tf.concat([tf.shape(tensor), tf.fill([rank], -1)], axis=0)[:rank]


def _checked_images(images: tf.Tensor, name: str, dtype_hint: str) -> tf.Tensor:
    """`images` after checking rank 4, then 3 channels, then a non-empty batch and frame."""
    layout = f"{name} must be a [batch, height, width, 3] {dtype_hint} RGB tensor; got shape"
    raw_shape = tf.shape(images)
    shape = _padded_shape(images, 4)
    images = _guard(tf.equal(tf.rank(images), 4), images, layout, raw_shape)
    images = _guard(tf.equal(shape[3], 3), images, layout, raw_shape)
    images = _guard(shape[0] > 0, images, f"{name}: the batch is empty (no images); got shape", raw_shape)
    images = _guard(shape[1:3] > 0, images, f"{name}: height and width must be > 0; got shape", raw_shape)
    images.set_shape([None, None, None, 3])
    return images


def _unit_range(images: tf.Tensor, name: str) -> tf.Tensor:
    """Float images checked to lie in [0, 1]: 0-255 values sent as floats would otherwise pass."""
    flat = tf.reshape(images, [-1])
    low, high = tf.reduce_min(flat), tf.reduce_max(flat)
    ok = tf.logical_and(low >= 0.0, high <= 1.0)  # False for NaN too
    message = (
        f"float32 {name} must be in [0, 1] (send 0-255 pixels to the serve_uint8 signature); got min and max"
    )
    return _guard(ok, images, message, low, high)


def _resize(images: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Float images to [B, height, width, 3]; exactly the input when it is already that size."""
    shape = tf.shape(images)
    same = tf.logical_and(tf.equal(shape[1], height), tf.equal(shape[2], width))
    out = tf.cond(
        same,
        lambda: tf.identity(images),
        lambda: tf.image.resize(images, (height, width), method="bilinear", antialias=True),
    )
    out.set_shape([None, height, width, 3])
    return tf.clip_by_value(out, 0.0, 1.0)


def _resize_back(maps: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return tf.image.resize(maps, size, method="bilinear")


class _Modules:
    """The Keras modules, kept out of the SavedModel's object graph (a plain object is not tracked)."""

    def __init__(self, segmenter: Any, generator: Any) -> None:
        self.segmenter = segmenter
        self.generator = generator


class ServingModule(tf.Module):
    """The variables and the signature functions of one export.

    The Keras models themselves are not attributes: a SavedModel whose object graph holds
    Keras 3 models loads in Python but not in the C++ loader that TF Serving and
    `saved_model_cli run` use ("Could not find variable ..."). Tracking only the variables,
    as keras.export does, gives a SavedModel both loaders read.
    """

    def __init__(self, model: LoadedModel, *, part_swap: bool, resize_to_input: bool) -> None:
        super().__init__(name="coseg_serving")
        self._modules = _Modules(model.segmenter, model.generator if part_swap else None)
        if part_swap and model.generator is None:
            raise ValueError(f"{model.source} has no generator: part swap cannot be exported")
        self.frame_height, self.frame_width = model.frame_size
        self.num_parts = model.num_segments + 1
        self.resize_to_input = resize_to_input

        self.serving_default = tf.function(
            self._from_float, input_signature=[tf.TensorSpec(None, tf.float32, name="images")]
        )
        self.serve_uint8 = tf.function(
            self._from_uint8, input_signature=[tf.TensorSpec(None, tf.uint8, name="images")]
        )
        self.serve_bytes = tf.function(
            self._from_bytes, input_signature=[tf.TensorSpec(None, tf.string, name="images")]
        )
        if self._modules.generator is not None:
            self.part_swap = tf.function(
                self._part_swap,
                input_signature=[
                    tf.TensorSpec(None, tf.float32, name="source"),
                    tf.TensorSpec(None, tf.float32, name="target"),
                    tf.TensorSpec(None, tf.float32, name="part_mask"),
                ],
            )

    def trace(self) -> None:
        """Traces every signature and tracks the tf.Variables they read (what the loaders restore)."""
        seen: dict[int, tf.Variable] = {}
        for function in self.signatures().values():
            for variable in function.get_concrete_function().variables:
                seen.setdefault(id(variable), variable)
        self.model_variables = list(seen.values())

    def signatures(self) -> dict[str, Any]:
        """The signatures to export: the three segmentation ones and, with a generator, `part_swap`.

        Returns:
          {signature name: tf.function}.
        """
        out = {
            "serving_default": self.serving_default,
            "serve_uint8": self.serve_uint8,
            "serve_bytes": self.serve_bytes,
        }
        if self._modules.generator is not None:
            out["part_swap"] = self.part_swap
        return out

    def _segment(self, frames: tf.Tensor, input_size: tf.Tensor) -> dict[str, tf.Tensor]:
        out = graphs.segment(self._modules.segmenter, frames)
        if self.resize_to_input:
            segmentation = _resize_back(out["segmentation"], input_size[0])
            out.update(graphs.with_labels({**out, "segmentation": segmentation}))
        out["input_size"] = input_size
        return out

    def _float_frames(self, images: tf.Tensor, name: str) -> tuple[tf.Tensor, tf.Tensor]:
        images = _unit_range(_checked_images(images, name, "float32 (values in [0, 1])"), name)
        return self._frames(images)

    def _frames(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        shape = tf.shape(images)
        input_size = tf.tile(shape[tf.newaxis, 1:3], [shape[0], 1])
        return _resize(images, self.frame_height, self.frame_width), input_size

    def _from_float(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._segment(*self._float_frames(images, "images"))

    def _from_uint8(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        images = _checked_images(images, "images", "uint8 (values 0-255)")
        return self._segment(*self._frames(tf.cast(images, tf.float32) / 255.0))

    def _from_bytes(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        images = _guard(
            tf.equal(tf.rank(images), 1),
            images,
            "images must be a [batch] vector of encoded JPEG/PNG images (strings); got shape",
            tf.shape(images),
        )
        images = _guard(
            tf.size(images) > 0, images, "images: the batch is empty (no images); got shape", tf.shape(images)
        )
        images.set_shape([None])
        height, width = self.frame_height, self.frame_width

        def decode(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            known = tf.reduce_any(tf.stack([tf.equal(tf.strings.substr(data, 0, len(m)), m) for m in _MAGIC]))
            data = _guard(
                known,
                data,
                "an element of images is not a JPEG, PNG, GIF or BMP file; its first bytes are",
                tf.strings.substr(data, 0, 8),
            )
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            size = tf.shape(image)[:2]
            frame = _resize(tf.cast(image, tf.float32)[tf.newaxis] / 255.0, height, width)[0]
            return frame, size

        frames, sizes = tf.map_fn(
            decode,
            images,
            fn_output_signature=(
                tf.TensorSpec([height, width, 3], tf.float32),
                tf.TensorSpec([2], tf.int32),
            ),
        )
        if self.resize_to_input:
            sizes = _guard(
                tf.reduce_all(tf.equal(sizes, sizes[:1])),
                sizes,
                "this model resizes its outputs to the input size: all images of a request must "
                "have the same size; got sizes",
                sizes,
            )
        return self._segment(frames, sizes)

    def _part_swap(self, source: tf.Tensor, target: tf.Tensor, part_mask: tf.Tensor) -> dict[str, tf.Tensor]:
        source, _ = self._float_frames(source, "source")
        target_frames, target_size = self._float_frames(target, "target")
        layout = f"part_mask must be a [batch, {self.num_parts}] float32 tensor (K+1 parts, background first)"
        raw_shape = tf.shape(part_mask)
        mask_shape = _padded_shape(part_mask, 2)
        part_mask = _guard(tf.equal(tf.rank(part_mask), 2), part_mask, f"{layout}; got shape", raw_shape)
        columns_ok = tf.equal(mask_shape[1], self.num_parts)
        part_mask = _guard(columns_ok, part_mask, f"{layout}; got shape", raw_shape)
        batch_sizes = tf.stack([tf.shape(source)[0], tf.shape(target_frames)[0], mask_shape[0]])
        part_mask = _guard(
            tf.equal(batch_sizes, batch_sizes[0]),
            part_mask,
            "source, target and part_mask must have the same batch size; got",
            batch_sizes,
        )
        flat = tf.reshape(part_mask, [-1])
        in_range = tf.logical_and(tf.reduce_min(flat) >= 0.0, tf.reduce_max(flat) <= 1.0)
        part_mask = _guard(in_range, part_mask, "part_mask values must be in [0, 1]")
        part_mask.set_shape([None, self.num_parts])
        out = graphs.part_swap(
            self._modules.segmenter, self._modules.generator, source, target_frames, part_mask
        )
        if self.resize_to_input:
            out["image"] = tf.clip_by_value(_resize_back(out["image"], target_size[0]), 0.0, 1.0)
            out["blend_mask"] = _resize_back(out["blend_mask"][..., tf.newaxis], target_size[0])[..., 0]
        return out


def next_version(model_base: str) -> int:
    """One more than the largest numeric version folder (TF Serving serves the largest).

    Args:
      model_base: The model's folder `<base_dir>/<model_name>` (local or cloud).

    Returns:
      The next version number; 1 when the folder does not exist or has no version.
    """
    if not tf.io.gfile.isdir(model_base):
        return 1
    versions = [int(n.rstrip("/")) for n in tf.io.gfile.listdir(model_base) if re.fullmatch(r"\d+/?", n)]
    return max(versions, default=0) + 1


def export_saved_model(
    model: LoadedModel,
    base_dir: str,
    model_name: str,
    version: int | None = None,
    *,
    part_swap: bool = True,
    resize_to_input: bool = False,
    overwrite: bool = False,
) -> str:
    """Writes `<base_dir>/<model_name>/<version>/` and returns its path.

    The version folder is written under a temporary name and renamed at the end, so a TF
    Serving instance watching the base never loads a half-written version.

    Args:
      model: The model to export.
      base_dir: The TF Serving base folder.
      model_name: The model's folder name under `base_dir`.
      version: The version number, or None for `next_version`.
      part_swap: Whether to export the `part_swap` signature.
      resize_to_input: Whether outputs are resized back to the input size.
      overwrite: Whether to replace an existing version folder.

    Returns:
      The version folder's path.

    Raises:
      ValueError: `version` is negative.
      FileExistsError: The version folder exists and `overwrite` is False.
    """
    model_base = os.path.join(base_dir, model_name)
    version = next_version(model_base) if version is None else int(version)
    if version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version}")
    path = os.path.join(model_base, str(version))
    if tf.io.gfile.exists(path):
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass another --version or --overwrite")
        tf.io.gfile.rmtree(path)
    staging = os.path.join(model_base, f".staging-{version}")
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    tf.io.gfile.makedirs(model_base)
    module = ServingModule(model, part_swap=part_swap, resize_to_input=resize_to_input)
    module.trace()
    tf.saved_model.save(module, staging, signatures=module.signatures())
    if os.path.isdir(staging):
        shutil.move(staging, path)
    else:
        tf.io.gfile.rename(staging, path)
    return path
