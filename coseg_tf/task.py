"""The training task: the model, its two optimisers, the learning-rate schedule and one step.

The paper's optimisation (Sup. Mat. A): Adam, one optimiser per module as the original
(segmentation and reconstruction modules, each with its own learning rate, betas
(0.5, 0.999)), learning rates x0.1 at the epoch milestones (the original's MultiStepLR),
objective = sum of the model's weighted loss terms (perceptual Eq. 6, the model's own
perceptual loss, + equivariance). An optional segmentation warm-up
(`train_params.segmentation_warmup`) slows the segmenter for the first epochs, then restarts
both optimisers: a two-stage run in one command.

Distribution. Every replica computes its loss terms as means over its own part of the global
batch, so the objective of the global batch is the mean over replicas: each replica takes
the gradient of `objective / num_replicas`, and the optimiser sums them (all-reduce). Batch
norm statistics are synchronised across replicas when `sync_batch_norm` is on, as the
original. The equivariance warp is drawn for the whole global batch from a stateless seed
(seed, step) and sliced per replica, so one device and N devices see the same warps.

Robustness. A step whose objective or gradient is non-finite on any replica is skipped by
all of them (the decision is all-reduced): no weight, optimiser slot or batch-norm statistic
changes. How many skipped steps are tolerated is the loop's decision (`coseg_tf.trainer`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from coseg_tf import geometry
from coseg_tf.distribute import apply_mixed_precision, resolve_precision
from coseg_tf.losses import EquivarianceTransform, random_warp
from coseg_tf.model import build_model
from coseg_tf.optimizers import TorchAdam

# The learning-rate decay at each epoch milestone, as the original's MultiStepLR(gamma=0.1).
MILESTONE_DECAY = 0.1
# PyTorch's Adam epsilon (Keras' default is 1e-7).
ADAM_EPSILON = 1e-8
FLOAT16_INITIAL_LOSS_SCALE = 2.0**10

# A step's gradients: one list per module (segmenter, generator), None where none flows.
Gradients = list[list[tf.Tensor | None]]
# dataset_fn(input_context, epoch): the per-replica batches of one epoch.
DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]


def default_dataset_fn(config: Mapping[str, Any], seed: int) -> DatasetFn:
    """The task's inputs: per-replica frame pairs of the config's training split.

    Args:
        config: the run's config (`dataset_params`, `train_params`).
        seed: the run's seed; each epoch reshuffles with its own seed derived from it.

    Returns:
        `dataset_fn(input_context, epoch)`, for `distribute_datasets_from_function`.
    """
    from coseg_tf.data import make_pair_dataset

    train = config["train_params"]

    def fn(context: tf.distribute.InputContext, epoch: int) -> tf.data.Dataset:
        return make_pair_dataset(
            config["dataset_params"],
            split="train",
            batch_size=int(train["batch_size"]),
            num_repeats=int(train["num_repeats"]),
            seed=seed * 1000 + epoch,
            input_context=context,
        )

    return fn


def epoch_examples(config: Mapping[str, Any]) -> int:
    """Frame pairs in one epoch of the training split.

    Args:
        config: the run's config (`dataset_params`, `train_params.num_repeats`).

    Returns:
        The videos (or identities) of the split x num_repeats.
    """
    from coseg_tf.data import epoch_size

    return epoch_size(config["dataset_params"], num_repeats=int(config["train_params"]["num_repeats"]))


def learning_rate(
    base: float,
    epoch: int,
    milestones: list[int] | tuple[int, ...],
    warmup: Mapping[str, Any] | None = None,
) -> float:
    """The learning rate of an epoch: MultiStepLR with an optional warm-up factor.

    Args:
        base: the configured learning rate.
        epoch: the epoch, counted from 0.
        milestones: epochs from which on the rate is x0.1 more (each one that is <= epoch).
        warmup: `{"epochs": n, "factor": f}`: the rate is also x f while epoch < n.

    Returns:
        base x 0.1 ** (milestones reached) [x factor during the warm-up].
    """
    lr = float(base) * MILESTONE_DECAY ** sum(1 for m in milestones if epoch >= int(m))
    if warmup and epoch < int(warmup["epochs"]):
        lr *= float(warmup["factor"])
    return lr


def restart_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
    """Zeroes an optimiser's step count and slots (Adam's moments), keeping its learning rate.

    That is the state of a freshly built optimiser; a loss-scale wrapper keeps its scale.

    Args:
        optimizer: a built optimiser, possibly wrapped in a `LossScaleOptimizer`.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    for variable in inner.variables:
        if variable.path != inner.learning_rate.path:
            variable.assign(tf.zeros_like(variable))


