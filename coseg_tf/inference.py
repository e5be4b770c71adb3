"""Using a trained model from Python: segment images and swap parts, whatever file holds the model.

    from coseg_tf.inference import load_segmenter, PartSwapper

    segmenter = load_segmenter("runs/demo/model")          # run dir, .keras, checkpoint,
    result = segmenter.segment(frames)                      # .pth.tar (+config), SavedModel, .tflite
    result.labels, result.soft, result.keypoints

    swapper = PartSwapper(segmenter)                        # Keras-backed or a SavedModel with part_swap
    swapped = swapper.swap(source_image, target_frames, parts=[1, 3])

Every backend is fed the same frames: inputs are converted to float [0, 1] and brought to
the model's frame size here (uint8 through the data pipeline's own resize,
`video_io.resize_frames`), so a checkpoint, its SavedModel and its float32 TFLite file see
identical pixels and give the same labels. The model files are read by
`coseg_tf.model_files`, the computations are `coseg_tf.graphs`' (the ones the exported
artifacts trace), so there is one definition of each.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from coseg_tf import graphs, model_files
from coseg_tf.data import video_io
from coseg_tf.errors import CosegError
from coseg_tf.model_files import LoadedModel, ModelLoadError, load_model

CROPS = ("none", "center")
# The signature names of the TFLite models that coseg-export writes.
SEGMENT_SIGNATURE = "segment"
PART_SWAP_SIGNATURE = "part_swap"


class InputError(CosegError):
    """Images, frames, part ids or options that the model cannot be run on."""


class ModelMismatchError(ModelLoadError):
    """A model file and a config that describe different models (e.g. another number of parts)."""


# ----------------------------------------------------------------------------- inputs


def as_images(images: Any, what: str = "images") -> np.ndarray:
    """Checks images and gives them a batch axis.

    Float input must already be in [0, 1]: 0-255 values in a float array would otherwise
    saturate silently.

    Args:
        images: [N, H, W, 3] or one [H, W, 3] RGB image, uint8 or float in [0, 1].
        what: how error messages name the images.

    Returns:
        [N, H, W, 3], uint8 as given or float32.

    Raises:
        InputError: another shape, an empty array, another dtype or floats outside [0, 1].
    """
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[np.newaxis]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise InputError(f"{what} must be [N, H, W, 3] or [H, W, 3] RGB; got shape {array.shape}")
    if min(array.shape[:3]) == 0:
        raise InputError(f"{what} must be non-empty; got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{what} must be uint8 (0-255) or float (0-1); got {array.dtype}")
    array = array.astype(np.float32, copy=False)
    low, high = float(np.min(array)), float(np.max(array))
    if not (np.isfinite(low) and np.isfinite(high) and low >= 0.0 and high <= 1.0):
        raise InputError(
            f"float {what} must be in [0, 1] (pass uint8 for 0-255 pixels); got min {low}, max {high}"
        )
    return array


def crop_box(height: int, width: int, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest centred window with the frame's aspect ratio.

    Args:
      height: Height of the image to crop.
      width: Width of the image to crop.
      frame_size: (height, width) whose aspect ratio the window takes.

    Returns:
      (top, left, height, width) of the window in pixels.
    """
    target = frame_size[1] / frame_size[0]
    if width / height > target:
        crop_width = max(1, int(round(height * target)))
        return 0, (width - crop_width) // 2, height, crop_width
    crop_height = max(1, int(round(width / target)))
    return (height - crop_height) // 2, 0, crop_height, width


