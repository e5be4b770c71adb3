"""Training losses (Sec. 3.3): multi-scale perceptual loss (Eq. 6) and the equivariance loss."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from coseg_tf import geometry
from coseg_tf.errors import CosegError

VGG_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
# keras.applications' VGG19 ImageNet weights expect Caffe inputs: BGR, 0-255, mean removed.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# torchvision's VGG19 (the original's perceptual network) expects RGB in [0, 1], standardised.
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
# torchvision's ImageNet VGG19 state dict; its name carries the first 8 hex digits of its SHA-256.
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# `features.{i}` of torchvision's VGG19 for each conv layer of keras.applications' VGG19.
_TORCHVISION_CONV_INDEX = {
    f"block{block}_conv{conv + 1}": index
    for block, indices in enumerate(([0, 2], [5, 7], [10, 12, 14, 16], [19, 21, 23, 25], [28, 30, 32, 34]), 1)
    for conv, index in enumerate(indices)
}
# Added to the thin-plate-spline distance inside the log, as the original.
_TPS_EPS = 1e-6


class VGGWeightsError(CosegError):
    """A perceptual VGG19 weights file that is not what `vgg_weights` says it is."""


def image_pyramid(image: tf.Tensor, scales: list[float] | tuple[float, ...]) -> dict[str, tf.Tensor]:
    """The anti-aliased pyramid the perceptual loss compares, keyed `prediction_<scale>`.

    Args:
        image: [B, H, W, C] images.
        scales: Downsampling factors, each 1 or 1/n (see `geometry.antialias_downsample`).

    Returns:
        {"prediction_<scale>": [B, ~H*scale, ~W*scale, C]} for every scale.
    """
    return {f"prediction_{scale}": geometry.antialias_downsample(image, scale) for scale in scales}


@keras.saving.register_keras_serializable(package="coseg_tf")
class PerceptualLoss(keras.layers.Layer):
    """Eq. (6) at every pyramid scale: weighted L1 between VGG19 relu1_1..relu5_1 features.

    `vgg_weights` picks the network and, with it, the input convention:
    - "torchvision": torchvision's ImageNet VGG19, the original's perceptual network (downloaded
      on first use); a path to a torchvision state dict (`.pth`, read without PyTorch, or an
      `.npz` of its `features.{i}.weight`/`.bias` arrays) is the same network from a local file.
      Input RGB in [0, 1] standardised by ImageNet's mean and std, as the original.
    - "imagenet": keras.applications' Caffe-converted VGG19 (downloaded on first use); a path to
      a Keras weights file (`.h5`) is the same from a local file. Input BGR, 0-255, mean removed.
    - "none": random weights in the Keras convention (for tests and smoke runs).
    The VGG stops at the last layer with a non-zero weight, which makes a shallow loss (e.g.
    weights [10, 10, 10, 0, 0]) cheaper; zero-weighted layers before it are run, not summed.
    """

    def __init__(
        self,
        scales: list[float] | tuple[float, ...] = (1, 0.5, 0.25, 0.125),
        layer_weights: list[float] | tuple[float, ...] = (10, 10, 10, 10, 10),
        vgg_weights: str = "imagenet",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(layer_weights) != len(VGG_LAYERS):
            raise ValueError(f"need {len(VGG_LAYERS)} perceptual layer weights, got {len(layer_weights)}")
        self.scales = list(scales)
        self.layer_weights = [float(w) for w in layer_weights]
        self.vgg_weights = vgg_weights
        if not any(self.layer_weights):
            raise ValueError("every perceptual layer weight is 0: the loss would be constant")
        self._used = [(name, w) for name, w in zip(VGG_LAYERS, self.layer_weights, strict=True) if w]
        self.vgg = self._feature_extractor(vgg_weights, self.feature_layers)

    @property
    def feature_layers(self) -> list[str]:
        """The VGG layers the loss reads (those with a non-zero weight)."""
        return [name for name, _ in self._used]

    @property
    def convention(self) -> str:
        """The input convention of the VGG weights: "torchvision" or "caffe"."""
        return vgg_convention(self.vgg_weights)

    @staticmethod
    def _feature_extractor(vgg_weights: str, layers: list[str]) -> keras.Model:
        is_file = vgg_weights not in ("imagenet", "torchvision", "none")
        if is_file and not tf.io.gfile.exists(vgg_weights):
            raise FileNotFoundError(f"VGG19 weights file not found: {vgg_weights}")
        vgg = keras.applications.VGG19(
            include_top=False,
            input_shape=(None, None, 3),
            weights="imagenet" if vgg_weights == "imagenet" else None,
        )
        if vgg_weights == "torchvision":
            assign_torchvision_vgg19(vgg, read_torchvision_vgg19(download_torchvision_vgg19()), layers[-1])
        elif is_file and vgg_convention(vgg_weights) == "torchvision":
            assign_torchvision_vgg19(vgg, read_torchvision_vgg19(vgg_weights), layers[-1])
        elif is_file:
            vgg.load_weights(vgg_weights)
        features = keras.Model(
            vgg.input, [vgg.get_layer(name).output for name in layers], name="vgg19_features"
        )
        features.trainable = False
        return features

    def _features(self, image: tf.Tensor) -> list[tf.Tensor]:
        image = tf.cast(image, tf.float32)
        if self.convention == "torchvision":
            x = (image - tf.constant(_TORCHVISION_MEAN)) / tf.constant(_TORCHVISION_STD)
        else:
            x = tf.reverse(image, axis=[-1]) * 255.0 - tf.constant(_CAFFE_BGR_MEAN)
        return tf.nest.flatten(self.vgg(x, training=False))  # one layer comes back unlisted

    def level_loss(self, prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """The loss at one pyramid level: weighted L1 between the VGG features of two images.

        Args:
          prediction: Images [N, H, W, 3] in [0, 1], one level of `image_pyramid`.
          target: The target images at the same level; no gradient flows into them.

        Returns:
          A scalar float32 tensor.
        """
        total = tf.constant(0.0)
        for (_, weight), x, y in zip(
            self._used, self._features(prediction), self._features(target), strict=True
        ):
            total += weight * tf.reduce_mean(tf.abs(x - tf.stop_gradient(y)))
        return total

    def call(self, prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        predicted, real = image_pyramid(prediction, self.scales), image_pyramid(target, self.scales)
        total = tf.constant(0.0)
        for key in predicted:
            total += self.level_loss(predicted[key], real[key])
        return total

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "scales": self.scales,
            "layer_weights": self.layer_weights,
            "vgg_weights": self.vgg_weights,
        }


def vgg_convention(vgg_weights: str) -> str:
    """ "torchvision" for torchvision's VGG19 (by name, `.pth` or `.npz` file), else "caffe".

    Args:
        vgg_weights: The config's `vgg_weights`: "torchvision", a `.pth`/`.npz` path, or anything else (Keras'
        ImageNet VGG19).

    Returns:
        "torchvision" or "caffe" (the input normalisation that goes with those weights).
    """
    if vgg_weights == "torchvision" or str(vgg_weights).endswith((".pth", ".npz")):
        return "torchvision"
    return "caffe"


def download_torchvision_vgg19() -> str:
    """The local path of torchvision's ImageNet VGG19 state dict, downloaded into Keras' cache once.

    Raises:
        VGGWeightsError: if the downloaded file's SHA-256 does not start with the digits in its name.
    """
    import hashlib

    name = TORCHVISION_VGG19_URL.rsplit("/", 1)[-1]
    path = keras.utils.get_file(name, TORCHVISION_VGG19_URL, cache_subdir="models")
    expected = name.rsplit("-", 1)[-1].split(".")[0]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(expected):
        raise VGGWeightsError(
            f"{path}: SHA-256 {digest.hexdigest()[:8]}... does not match {expected} (damaged download?)"
        )
    return path


def read_torchvision_vgg19(path: str) -> dict[str, np.ndarray]:
    """torchvision's VGG19 state dict as float32 arrays: a `.pth` (read without PyTorch) or `.npz`.

    Args:
        path: A `.pth` or `.npz` file of torchvision's VGG19 state dict.

    Returns:
        The `features.*` arrays of the state dict, as float32.

    Raises:
        VGGWeightsError: if the file holds no `features.*` arrays (not a VGG state dict).
        CheckpointReadError: if the file is not a readable `.npz` or torch checkpoint.
    """
    from coseg_tf.pth_reader import read_state_file

    arrays = read_state_file(path)
    if not isinstance(arrays, dict):
        raise VGGWeightsError(f"{path}: not a state dict (a {type(arrays).__name__})")
    arrays = {str(k): np.asarray(v, np.float32) for k, v in arrays.items() if str(k).startswith("features.")}
    if not arrays:
        raise VGGWeightsError(f"{path}: no 'features.*' arrays: not a torchvision VGG19 state dict")
    return arrays


def assign_torchvision_vgg19(vgg: keras.Model, state: dict[str, np.ndarray], last_layer: str) -> None:
    """Copies torchvision's `features.{i}` convs onto keras.applications' VGG19, up to `last_layer`.

    Both networks are the same stack of 3x3 'same' convs with ReLU and 2x2 max pools, so only
    the kernel layout changes ([out, in, kh, kw] -> [kh, kw, in, out]).

    Args:
        vgg: keras.applications' VGG19 (its `block*_conv*` layers are assigned).
        state: torchvision's state dict (`read_torchvision_vgg19`).
        last_layer: The last conv layer to assign, e.g. "block5_conv1".

    Raises:
        VGGWeightsError: if an array that the loss needs is missing or has the wrong shape.
    """
    names = list(_TORCHVISION_CONV_INDEX)
    for name in names[: names.index(last_layer) + 1]:
        layer = vgg.get_layer(name)
        index = _TORCHVISION_CONV_INDEX[name]
        for param, variable, layout in (("weight", layer.kernel, (2, 3, 1, 0)), ("bias", layer.bias, (0,))):
            key = f"features.{index}.{param}"
            if key not in state:
                raise VGGWeightsError(f"torchvision VGG19 state dict has no '{key}' (needed for {name})")
            value = np.transpose(state[key], layout)
            if value.shape != tuple(variable.shape):
                raise VGGWeightsError(
                    f"torchvision VGG19 '{key}': shape {state[key].shape} does not fit "
                    f"{name} {tuple(variable.shape)}"
                )
            variable.assign(value)


def random_warp(
    batch: int | tf.Tensor,
    sigma_affine: float,
    sigma_tps: float,
    points_tps: int,
    seed: tf.Tensor | keras.random.SeedGenerator | int | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Draws the parameters of random equivariance warps (`EquivarianceTransform`).

    Args:
        batch: B, the number of warps.
        sigma_affine: standard deviation of theta around the identity.
        sigma_tps: standard deviation of the TPS weights.
        points_tps: the TPS control points form a points_tps x points_tps grid.
        seed: a stateless seed, an int tensor of shape [2] (the same seed gives the same
            warps wherever it runs: the trainer draws a global batch's warps from (seed, step)
            on every replica), or a Keras seed (`SeedGenerator`, int or None) for a stateful draw.

    Returns:
        theta [B, 2, 3] ~ I + N(0, sigma_affine) and TPS weights [B, 1, points_tps**2] ~
        N(0, sigma_tps).
    """
    theta_shape, tps_shape = (batch, 2, 3), (batch, 1, points_tps**2)
    if isinstance(seed, (tf.Tensor, np.ndarray)):
        theta_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        tps_seed = tf.random.experimental.stateless_fold_in(seed, 2)
        theta = tf.random.stateless_normal(theta_shape, theta_seed, stddev=sigma_affine)
        tps = tf.random.stateless_normal(tps_shape, tps_seed, stddev=sigma_tps)
    else:
        theta = keras.random.normal(theta_shape, stddev=sigma_affine, seed=seed)
        tps = keras.random.normal(tps_shape, stddev=sigma_tps, seed=seed)
    return theta + tf.constant(np.eye(2, 3, dtype=np.float32)), tps


