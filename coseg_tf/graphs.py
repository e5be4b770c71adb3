"""The inference computations: segment an image, swap parts.

One definition of each is shared by `coseg_tf.inference` (Keras models), the Keras reference
of the export agreement checks, the SavedModel signatures and the TFLite models, so that
those checks compare export mechanics (tracing, freezing, conversion, quantisation), not two
hand-written copies of the maths.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from coseg_tf import geometry


def segment(segmenter: keras.Model, images: tf.Tensor) -> dict[str, tf.Tensor]:
    """The segmenter's outputs plus the hard labels and the foreground probability.

    Args:
        segmenter: a `SegmentationModule`.
        images: float32 [B, H, W, 3] in [0, 1] at the model's frame size.

    Returns:
        `segmentation` [B, h, w, K+1], `parts` int32 [B, h, w] (argmax, 0 = background),
        `foreground` [B, h, w] (1 - background probability), `shift` [B, K, 2] and
        `affine` [B, K, 2, 2], all float32 but `parts`.
    """
    out = segmenter(images, training=False)
    return with_labels(out)


def with_labels(out: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Adds `parts` and `foreground` to a segmenter output dict.

    Args:
        out: a segmenter's outputs (`segmentation`, `shift`, `affine`), any float dtype.

    Returns:
        The outputs as float32 with `parts` and `foreground` computed from `segmentation`.
    """
    segmentation = tf.cast(out["segmentation"], tf.float32)
    return {
        "segmentation": segmentation,
        "parts": tf.argmax(segmentation, axis=-1, output_type=tf.int32),
        "foreground": 1.0 - segmentation[..., 0],
        "shift": tf.cast(out["shift"], tf.float32),
        "affine": tf.cast(out["affine"], tf.float32),
    }


def part_swap(
    segmenter: keras.Model,
    generator: keras.Model,
    source: tf.Tensor,
    target: tf.Tensor,
    part_mask: tf.Tensor,
    *,
    soft: bool = True,
    use_source_segmentation: bool = False,
) -> dict[str, tf.Tensor]:
    """The paper's part swap (Sec. 4.3): the chosen parts of `target` taken from `source`.

    Both frames are segmented; the source's encoder features are deformed to the target with
    the segment motion (Eq. 2-5, `generator.deform`); the blend mask is the target's soft
    segmentation weighted by `part_mask` [B, K+1] (a soft selection, background first, so
    region edges stay smooth as the paper's continuous masks); features =
    mask * deformed source + (1 - mask) * target features, then decoded. With every part
    selected this is the generator's reconstruction of `target` from `source`; with none it
    is the target's own auto-encoding.

    Args:
        segmenter: a `SegmentationModule`.
        generator: the `ReconstructionModule` trained with it.
        source: float32 [B, H, W, 3] in [0, 1], the frames the parts come from.
        target: float32 [B, H, W, 3] in [0, 1], the frames they go into.
        part_mask: float32 [B, K+1], the weight of each part (background first).
        soft: blend with the soft maps (the default), else their one-hot argmax. A mask
            option of the original `part_swap.py`, fixed at trace time; the exported
            signature uses the defaults.
        use_source_segmentation: take the source's maps deformed into the target frame by
            the same motion field as the features, instead of the target's maps.

    Returns:
        `image` float32 [B, H, W, 3] and `blend_mask` [B, h, w] (1 = features from the source).
    """
    seg_source = segmenter(source, training=False)
    seg_target = segmenter(target, training=False)
    source_features = generator.encode(source, training=False)
    target_features = generator.encode(target, training=False)
    deformed, motion = generator.deform(source_features, source, seg_source, seg_target)
    maps = tf.cast(seg_target["segmentation"], tf.float32)
    if use_source_segmentation:
        source_maps = tf.cast(seg_source["segmentation"], tf.float32)
        maps = geometry.grid_sample(source_maps, tf.cast(motion["deformation"], tf.float32))
    if not soft:
        maps = tf.one_hot(tf.argmax(maps, axis=-1), maps.shape[-1], dtype=tf.float32)
    weights = tf.cast(part_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]
    mask = tf.reduce_sum(maps * weights, axis=-1, keepdims=True)
    height, width = deformed.shape[1], deformed.shape[2]
    feature_mask = tf.cast(geometry.resize_bilinear(mask, height, width), deformed.dtype)
    blended = feature_mask * deformed + (1.0 - feature_mask) * target_features
    image = generator.decode(blended, training=False)
    return {"image": tf.cast(image, tf.float32), "blend_mask": mask[..., 0]}