def fit_frames(images: np.ndarray, frame_size: tuple[int, int] | None, crop: str = "none") -> np.ndarray:
    """Frames brought to the model's frame size, as every backend is fed.

    uint8 frames go through the data pipeline's resize (area when shrinking), float ones
    through the same interpolation rule in float.

    Args:
        images: frames from `as_images`.
        frame_size: the model's (height, width); None keeps the frames' size.
        crop: "none" stretches the whole frame (as the training frames and the SavedModel
            do); "center" first cuts the centred window of the model's aspect ratio.

    Returns:
        float32 [N, h, w, 3] in [0, 1].

    Raises:
        InputError: an unknown `crop`.
    """
    if crop not in CROPS:
        raise InputError(f"crop must be one of {CROPS}, got {crop!r}")
    if frame_size is not None and crop == "center":
        top, left, height, width = crop_box(images.shape[1], images.shape[2], frame_size)
        images = images[:, top : top + height, left : left + width]
    if images.dtype == np.uint8:
        return video_io.to_float(video_io.resize_frames(np.ascontiguousarray(images), frame_size))
    if frame_size is None or tuple(images.shape[1:3]) == tuple(frame_size):
        return np.ascontiguousarray(images, np.float32)
    import cv2

    height, width = frame_size
    shrink = images.shape[1] * images.shape[2] > height * width
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (width, height), interpolation=interp) for f in images]).clip(0.0, 1.0)