class EquivarianceTransform:
    """A random affine + thin-plate-spline warp W (Sec. 3.3, as in FOMM).

    W(z) = theta[:, :2] z + theta[:, 2] + sum_i c_i d_i^2 log(d_i + 1e-6), d_i = |z - q_i|_1,
    the TPS term added to both coordinates; q_i is a points x points grid over [-1, 1].
    """

    def __init__(self, theta: tf.Tensor, control_points: tf.Tensor, control_params: tf.Tensor) -> None:
        self.theta = tf.convert_to_tensor(theta, tf.float32)  # [B, 2, 3]
        self.control_points = tf.reshape(tf.convert_to_tensor(control_points, tf.float32), (1, 1, -1, 2))
        self.control_params = tf.reshape(
            tf.convert_to_tensor(control_params, tf.float32), (tf.shape(self.theta)[0], 1, -1)
        )  # [B, 1, P]

    @classmethod
    def random(
        cls,
        batch: int | tf.Tensor,
        sigma_affine: float,
        sigma_tps: float,
        points_tps: int,
        seed: keras.random.SeedGenerator | int | None = None,
    ) -> EquivarianceTransform:
        """A warp drawn by `random_warp` (see there for the arguments).

        Args:
            batch: Number of warps.
            sigma_affine: Standard deviation of theta around the identity.
            sigma_tps: Standard deviation of the TPS weights.
            points_tps: Control points per side of the TPS grid.
            seed: A `keras.random.SeedGenerator`, an int seed, or None.

        Returns:
            The transform W.
        """
        theta, params = random_warp(batch, sigma_affine, sigma_tps, points_tps, seed)
        return cls(theta, geometry.make_coordinate_grid(points_tps, points_tps), params)

    def _tps(self, coordinates: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The TPS term at [B, N, 2] coordinates and the distances' signs: [B, N], [B, N, P, 2]."""
        offsets = coordinates[:, :, tf.newaxis, :] - self.control_points  # [B, N, P, 2]
        distances = tf.reduce_sum(tf.abs(offsets), axis=-1)  # [B, N, P]
        log = tf.math.log(distances + _TPS_EPS)
        value = tf.reduce_sum(self.control_params * distances**2 * log, axis=-1)
        # d/dd (d^2 log(d + eps)) = 2 d log(d + eps) + d^2 / (d + eps); d/dz d = sign(z - q).
        slope = self.control_params * (2.0 * distances * log + distances**2 / (distances + _TPS_EPS))
        return value, slope[..., tf.newaxis] * tf.sign(offsets)

    def warp_coordinates(self, coordinates: tf.Tensor) -> tf.Tensor:
        """W at [B, N, 2] coordinates (x, y).

        Args:
            coordinates: [B, N, 2] points (x, y) in [-1, 1] coordinates.

        Returns:
            [B, N, 2] float32 warped points W(z).
        """
        coordinates = tf.cast(coordinates, tf.float32)
        out = tf.einsum("bij,bnj->bni", self.theta[:, :, :2], coordinates) + self.theta[:, tf.newaxis, :, 2]
        tps, _ = self._tps(coordinates)
        return out + tps[..., tf.newaxis]

    def jacobian(self, coordinates: tf.Tensor) -> tf.Tensor:
        """dW/dz at [B, N, 2] coordinates: [B, N, 2, 2], rows (Wx, Wy), columns (x, y).

        Args:
            coordinates: [B, N, 2] points (x, y) in [-1, 1] coordinates.

        Returns:
            [B, N, 2, 2] float32 Jacobians.
        """
        _, slopes = self._tps(tf.cast(coordinates, tf.float32))
        gradient = tf.reduce_sum(slopes, axis=2)  # [B, N, 2]: d tps / d(x, y)
        linear = self.theta[:, tf.newaxis, :, :2]
        return linear + gradient[:, :, tf.newaxis, :]

    def transform_frame(self, frame: tf.Tensor) -> tf.Tensor:
        """The frame warped by W (sampled at W(z) for every pixel z), border padding.

        Args:
            frame: [B, H, W, C] images with static H and W.

        Returns:
            [B, H, W, C] warped images W(X).
        """
        height, width = frame.shape[1], frame.shape[2]
        grid = tf.reshape(geometry.make_coordinate_grid(height, width), (1, height * width, 2))
        grid = tf.broadcast_to(grid, (tf.shape(frame)[0], height * width, 2))
        grid = tf.reshape(self.warp_coordinates(grid), (-1, height, width, 2))
        return geometry.grid_sample(frame, grid, padding_mode="border")


def equivariance_losses(
    seg_target: dict[str, tf.Tensor],
    transformed_seg: dict[str, tf.Tensor],
    transform: EquivarianceTransform,
    weight: float,
    with_affine: bool,
) -> dict[str, tf.Tensor]:
    """Shift and affine equivariance (Sec. 3.3): parts found on W(X_T) map back onto X_T's.

    shift: w * mean |p_T - W(p_W)|;  affine: w * mean |I - A_T^-1 J_W(p_W) A_W|.

    Args:
        seg_target: Segmenter outputs on X_T: `shift` [B, K, 2] and `affine` [B, K, 2, 2].
        transformed_seg: Segmenter outputs on W(X_T), same keys.
        transform: The warp W.
        weight: Weight w of both terms.
        with_affine: Whether to add the affine term.

    Returns:
        {"equivariance_shift": scalar} and, with `with_affine`, "equivariance_affine".
    """
    losses = {}
    warped_shift = transform.warp_coordinates(transformed_seg["shift"])
    losses["equivariance_shift"] = weight * tf.reduce_mean(tf.abs(seg_target["shift"] - warped_shift))
    if with_affine:
        jacobian = transform.jacobian(transformed_seg["shift"])
        value = tf.matmul(
            geometry.inverse_2x2(seg_target["affine"]), tf.matmul(jacobian, transformed_seg["affine"])
        )
        losses["equivariance_affine"] = weight * tf.reduce_mean(tf.abs(tf.eye(2) - value))
    return losses
