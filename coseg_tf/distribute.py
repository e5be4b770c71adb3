"""Where and in what precision training runs: tf.distribute strategies and mixed precision.

The trainer builds its model under `make_strategy(...)`'s scope and sets the precision of
its layers with `apply_mixed_precision`; `is_chief` decides which process writes files.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import logging

from coseg_tf.config import PRECISIONS
from coseg_tf.model import CosegModel

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy of a `--strategy` name.

    Args:
        name: `default` (one device), `mirrored` (all local GPUs, or all logical CPUs) or
            `multi_worker` (the cluster of the TF_CONFIG environment variable).

    Returns:
        The strategy.

    Raises:
        ValueError: an unknown name.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            logging.warning("--strategy=multi_worker without TF_CONFIG: training as a single worker")
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): bf16 then trains faster."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in line.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(name: str) -> str:
    """The mixed-precision policy a `--mixed_precision` choice means on this machine.

    Args:
        name: one of `config.PRECISIONS`; `auto` is mixed_bfloat16 when training on a CPU
            with native bf16, otherwise off.

    Returns:
        `off`, `mixed_bfloat16` or `mixed_float16`.

    Raises:
        ValueError: a name outside `config.PRECISIONS`.
    """
    if name not in PRECISIONS:
        raise ValueError(f"unknown mixed precision {name!r}; choose from {PRECISIONS}")
    if name != "auto":
        return name
    if tf.config.list_logical_devices("GPU"):
        return "off"
    return "mixed_bfloat16" if cpu_has_native_bf16() else "off"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, summaries and the final weights.

    Args:
        strategy: the training strategy.

    Returns:
        True for a single process, the chief, or worker 0 of a cluster without a chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _float32_layers(model: CosegModel) -> set[int]:
    """Layers that stay float32 under mixed precision: the geometry and the loss sums.

    The three containers run soft-argmax, the 2x2 inverses, Eqs. (2)-(5) and the losses;
    the heads feed them; the VGG layers whose outputs the perceptual loss reads give float32
    features, so that Eq. (6) sums in float32.
    """
    keep = [model, model.segmenter, model.generator, model.generator.final, *model.segmenter.heads]
    if model.perceptual is not None:
        keep.append(model.perceptual)
        keep.extend(model.perceptual.vgg.get_layer(name) for name in model.perceptual.feature_layers)
    return {id(layer) for layer in keep}


def apply_mixed_precision(model: CosegModel, policy: str) -> None:
    """Sets a mixed-precision policy on every conv/norm layer of a built model.

    Done per layer after building, instead of with a global policy, because a global policy
    would also cast the inputs of the containers whose geometry must run in float32.
    Variables stay float32.

    Args:
        model: a built model.
        policy: one of `config.PRECISIONS` (`auto` is resolved by `resolve_precision`).

    Raises:
        ValueError: an unknown policy.
    """
    policy = resolve_precision(policy)
    if policy == "off":
        return
    keep = _float32_layers(model)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if id(layer) not in keep:
            layer.dtype_policy = policy


__all__ = [
    "STRATEGIES",
    "apply_mixed_precision",
    "cpu_has_native_bf16",
    "is_chief",
    "make_strategy",
    "resolve_precision",
]