def shift_to_pixels(shift: np.ndarray, map_size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """Anchor keypoints from the model's corner-aligned [-1, 1] map coordinates to input pixels.

    The shift is a soft-argmax over the map grid (x = -1 is the centre of the map's first
    column); that column covers input pixels [0, W_in / w), so map column u has its centre
    at input x = (u + 0.5) * W_in / w - 0.5.

    Args:
      shift: [..., 2] anchors (x, y) in [-1, 1] map coordinates.
      map_size: (h, w) of the segmentation maps.
      input_size: (height, width) of the input images.

    Returns:
      float32 [..., 2] anchors (x, y) in input pixels.
    """
    shift = np.asarray(shift, np.float32)
    (h, w), (height, width) = map_size, input_size
    u = (shift[..., 0] + 1.0) / 2.0 * (w - 1)
    v = (shift[..., 1] + 1.0) / 2.0 * (h - 1)
    return np.stack([(u + 0.5) * width / w - 0.5, (v + 0.5) * height / h - 0.5], axis=-1)


# ----------------------------------------------------------------------------- segmentation


@dataclasses.dataclass
class Segmentation:
    """What `Segmenter.segment` returns for N images.

    `soft` float32 [N, h, w, K+1] part probabilities at the model's map resolution (channel
    0 = background); `labels` int32 [N, h, w] their argmax; `keypoints` float32 [N, K, 2]
    each part's anchor (x, y) in pixels of the input images; `shift` the same anchors as the
    model gives them ([-1, 1] over the map); `frame_size` the model's (height, width) input
    size (None for a SavedModel that resizes by itself and does not say); `input_size` the
    (height, width) of the images given.
    """

    soft: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray
    shift: np.ndarray
    num_segments: int
    frame_size: tuple[int, int] | None
    input_size: tuple[int, int]

    def soft_at(self, height: int, width: int) -> np.ndarray:
        """The soft maps bilinearly resized to (height, width), e.g. the input size.

        Args:
          height: Output height.
          width: Output width.

        Returns:
          float32 [N, height, width, K+1] maps (`soft` itself when already that size).
        """
        import cv2

        if self.soft.shape[1:3] == (height, width):
            return self.soft
        return np.stack(
            [
                cv2.resize(s, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
                for s in self.soft
            ]
        )

    def labels_at(self, height: int, width: int) -> np.ndarray:
        """Labels (argmax of the resized soft maps) at (height, width), uint8 for PNGs when K < 256.

        Args:
          height: Output height.
          width: Output width.

        Returns:
          [N, height, width] labels, uint8 when K + 1 <= 256, else int32.
        """
        labels = self.soft_at(height, width).argmax(-1)
        return labels.astype(np.uint8 if self.num_segments < 256 else np.int32)


class Segmenter:
    """One interface over the model files; subclasses only run the model on prepared frames."""

    kind: str
    num_segments: int
    frame_size: tuple[int, int] | None
    source: str
    batch_size: int = 16
    fixed_batch: int | None = None  # a model whose signature takes exactly this many images

    def set_batch_size(self, batch_size: int) -> None:
        """Images per forward pass (`--batch_size`); a fixed-batch model (TFLite) keeps its own.

        Args:
          batch_size: Images per forward pass.

        Raises:
          InputError: `batch_size` is below 1.
        """
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = self.fixed_batch or batch_size

    def segment(self, images: Any) -> Segmentation:
        """Segments images.

        Args:
            images: uint8 or float [0, 1] RGB images [N, H, W, 3], or one [H, W, 3] image;
                any size (they are resized to the model's frame size here).

        Returns:
            The part maps, labels and keypoints of each image.

        Raises:
            InputError: images `as_images` refuses.
        """
        array = as_images(images)
        input_size = (int(array.shape[1]), int(array.shape[2]))
        frames = fit_frames(array, self.frame_size)
        soft, shift = [], []
        for start in range(0, len(frames), self.batch_size):
            s, k = self._run(frames[start : start + self.batch_size])
            soft.append(s)
            shift.append(k)
        soft_maps, shifts = np.concatenate(soft), np.concatenate(shift)
        return Segmentation(
            soft=soft_maps,
            labels=soft_maps.argmax(-1).astype(np.int32),
            keypoints=shift_to_pixels(shifts, soft_maps.shape[1:3], input_size),
            shift=shifts,
            num_segments=self.num_segments,
            frame_size=self.frame_size,
            input_size=input_size,
        )

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Soft maps [B, h, w, K+1] and shifts [B, K, 2] of float32 frames at the frame size."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a report (e.g. coseg-eval's metrics.json) records about the model."""
        return {
            "kind": self.kind,
            "source": self.source,
            "num_segments": self.num_segments,
            "frame_size": None if self.frame_size is None else list(self.frame_size),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source}, K={self.num_segments}, frame_size={self.frame_size})"


class KerasSegmenter(Segmenter):
    """A model read by `model_files.load_model` (run dir, .keras, checkpoint, original weights)."""

    kind = "keras"

    def __init__(self, model: LoadedModel) -> None:
        import tensorflow as tf

        self.model = model
        self.num_segments = model.num_segments
        self.frame_size = model.frame_size
        self.source = model.source
        segmenter = model.segmenter
        spec = tf.TensorSpec([None, *self.frame_size, 3], tf.float32)
        self._segment = tf.function(lambda images: graphs.segment(segmenter, images), input_signature=[spec])

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._segment(frames)
        return out["segmentation"].numpy(), out["shift"].numpy()

    def describe(self) -> dict[str, Any]:
        """What a report records about the model, with the segmenter's `scale_factor`.

        Returns:
          `Segmenter.describe`'s dict plus `scale_factor`.
        """
        return {**super().describe(), "scale_factor": float(self.model.segmenter.scale_factor)}


class SavedModelSegmenter(Segmenter):
    """An exported SavedModel version folder, run through its `serving_default` signature.

    Its graph resizes any input to the model's frame size; when that size is known (from the
    `part_swap` signature's output, or the config) frames are resized here first, as for the
    other backends, and the graph's resize is then the identity.
    """

    kind = "saved_model"

    def __init__(self, path: str, config: dict[str, Any] | None = None) -> None:
        import tensorflow as tf

        self.source = f"saved_model:{path}"
        self.saved = tf.saved_model.load(path)
        if "serving_default" not in self.saved.signatures:
            raise ModelLoadError(f"{path}: no serving_default signature (not written by coseg-export?)")
        self._signature = self.saved.signatures["serving_default"]
        outputs = self._signature.structured_outputs
        self.num_segments = int(outputs["segmentation"].shape[-1]) - 1
        _check_num_segments(self.num_segments, config, f"SavedModel {path}")
        self.part_swap_signature = self.saved.signatures.get("part_swap")
        self.frame_size = None
        if self.part_swap_signature is not None:
            shape = self.part_swap_signature.structured_outputs["image"].shape
            if shape[1] is not None and shape[2] is not None:
                self.frame_size = (int(shape[1]), int(shape[2]))
        if self.frame_size is None and config is not None:
            frame_shape = config["dataset_params"]["frame_shape"]
            self.frame_size = (int(frame_shape[0]), int(frame_shape[1]))

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._signature(images=frames)
        return out["segmentation"].numpy(), out["shift"].numpy()


class LiteRunner:
    """Runs one signature of a TFLite model with the LiteRT interpreter (XNNPACK on CPU)."""

    def __init__(self, content: bytes, signature: str, num_threads: int = 2) -> None:
        """Loads a model.

        Args:
            content: the `.tflite` flatbuffer.
            signature: the signature to run (e.g. `SEGMENT_SIGNATURE`).
            num_threads: interpreter threads.

        Raises:
            ValueError: `content` is not a TFLite model or has no such signature.
        """
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner(signature)

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self.runner(**inputs).items()}