def global_transform(
    seed: tf.Tensor | int, step: tf.Tensor | int, global_batch: int, params: Mapping[str, Any]
) -> tuple[tf.Tensor, tf.Tensor]:
    """The equivariance warp parameters of the whole global batch.

    `losses.random_warp` from the stateless seed (seed, step), so that every replica draws
    the same warps and takes its own rows.

    Args:
        seed: the run's seed.
        step: the global step.
        global_batch: the number of warps to draw.
        params: the config's `train_params.transform_params`.

    Returns:
        theta [G, 2, 3] and the TPS weights [G, 1, P].
    """
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    return random_warp(
        global_batch, params["sigma_affine"], params["sigma_tps"], int(params["points_tps"]), seed=base
    )


def _rows(x: tf.Tensor, start: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return tf.slice(
        x,
        tf.concat([[start], tf.zeros([tf.rank(x) - 1], tf.int32)], 0),
        tf.concat([[size], tf.shape(x)[1:]], 0),
    )


def replica_batch_size(config: Mapping[str, Any], num_replicas: int, xla: bool = False) -> int:
    """The batch of one replica, for a config trained on `num_replicas` replicas.

    Args:
        config: the run's config.
        num_replicas: replicas in sync.
        xla: whether the forward/backward pass is compiled with XLA.

    Returns:
        `train_params.batch_size / num_replicas`.

    Raises:
        ValueError: the batch does not divide among the replicas, or XLA is asked for with
            synchronised batch norm on several replicas.
    """
    global_batch = int(config["train_params"]["batch_size"])
    if global_batch % num_replicas:
        raise ValueError(f"batch_size {global_batch} is not divisible by {num_replicas} replicas")
    sync_bn = bool(config["model_params"]["common_params"]["sync_batch_norm"])
    if xla and sync_bn and num_replicas > 1:
        # The compiled forward/backward is a nested function; an all-reduce inside it
        # (synchronised batch norm) cannot be placed there by tf.distribute.
        raise ValueError(
            "--xla with synchronised batch norm on several replicas is not supported; use "
            "--noxla or --set model_params.common_params.sync_batch_norm=false"
        )
    return global_batch // num_replicas


class TrainingTask:
    """The model and its two optimisers under a strategy, and the distributed training step.

    The step counter (`step`) belongs to the task: it seeds the step's equivariance warps.
    The loop around it (epochs, checkpoints, summaries) is `coseg_tf.trainer.Trainer`'s.

    Example:

    ```python
    task = TrainingTask(config, tf.distribute.get_strategy(), seed=0)
    task.set_learning_rates(epoch=0)
    losses, applied = task.run_step({"source": sources, "target": targets})
    ```

    Args:
        config: the run's config (`model_params`, `train_params`, ...), kept as given.
        strategy: the tf.distribute strategy to build and step under.
        seed: the run's seed: the model's initial weights and the warps of every step.
        mixed_precision: one of `config.PRECISIONS` (`auto` is resolved here).
        xla: compile the forward/backward pass with XLA.

    Raises:
        ValueError: an unknown precision, or a batch the replicas cannot share (see
            `replica_batch_size`).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        strategy: tf.distribute.Strategy,
        *,
        seed: int = 0,
        mixed_precision: str = "off",
        xla: bool = False,
    ) -> None:
        self.config = config
        self.train_params = config["train_params"]
        self.strategy = strategy
        self.seed = seed
        self.mixed_precision = resolve_precision(mixed_precision)
        self.fp16 = self.mixed_precision == "mixed_float16"
        self.num_replicas = int(strategy.num_replicas_in_sync)
        self.global_batch = int(self.train_params["batch_size"])
        self.per_replica_batch = replica_batch_size(config, self.num_replicas, xla)

        keras.utils.set_random_seed(seed)
        with strategy.scope():
            self.model = build_model(config, seed=seed)
            apply_mixed_precision(self.model, self.mixed_precision)
            self.modules = [self.model.segmenter, self.model.generator]
            betas = [float(b) for b in self.train_params["adam_betas"]]
            self.base_lrs = [
                float(self.train_params["lr_segmentation"]),
                float(self.train_params["lr_reconstruction"]),
            ]
            self.optimizers = []
            for module, lr in zip(self.modules, self.base_lrs, strict=True):
                optimizer = TorchAdam(
                    lr, beta_1=betas[0], beta_2=betas[1], epsilon=ADAM_EPSILON, name=f"adam_{module.name}"
                )
                if self.fp16:
                    # The objective is O(100) (Eq. 6 sums 5 layers x scales x weight 10), so
                    # start lower than Keras' 2^15 to waste fewer steps on overflows.
                    optimizer = keras.optimizers.LossScaleOptimizer(
                        optimizer, initial_scale=FLOAT16_INITIAL_LOSS_SCALE, name=f"lso_{module.name}"
                    )
                optimizer.build(module.trainable_variables)
                self.optimizers.append(optimizer)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.state_variables = [v for m in self.modules for v in m.non_trainable_variables]
        # train_step(batch, step, stop[, transform]) -> (losses, applied, loss_ok, stop_all):
        # the compiled distributed step, on a batch of the strategy's distributed dataset. Its
        # branches are tf.cond already and its loops run over Python lists, so autograph's
        # rewrite has nothing to convert; skipping it traces the step about 25% faster.
        self.train_step = tf.function(self._distributed_step, autograph=False)
        self._grad_fn = (
            tf.function(self._forward_backward, jit_compile=True) if xla else self._forward_backward
        )

    # -- the schedule

    def set_learning_rates(self, epoch: int) -> list[float]:
        """Sets both optimisers' learning rates for an epoch (milestones, warm-up).

        Args:
            epoch: the epoch, counted from 0.

        Returns:
            The segmenter's and the generator's learning rates.
        """
        milestones = list(self.train_params["epoch_milestones"] or [])
        segmenter, generator = self.base_lrs
        lrs = [
            learning_rate(segmenter, epoch, milestones, self.train_params["segmentation_warmup"]),
            learning_rate(generator, epoch, milestones),
        ]
        for optimizer, lr in zip(self.optimizers, lrs, strict=True):
            optimizer.learning_rate = lr
        return lrs

    def end_warmup_if_due(self, epoch: int, step_in_epoch: int) -> bool:
        """At the first step after the segmentation warm-up, restarts both optimisers.

        A checkpoint written at the end of the warm-up holds the warm-up's optimiser state, so
        resuming from it restarts them here too; one written later holds the restarted state.

        Args:
            epoch: the epoch about to run, counted from 0.
            step_in_epoch: the steps of that epoch already run.

        Returns:
            Whether the optimisers were restarted.
        """
        warmup_epochs = int(self.train_params["segmentation_warmup"]["epochs"])
        if not (warmup_epochs and epoch == warmup_epochs and step_in_epoch == 0):
            return False
        for optimizer in self.optimizers:
            restart_optimizer(optimizer)
        logging.info("segmentation warm-up done after %d epochs: optimisers restarted", warmup_epochs)
        return True

    def loss_scale(self) -> float | None:
        """The dynamic loss scale of float16 training (shared by both optimisers), else None."""
        return float(self.optimizers[0].dynamic_scale.numpy()) if self.fp16 else None

    # -- one step

    def _forward_backward(
        self, batch: dict[str, tf.Tensor], theta: tf.Tensor, tps: tf.Tensor
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor, Gradients]:
        transform = EquivarianceTransform(
            theta,
            geometry.make_coordinate_grid(*(2 * [int(self.train_params["transform_params"]["points_tps"])])),
            tps,
        )
        variables = [m.trainable_variables for m in self.modules]
        with tf.GradientTape() as tape:
            out = self.model(batch, training=True, transform=transform)
            losses = {k: tf.cast(v, tf.float32) for k, v in sorted(out["losses"].items())}
            total = tf.add_n(list(losses.values()))
            scaled = total / self.num_replicas
            if self.fp16:
                # Both optimisers share one scale: the segmenter's (they move in lockstep).
                scaled = self.optimizers[0].scale_loss(scaled)
        grads = tape.gradient(scaled, variables)
        return losses, total, grads

    def _replica_step(
        self,
        batch: dict[str, tf.Tensor],
        step: tf.Tensor,
        stop: tf.Tensor,
        transform: tuple[tf.Tensor, tf.Tensor] | None = None,
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor, tf.Tensor]:
        ctx = tf.distribute.get_replica_context()
        rid = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
        if transform is None:
            transform = global_transform(
                self.seed, step, self.global_batch, self.train_params["transform_params"]
            )
        theta, tps = transform
        start, size = rid * self.per_replica_batch, self.per_replica_batch
        theta, tps = _rows(theta, start, size), _rows(tps, start, size)
        # Batch-norm statistics before this step, put back if the step is skipped.
        saved = [tf.identity(v) for v in self.state_variables]
        losses, total, grads = self._grad_fn(batch, theta, tps)
        bad_loss = tf.cast(tf.logical_not(tf.math.is_finite(total)), tf.float32)
        bad_grads = tf.constant(0.0)
        for module_grads in grads:
            for g in module_grads:
                if g is not None:
                    bad_grads += tf.cast(tf.logical_not(tf.reduce_all(tf.math.is_finite(g))), tf.float32)
        names = list(losses)
        reduced = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM,
            [losses[k] / self.num_replicas for k in names] + [bad_loss, bad_grads, tf.cast(stop, tf.float32)],
        )
        mean_losses = dict(zip(names, reduced[: len(names)], strict=True))
        loss_ok = tf.equal(reduced[len(names)], 0.0)
        ok = tf.logical_and(loss_ok, tf.equal(reduced[len(names) + 1], 0.0))
        stop_all = reduced[len(names) + 2] > 0
        for variable, old in zip(self.state_variables, saved, strict=True):
            variable.assign(tf.where(ok, variable, old))
        applied = ctx.merge_call(self._apply_if_finite, args=(grads, ok))
        return mean_losses, applied, loss_ok, stop_all

    def _apply_if_finite(
        self, strategy: tf.distribute.Strategy, grads: Gradients, ok: tf.Tensor
    ) -> tf.Tensor:
        """Cross-replica: apply every replica's gradients (the optimisers all-reduce them) or none.

        `cond` must run here, in cross-replica context: a branch that all-reduces cannot
        run under a replica-local `cond`. All replicas computed the same `ok`.
        """
        ok = strategy.experimental_local_results(ok)[0]

        def apply_on_replica(grads: Gradients) -> None:
            for optimizer, module, module_grads in zip(self.optimizers, self.modules, grads, strict=True):
                optimizer.apply(module_grads, module.trainable_variables)

        def apply() -> tf.Tensor:
            strategy.extended.call_for_each_replica(apply_on_replica, args=(grads,))
            return tf.constant(True)

        def skip() -> tf.Tensor:
            if self.fp16:
                for optimizer in self.optimizers:  # as LossScaleOptimizer on an overflow
                    optimizer.step_counter.assign(0)
                    optimizer.dynamic_scale.assign(optimizer.dynamic_scale * 0.5)
            return tf.constant(False)

        return tf.cond(ok, apply, skip)

    def _distributed_step(
        self,
        batch: Mapping[str, Any],
        step: tf.Tensor,
        stop: tf.Tensor,
        transform: tuple[tf.Tensor, tf.Tensor] | None = None,
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor, tf.Tensor]:
        """One step on every replica.

        Args:
            batch: a batch of the strategy's distributed dataset.
            step: the global step (seeds the warps when `transform` is None).
            stop: this worker asks to stop after this step.
            transform: the global batch's warps (theta, TPS weights); None draws them.

        Returns:
            The replica-averaged loss terms, whether the update was applied, whether the
            loss was finite on every replica, and whether any worker asked to stop.
        """
        losses, applied, loss_ok, stop_all = self.strategy.run(
            self._replica_step, args=(batch, step, stop, transform)
        )
        first = self.strategy.experimental_local_results
        return (
            {k: first(v)[0] for k, v in losses.items()},
            first(applied)[0],
            first(loss_ok)[0],
            first(stop_all)[0],
        )

    def run_step(
        self, batch: Mapping[str, Any], transform: tuple[Any, Any] | None = None
    ) -> tuple[dict[str, float], bool]:
        """One training step on a given global batch (split across the replicas); for tests.

        Args:
            batch: `source` and `target` frames of the whole global batch.
            transform: the equivariance warp of the whole global batch as (theta [G, 2, 3],
                TPS weights [G, 1, P]), e.g. one recorded from the original; None draws it
                from (seed, step) as training does.

        Returns:
            The replica-averaged loss terms and whether the update was applied.
        """
        dataset = tf.data.Dataset.from_tensor_slices(dict(batch)).batch(self.global_batch)
        local = next(iter(self.strategy.experimental_distribute_dataset(dataset)))
        step = tf.constant(int(self.step.numpy()), tf.int64)
        if transform is not None:
            transform = tuple(tf.convert_to_tensor(t, tf.float32) for t in transform)
        losses, applied, _, _ = self.train_step(local, step, tf.constant(False), transform)
        self.step.assign_add(1)
        return {k: float(v) for k, v in losses.items()}, bool(applied)


__all__ = [
    "DatasetFn",
    "TrainingTask",
    "default_dataset_fn",
    "epoch_examples",
    "global_transform",
    "learning_rate",
    "replica_batch_size",
    "restart_optimizer",
]
