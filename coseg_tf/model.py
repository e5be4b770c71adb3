"""The training model (Fig. 2): segment both frames, reconstruct the target, score it.

`CosegModel` ties the segmenter, the generator and the losses together and returns every
loss term and every intermediate, so that the trainer, the tests and the visualiser all
read the same dict. The paper's ablation variants (Table 1(b)) are module flags set from
the config (`model_params.variant`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf.generator import ReconstructionModule
from coseg_tf.losses import EquivarianceTransform, PerceptualLoss, equivariance_losses
from coseg_tf.segmenter import SegmentationModule


@keras.saving.register_keras_serializable(package="coseg_tf")
class CosegModel(keras.Model):
    """Segmenter + generator + losses. Call with `{"source", "target"}` frames in [0, 1].

    Returns `seg_source`, `seg_target` (the segmenter's dicts), the generator's outputs
    (`prediction`, `deformation`, `segment_motions`, `visibility`, `deformed`), the
    equivariance intermediates (`transformed_frame`, `transformed_seg`) and `losses`, a dict
    of scalar loss terms (weights applied) whose sum is the training objective.
    """

    def __init__(
        self,
        segmenter: SegmentationModule,
        generator: ReconstructionModule,
        perceptual: PerceptualLoss | None = None,
        equivariance_weight: float = 10.0,
        transform_params: dict[str, float] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.segmenter = segmenter
        self.generator = generator
        self.perceptual = perceptual
        self.equivariance_weight = float(equivariance_weight)
        self.transform_params = dict(
            transform_params or {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5}
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(
        self,
        inputs: dict[str, tf.Tensor],
        training: bool | None = None,
        transform: EquivarianceTransform | None = None,
    ) -> dict[str, Any]:
        source, target = inputs["source"], inputs["target"]
        seg_source = self.segmenter(source, training=training)
        seg_target = self.segmenter(target, training=training)
        out = self.generator(
            {"source": source, "seg_source": seg_source, "seg_target": seg_target}, training=training
        )
        out.update(seg_source=seg_source, seg_target=seg_target)
        losses = {}
        if self.perceptual is not None:
            losses["perceptual"] = self.perceptual(out["prediction"], target)
        if self.equivariance_weight:
            if transform is None:
                transform = EquivarianceTransform.random(
                    tf.shape(target)[0], seed=self.seed_generator, **self.transform_params
                )
            out["transformed_frame"] = transform.transform_frame(target)
            out["transformed_seg"] = self.segmenter(out["transformed_frame"], training=training)
            losses.update(
                equivariance_losses(
                    seg_target,
                    out["transformed_seg"],
                    transform,
                    self.equivariance_weight,
                    self.segmenter.estimate_affine_part,
                )
            )
        out["losses"] = losses
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "segmenter": keras.saving.serialize_keras_object(self.segmenter),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "perceptual": keras.saving.serialize_keras_object(self.perceptual),
            "equivariance_weight": self.equivariance_weight,
            "transform_params": self.transform_params,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CosegModel:
        config = dict(config)
        for key in ("segmenter", "generator", "perceptual"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def build_segmenter(config: dict[str, Any]) -> SegmentationModule:
    """The segmenter of a config, built for its frame size (ready for weight import).

    Args:
      config: A complete config.

    Returns:
      The built `SegmentationModule`.
    """
    segmenter = SegmentationModule(**config_lib.segmenter_kwargs(config), name="segmentation_module")
    height, width, channels = config["dataset_params"]["frame_shape"]
    segmenter(tf.zeros((1, height, width, channels)), training=False)
    return segmenter


def build_modules(config: dict[str, Any]) -> tuple[SegmentationModule, ReconstructionModule]:
    """The segmenter and generator of a config, built for its frame size (ready for weights).

    Args:
      config: A complete config.

    Returns:
      (segmenter, generator), both built.
    """
    segmenter = build_segmenter(config)
    generator = ReconstructionModule(**config_lib.generator_kwargs(config), name="reconstruction_module")
    height, width, channels = config["dataset_params"]["frame_shape"]
    frame = tf.zeros((1, height, width, channels))
    seg = segmenter(frame, training=False)
    generator({"source": frame, "seg_source": seg, "seg_target": seg}, training=False)
    return segmenter, generator


def build_model(config: dict[str, Any], *, seed: int | None = None) -> CosegModel:
    """The training model of a config: modules built for its frame size, losses as configured.

    Args:
      config: A complete config.
      seed: Seed of the equivariance warps, or None.

    Returns:
      The `CosegModel` (the perceptual loss left out when all its weights are 0).
    """
    train = config["train_params"]
    segmenter, generator = build_modules(config)
    perceptual = None
    if any(train["loss_weights"]["perceptual"]):
        perceptual = PerceptualLoss(
            train["scales"], train["loss_weights"]["perceptual"], train["vgg_weights"], name="perceptual"
        )
    model = CosegModel(
        segmenter,
        generator,
        perceptual,
        train["loss_weights"]["equivariance"],
        train["transform_params"],
        seed=seed,
        name="coseg",
    )
    model.built = True  # every sub-module is built above; the losses hold no trainable state
    return model