class TFLiteSegmenter(Segmenter):
    """A `.tflite` segmenter (signature `segment`, fixed input size), one image per call."""

    kind = "tflite"
    batch_size = fixed_batch = 1

    def __init__(self, path: str, config: dict[str, Any] | None = None, num_threads: int = 2) -> None:
        self.source = f"tflite:{path}"
        try:
            with open(path, "rb") as f:
                self._runner = LiteRunner(f.read(), SEGMENT_SIGNATURE, num_threads=num_threads)
        except (OSError, ValueError, RuntimeError) as e:
            raise ModelLoadError(
                f"{path}: not a coseg TFLite segmenter with a `segment` signature ({e})"
            ) from None
        shape = self._runner.runner.get_input_details()["image"]["shape"]
        self.frame_size = (int(shape[1]), int(shape[2]))
        outputs = self._runner.runner.get_output_details()
        self.num_segments = int(outputs["segmentation"]["shape"][-1]) - 1
        _check_num_segments(self.num_segments, config, f"TFLite model {path}")

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._runner(image=frames)
        return out["segmentation"], out["shift"]


# ----------------------------------------------------------------------------- loading


def _config_num_segments(config: dict[str, Any]) -> int:
    return int(config["model_params"]["common_params"]["num_segments"])


def _check_num_segments(found: int, config: dict[str, Any] | None, what: str) -> None:
    if config is not None and found != _config_num_segments(config):
        raise ModelMismatchError(
            f"{what} has K = {found} parts, config says K = {_config_num_segments(config)}; "
            "pass the config the model was trained with (or none)"
        )


def _find_key(node: Any, key: str) -> Any:
    """The first value of `key` in a nested JSON structure (depth first), else None."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for value in node:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def stored_num_segments(path: str) -> int | None:
    """K as recorded in a model file, read without building the model.

    Used to explain a failed load: a config with another K makes the weights not fit, and
    the loaders' own messages name a layer shape rather than the two numbers.

    Args:
        path: a model path (see `model_files.resolve_model_path`).

    Returns:
        K, or None when the file does not say (or cannot be read).
    """
    try:
        found = model_files.resolve_model_path(path, segmenter_alone=True)
        if found.kind == "keras":
            with zipfile.ZipFile(found.path) as archive:
                num_segments = _find_key(json.loads(archive.read("config.json")), "num_segments")
            return None if num_segments is None else int(num_segments)
        if found.kind == "original":
            from coseg_tf import weights

            state = weights.read_original_checkpoint(found.path)
            seg_state, _, _ = weights.split_checkpoint(state, found.path)
            for key in ("segmentation.bias", "semantic_seg.bias"):
                if key in seg_state:
                    return int(np.asarray(seg_state[key]).shape[0]) - 1
            return None
        if found.kind == "checkpoint":
            import tensorflow as tf

            for key, shape in tf.train.list_variables(found.path):
                if re.search(r"segmentation_module\.Sshift\.Sbias|segmenter/shift/bias", key):
                    return int(shape[0])
    except Exception:  # noqa: BLE001 - only a diagnosis; the loader's own error is raised anyway
        return None
    return None


def load_keras_model(path: str, config_path: str | None = None) -> LoadedModel:
    """`model_files.load_model`, with a model/config mismatch of K reported as such.

    Args:
        path: a run folder, `.keras` file, checkpoint or original weights.
        config_path: the run's config (see `model_files.load_model`).

    Returns:
        The loaded modules.

    Raises:
        ModelMismatchError: the file and the config disagree on K.
        ModelLoadError: the model does not load otherwise.
    """
    try:
        return load_model(path, config_path)
    except (ModelLoadError, ValueError) as error:
        if isinstance(error, ModelMismatchError) or config_path is None:
            raise
        from coseg_tf import config as config_lib

        stored = stored_num_segments(path)
        try:
            expected = _config_num_segments(config_lib.load_config(config_path))
        except Exception:  # noqa: BLE001 - a broken config: the loader's error says more
            raise error from None
        if stored is not None and stored != expected:
            raise ModelMismatchError(
                f"{path}: checkpoint has K = {stored} parts, config {config_path} says K = {expected}; "
                "pass the config the model was trained with"
            ) from error
        raise


def load_segmenter(path: str, config: str | None = None) -> Segmenter:
    """A segmenter from any model file we write or read (see the module docstring).

    Args:
        path: what `model_files.resolve_model_path` reads; a run folder means its
            `final/model.keras` (or `model.keras`), else `final/segmenter.keras` (a segmenter
            alone), else its latest checkpoint.
        config: a YAML path. Needed for tf.train checkpoints and original `.pth.tar` files
            (found beside the trainer's run otherwise); for a SavedModel or TFLite file it is
            optional, checked against the model (its K) and used for the frame size when unknown.

    Returns:
        A `KerasSegmenter`, `SavedModelSegmenter` or `TFLiteSegmenter`.

    Raises:
        ModelLoadError: no model at `path`, or one that does not load (`ModelMismatchError`
            when it and the config disagree on K).
    """
    found = model_files.resolve_model_path(path, segmenter_alone=True)
    if found.kind in ("tflite", "saved_model"):
        config_dict = None
        if config is not None:
            from coseg_tf import config as config_lib

            config_dict = config_lib.load_config(config)
        if found.kind == "tflite":
            return TFLiteSegmenter(found.path, config_dict)
        return SavedModelSegmenter(found.path, config_dict)
    return KerasSegmenter(load_keras_model(found.path, config))


# ----------------------------------------------------------------------------- part swap


@dataclasses.dataclass
class SwapResult:
    """`frames` float32 [T, H, W, 3] (the model's frame size) with the parts swapped; `masks`
    float32 [T, h, w] the blend masks (1 = features from the source); `targets` and `source`
    the frames as the model saw them (cropped/resized), for side-by-side pictures."""

    frames: np.ndarray
    masks: np.ndarray
    targets: np.ndarray
    source: np.ndarray


def part_weights(parts: Sequence[int], num_segments: int) -> np.ndarray:
    """The part selection of a swap as weights.

    Args:
        parts: part ids, 0 = background, 1..K the parts.
        num_segments: K.

    Returns:
        float32 [K+1]: 1 for each chosen id, else 0.

    Raises:
        InputError: an id that is not an integer or not in 0..K.
    """
    weights = np.zeros(num_segments + 1, np.float32)
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (int, np.integer)):
            raise InputError(f"part ids must be integers, got {part!r}")
        if not 0 <= int(part) <= num_segments:
            raise InputError(
                f"part id {part} is out of range: this model has K = {num_segments} parts, "
                f"ids 0..{num_segments} (0 = background)"
            )
        weights[int(part)] = 1.0
    return weights


class PartSwapper:
    """Swaps chosen parts of a source image into every frame of a target video (paper Sec. 4.3).

    Built on a `KerasSegmenter` whose file holds the generator (a run dir, `model.keras`, a
    checkpoint or an original `.pth.tar`), or a `SavedModelSegmenter` exported with the
    `part_swap` signature (soft target masks only: that signature takes part weights).
    """

    def __init__(self, segmenter: Segmenter, batch_size: int = 8) -> None:
        self.segmenter = segmenter
        self.batch_size = batch_size
        self.num_segments = segmenter.num_segments
        self._functions: dict[tuple[bool, bool], Any] = {}
        if isinstance(segmenter, KerasSegmenter):
            if segmenter.model.generator is None:
                raise ModelLoadError(
                    f"{segmenter.source} holds only the segmenter; part swap needs the generator too "
                    "(use the run's final/model.keras, a checkpoint or a .pth.tar)"
                )
        elif isinstance(segmenter, SavedModelSegmenter):
            if segmenter.part_swap_signature is None or segmenter.frame_size is None:
                raise ModelLoadError(
                    f"{segmenter.source} has no part_swap signature at a known frame size "
                    "(export with part swap and without resize_to_input, or use the Keras model)"
                )
        else:
            raise ModelLoadError(
                f"{segmenter.source}: part swap runs on Keras models and SavedModels, not TFLite"
            )
        self.frame_size: tuple[int, int] = segmenter.frame_size  # type: ignore[assignment]

    @classmethod
    def load(cls, path: str, config: str | None = None, batch_size: int = 8) -> PartSwapper:
        """A swapper on the model at `path` (see `load_segmenter` for `path` and `config`).

        Args:
            path: The model (see `load_segmenter`).
            config: The config for a checkpoint without one, or None.
            batch_size: Pairs per forward pass.

        Returns:
            The swapper.

        Raises:
            ModelLoadError: no model there, or one without what part swap needs.
        """
        return cls(load_segmenter(path, config), batch_size)

    def _keras_function(self, soft: bool, use_source_segmentation: bool) -> Any:
        key = (soft, use_source_segmentation)
        if key not in self._functions:
            import tensorflow as tf

            model = self.segmenter.model  # type: ignore[attr-defined]
            frame = tf.TensorSpec([None, *self.frame_size, 3], tf.float32)
            weights = tf.TensorSpec([None, self.num_segments + 1], tf.float32)

            def run(source: tf.Tensor, target: tf.Tensor, part_mask: tf.Tensor) -> dict[str, tf.Tensor]:
                return graphs.part_swap(
                    model.segmenter,
                    model.generator,
                    source,
                    target,
                    part_mask,
                    soft=soft,
                    use_source_segmentation=use_source_segmentation,
                )

            self._functions[key] = tf.function(run, input_signature=[frame, frame, weights])
        return self._functions[key]

    def swap(
        self,
        source_image: Any,
        target_frames: Any,
        parts: Sequence[int],
        soft: bool = True,
        use_source_segmentation: bool = False,
        crop: str = "none",
    ) -> SwapResult:
        """The target frames with chosen parts taken from a source image.

        Swapping no part gives the generator's auto-encoding of each target frame.

        Args:
            source_image: one uint8 or float [0, 1] RGB image.
            target_frames: [T, H, W, 3] (or one frame), uint8 or float [0, 1].
            parts: the part ids to take from the source (0 = background).
            soft: blend with soft part maps (else hard ones; Keras models only).
            use_source_segmentation: the source's maps, deformed to each target, make the
                blend mask instead of the target's (Keras models only).
            crop: "none" stretches the frames to the model's frame size, "center" first cuts
                the centred window of its aspect ratio.

        Returns:
            The swapped frames at the model's frame size, the blend masks and the frames as
            the model saw them.

        Raises:
            InputError: bad images, part ids, or options the model cannot run.
        """
        weights = part_weights(parts, self.num_segments)
        source = fit_frames(as_images(source_image, "source image"), self.frame_size, crop)
        if len(source) != 1:
            raise InputError(f"the source must be one image, got {len(source)}")
        targets = fit_frames(as_images(target_frames, "target frames"), self.frame_size, crop)
        if isinstance(self.segmenter, SavedModelSegmenter):
            if not (soft and not use_source_segmentation):
                raise InputError(
                    "a SavedModel's part_swap signature supports soft masks from the target's segmentation "
                    "only; use the Keras model (run dir, .keras, checkpoint) for hard or source masks"
                )
            function = self.segmenter.part_swap_signature
        else:
            function = self._keras_function(soft, use_source_segmentation)
        images, masks = [], []
        for start in range(0, len(targets), self.batch_size):
            batch = targets[start : start + self.batch_size]
            count = len(batch)
            out = function(
                source=np.repeat(source, count, axis=0),
                target=batch,
                part_mask=np.repeat(weights[np.newaxis], count, axis=0),
            )
            images.append(np.asarray(out["image"]))
            masks.append(np.asarray(out["blend_mask"]))
        return SwapResult(
            frames=np.clip(np.concatenate(images), 0.0, 1.0),
            masks=np.concatenate(masks),
            targets=targets,
            source=source[0],
        )
