"""The training loop: tf.distribute, mixed precision, checkpoints, TensorBoard, NaN skipping.

The paper's optimisation (Sup. Mat. A): Adam, one optimiser per module as the original
(segmentation and reconstruction modules, each with its own learning rate, betas
(0.5, 0.999)), learning rates x0.1 at the epoch milestones (the original's MultiStepLR),
objective = sum of the model's weighted loss terms (perceptual Eq. 6 + equivariance).
An optional segmentation warm-up (`train_params.segmentation_warmup`) slows the segmenter for
the first epochs, then restarts both optimisers: a two-stage run in one command.

Distribution. Every replica computes its loss terms as means over its own part of the global
batch, so the objective of the global batch is the mean over replicas: each replica takes
the gradient of `objective / num_replicas`, and the optimiser sums them (all-reduce). Batch
norm statistics are synchronised across replicas when `sync_batch_norm` is on, as the
original. The equivariance warp is drawn for the whole global batch from a stateless seed
(seed, step) and sliced per replica, so one device and N devices see the same warps.

Robustness. A step whose objective or gradient is non-finite on any replica is skipped by
all of them (the decision is all-reduced): no weight, optimiser slot or batch-norm statistic
changes. After `train_params.max_nonfinite_steps` skipped steps in a row training stops with
`NonFiniteLossError`; no checkpoint is written during such a streak, so the newest
checkpoint is the last good state.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from coseg_tf import config as config_lib
from coseg_tf import geometry, visualize
from coseg_tf.checkpoints import (
    RunMismatchError,
    check_run_dir,
    load_initial_weights,
    model_mismatch,
    model_variables,
    restore_newest_readable,
    save_final,
)
from coseg_tf.config import PRECISIONS
from coseg_tf.distribute import (
    STRATEGIES,
    apply_mixed_precision,
    cpu_has_native_bf16,
    is_chief,
    make_strategy,
    resolve_precision,
)
from coseg_tf.losses import EquivarianceTransform, random_warp
from coseg_tf.model import build_model
from coseg_tf.optimizers import TorchAdam

# The learning-rate decay at each epoch milestone, as the original's MultiStepLR(gamma=0.1).
MILESTONE_DECAY = 0.1
# PyTorch's Adam epsilon (Keras' default is 1e-7).
ADAM_EPSILON = 1e-8
# A training budget below this many steps is warned about: too short to learn parts.
TINY_BUDGET = 100
FLOAT16_INITIAL_LOSS_SCALE = 2.0**10

DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT: a checkpoint was written and training stopped; resume with the same command."""


@dataclasses.dataclass
class TrainOptions:
    """How to run training (everything that is not the method's config)."""

    model_dir: str
    strategy: str = "default"
    mixed_precision: str = "off"
    xla: bool = False
    seed: int = 0
    init_weights: str | None = None
    # The budget in steps (counted from the run's start), whatever the config's num_epochs:
    # more epochs are run if it needs them. max_epochs caps both. See `training_budget`.
    max_steps: int | None = None
    max_epochs: int | None = None
    # Checkpoint every N steps (0: only every `checkpoint_freq` epochs and at the end).
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    image_every: int = 500
    log_every: int = 10
    progress: bool = True


@dataclasses.dataclass
class TrainResult:
    """What a run did, for the command line, the demo and the tests."""

    step: int
    epoch: int
    skipped_steps: int
    losses: dict[str, float]
    final_dir: str | None
    checkpoint: str | None
    seconds: float


def learning_rate(
    base: float,
    epoch: int,
    milestones: list[int] | tuple[int, ...],
    warmup: Mapping[str, Any] | None = None,
) -> float:
    """MultiStepLR: base x 0.1 for every milestone <= epoch (epochs counted from 0), times
    `warmup["factor"]` while epoch < `warmup["epochs"]`."""
    lr = float(base) * MILESTONE_DECAY ** sum(1 for m in milestones if epoch >= int(m))
    if warmup and epoch < int(warmup["epochs"]):
        lr *= float(warmup["factor"])
    return lr


def restart_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
    """Zeroes an optimiser's step count and slots (Adam's moments), keeping its learning rate:
    the state of a freshly built optimiser (a loss-scale wrapper keeps its scale)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    for variable in inner.variables:
        if variable.path != inner.learning_rate.path:
            variable.assign(tf.zeros_like(variable))


def global_transform(
    seed: tf.Tensor, step: tf.Tensor, global_batch: int, params: Mapping[str, Any]
) -> tuple[tf.Tensor, tf.Tensor]:
    """The equivariance warp parameters of the whole global batch: theta [G,2,3], tps [G,1,P].

    `losses.random_warp` from the stateless seed (seed, step), so that every replica draws
    the same warps and takes its own rows.
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


def training_budget(
    num_epochs: int, steps_per_epoch: int, max_steps: int | None = None, max_epochs: int | None = None
) -> tuple[int, int]:
    """How long a run trains: (epochs, steps).

    Args:
      num_epochs: The config's `train_params.num_epochs`.
      steps_per_epoch: Global steps in one epoch.
      max_steps: `--steps`: the budget in steps; sets it, beyond num_epochs if need be.
      max_epochs: `--epochs`: a cap on the epochs (of the config's or of `max_steps`'s).

    Returns:
      The number of epochs to enter and the global step to stop at.
    """
    if max_steps is None:
        epochs = num_epochs if max_epochs is None else min(num_epochs, max_epochs)
        return epochs, epochs * steps_per_epoch
    steps = max_steps if max_epochs is None else min(max_steps, max_epochs * steps_per_epoch)
    return -(-steps // steps_per_epoch), steps


def _format_seconds(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# ----------------------------------------------------------------------------- the trainer


def resolve_config(
    name_or_path: str, overrides: list[str], data_dir: str | None, variant: str | None
) -> dict[str, Any]:
    """The config of the command line: file or packaged name, then --set, --data_dir, --variant.

    `data_dir` is a path and is set as given: a `--set` value is parsed as YAML, which would
    cut a folder named `my data #1` at the `#` or read `a: b` as a mapping.
    """
    path = config_lib.config_path(name_or_path)
    extra = list(overrides)
    if variant:
        extra.append(f"model_params.variant={variant}")
    config = config_lib.load_config(path, extra)
    if data_dir:
        config["dataset_params"]["root_dir"] = data_dir
    return config


def default_dataset_fn(config: Mapping[str, Any], seed: int) -> DatasetFn:
    """Per-replica frame pairs of the config's training split, reshuffled per epoch."""
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
    """Frame pairs in one epoch of the training split (videos or identities x num_repeats)."""
    from coseg_tf.data import epoch_size

    return epoch_size(config["dataset_params"], num_repeats=int(config["train_params"]["num_repeats"]))


class Trainer:
    """Builds the model and optimisers under a strategy and runs the training loop.

    `dataset_fn(input_context, epoch)` gives the per-replica batches of one epoch (default:
    the config's data set); `steps_per_epoch` defaults to floor(epoch examples / global batch).
    Every worker runs exactly that many steps per epoch from a repeated pipeline, so that
    no worker waits for a batch that another one does not have.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        options: TrainOptions,
        *,
        dataset_fn: DatasetFn | None = None,
        steps_per_epoch: int | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        options = dataclasses.replace(options, mixed_precision=resolve_precision(options.mixed_precision))
        if options.mixed_precision not in PRECISIONS:
            raise ValueError(f"unknown mixed precision {options.mixed_precision!r}; choose from {PRECISIONS}")
        self.config = dict(config)
        self.options = options
        self.train_params = self.config["train_params"]
        self.strategy = strategy or make_strategy(options.strategy)
        self.num_replicas = int(self.strategy.num_replicas_in_sync)
        self.global_batch = int(self.train_params["batch_size"])
        if self.global_batch % self.num_replicas:
            raise ValueError(
                f"batch_size {self.global_batch} is not divisible by {self.num_replicas} replicas"
            )
        self.per_replica_batch = self.global_batch // self.num_replicas
        sync_bn = bool(self.config["model_params"]["common_params"]["sync_batch_norm"])
        if options.xla and sync_bn and self.num_replicas > 1:
            # The compiled forward/backward is a nested function; an all-reduce inside it
            # (synchronised batch norm) cannot be placed there by tf.distribute.
            raise ValueError(
                "--xla with synchronised batch norm on several replicas is not supported; use "
                "--noxla or --set model_params.common_params.sync_batch_norm=false"
            )
        self.chief = is_chief(self.strategy)
        # Before the data is read or the model built: a run directory of another run is refused.
        config_lib.check_frame_size(self.config)
        check_run_dir(options.model_dir, self.config)
        self.dataset_fn = dataset_fn or default_dataset_fn(self.config, options.seed)
        if steps_per_epoch is None:
            steps_per_epoch = epoch_examples(self.config) // self.global_batch
        if steps_per_epoch < 1:
            raise ValueError(
                "an epoch is shorter than one global batch: raise num_repeats or lower batch_size"
            )
        self.steps_per_epoch = int(steps_per_epoch)
        self.fp16 = options.mixed_precision == "mixed_float16"
        self.max_nonfinite = int(self.train_params["max_nonfinite_steps"])

        keras.utils.set_random_seed(options.seed)
        with self.strategy.scope():
            self.model = build_model(self.config, seed=options.seed)
            apply_mixed_precision(self.model, options.mixed_precision)
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
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
            self.nonfinite_total = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_total")
        self.nonfinite_in_row = 0
        self.state_variables = [v for m in self.modules for v in m.non_trainable_variables]
        self.checkpoint = tf.train.Checkpoint(
            model_variables=model_variables(self.model),
            segmenter_optimizer=self.optimizers[0],
            generator_optimizer=self.optimizers[1],
            step=self.step,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            nonfinite_total=self.nonfinite_total,
        )
        self.checkpoint_dir = self._checkpoint_dir()
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.checkpoint_dir, max_to_keep=max(1, options.keep_checkpoints)
        )
        self._train_step = tf.function(self._distributed_step)
        self._grad_fn = (
            tf.function(self._forward_backward, jit_compile=True) if options.xla else (self._forward_backward)
        )
        self._visual_fn = tf.function(lambda batch: self.model(batch, training=False))
        self._stop_requested = threading.Event()

    # -- paths

    def _checkpoint_dir(self) -> str:
        folder = f"{self.options.model_dir.rstrip('/')}/checkpoints"
        if self.chief:
            return folder
        # Non-chief workers must take part in saving, but into a scratch folder of their own.
        resolver = self.strategy.cluster_resolver
        return f"{self.options.model_dir.rstrip('/')}/worker_scratch/{resolver.task_type}_{resolver.task_id}"

    # -- one step

    def _forward_backward(self, batch: dict[str, tf.Tensor], theta: tf.Tensor, tps: tf.Tensor):
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
    ):
        ctx = tf.distribute.get_replica_context()
        rid = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
        if transform is None:
            transform = global_transform(
                self.options.seed, step, self.global_batch, self.train_params["transform_params"]
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

    def _apply_if_finite(self, strategy: tf.distribute.Strategy, grads, ok) -> tf.Tensor:
        """Cross-replica: apply every replica's gradients (the optimisers all-reduce them) or none.

        `cond` must run here, in cross-replica context: a branch that all-reduces cannot
        run under a replica-local `cond`. All replicas computed the same `ok`.
        """
        ok = strategy.experimental_local_results(ok)[0]

        def apply_on_replica(grads):
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

    def _distributed_step(self, batch, step: tf.Tensor, stop: tf.Tensor, transform=None):
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
        losses, applied, _, _ = self._train_step(local, step, tf.constant(False), transform)
        self.step.assign_add(1)
        return {k: float(v) for k, v in losses.items()}, bool(applied)

    # -- the loop

    def _set_learning_rates(self, epoch: int) -> list[float]:
        milestones = list(self.train_params["epoch_milestones"] or [])
        segmenter, generator = self.base_lrs
        lrs = [
            learning_rate(segmenter, epoch, milestones, self.train_params["segmentation_warmup"]),
            learning_rate(generator, epoch, milestones),
        ]
        for optimizer, lr in zip(self.optimizers, lrs, strict=True):
            optimizer.learning_rate = lr
        return lrs

    def _end_warmup_if_due(self, epoch: int) -> None:
        """At the first step after the segmentation warm-up, both optimisers restart.

        A checkpoint written at the end of the warm-up holds the warm-up's optimiser state, so
        resuming from it restarts them here too; one written later holds the restarted state.
        """
        warmup_epochs = int(self.train_params["segmentation_warmup"]["epochs"])
        if warmup_epochs and epoch == warmup_epochs and int(self.step_in_epoch.numpy()) == 0:
            for optimizer in self.optimizers:
                restart_optimizer(optimizer)
            logging.info("segmentation warm-up done after %d epochs: optimisers restarted", warmup_epochs)

    def _distributed_epoch(self, epoch: int, skip: int):
        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self.dataset_fn(context, epoch).repeat().skip(skip)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def _save(self, reason: str) -> str:
        path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.chief:
            tf.io.gfile.rmtree(self.checkpoint_dir)
        logging.info("checkpoint (%s): %s", reason, path)
        return path

    def restore_or_initialise(self) -> str:
        """Resumes from the model directory's newest readable checkpoint, else loads init weights."""
        path = restore_newest_readable(self.checkpoint, self.manager) if self.chief else None
        if not self.chief:
            # Non-chief workers restore from the chief's folder (the shared model directory).
            chief_manager = tf.train.CheckpointManager(
                self.checkpoint, f"{self.options.model_dir.rstrip('/')}/checkpoints", max_to_keep=None
            )
            path = restore_newest_readable(self.checkpoint, chief_manager)
        if path:
            return f"resumed from {path} (step {int(self.step.numpy())}, epoch {int(self.epoch.numpy())})"
        if self.options.init_weights:
            with self.strategy.scope():
                return load_initial_weights(self.model, self.options.init_weights)
        return "initialised from scratch"

    def _write_images(self, writer, batch, step: int) -> None:
        local = {k: self.strategy.experimental_local_results(v)[0] for k, v in batch.items()}
        local = {k: v[: min(4, int(v.shape[0]))] for k, v in local.items()}
        out = tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, self._visual_fn(local))
        kp_size = int(self.config["visualizer_params"]["kp_size"])
        grid = visualize.visual_grid({k: v.numpy() for k, v in local.items()}, out, kp_size)
        with writer.as_default(step=step):
            tf.summary.image(
                "source|target|deformed|reconstruction|parts|keypoints", grid[None], max_outputs=1
            )

    def _request_stop(self, signum: int, frame: Any) -> None:
        logging.warning(
            "signal %d: stopping after the next step (all workers agree on it) with a checkpoint", signum
        )
        self._stop_requested.set()

    def train(self) -> TrainResult:
        """Runs (or resumes) training to the configured end; returns what it did."""
        start_time = time.time()
        model_dir = self.options.model_dir.rstrip("/")
        # Restored (or initial weights loaded) before anything is written: bad --init_weights
        # leaves no run directory behind.
        logging.info("%s", self.restore_or_initialise())
        tf.io.gfile.makedirs(model_dir)
        if self.chief:
            # The resolved config beside the checkpoints, so a run can be reproduced from them.
            tf.io.gfile.makedirs(self.checkpoint_dir)
            config_lib.save_config(self.config, f"{model_dir}/config.yaml")
            config_lib.save_config(self.config, f"{self.checkpoint_dir}/config.yaml")
        num_epochs, total_steps = training_budget(
            int(self.train_params["num_epochs"]),
            self.steps_per_epoch,
            self.options.max_steps,
            self.options.max_epochs,
        )
        if self.chief:
            logging.info(
                "budget: %d steps (%d epochs of %d steps: %d pairs per epoch / global batch %d)",
                total_steps,
                num_epochs,
                self.steps_per_epoch,
                self.steps_per_epoch * self.global_batch,
                self.global_batch,
            )
            if total_steps < TINY_BUDGET:
                logging.warning(
                    "a budget of %d steps is too short to learn parts (the packaged configs train "
                    "thousands); give --steps, or raise train_params.num_epochs or num_repeats",
                    total_steps,
                )
        writer = tf.summary.create_file_writer(f"{model_dir}/logs/train") if self.chief else None
        if self.chief:
            self._write_run_info(model_dir, total_steps)
        handlers = self._install_signal_handlers()
        progbar = None
        if self.chief and self.options.progress and sys.stdout.isatty():
            progbar = keras.utils.Progbar(total_steps, verbose=1, unit_name="step")
        self._run_start = (time.time(), int(self.step.numpy()))
        last_losses: dict[str, float] = {}
        last_checkpoint = self.manager.latest_checkpoint
        step = int(self.step.numpy())
        try:
            while step < total_steps and int(self.epoch.numpy()) < num_epochs:
                epoch = int(self.epoch.numpy())
                self._end_warmup_if_due(epoch)
                lrs = self._set_learning_rates(epoch)
                iterator = self._distributed_epoch(epoch, int(self.step_in_epoch.numpy()))
                last_checkpoint, last_losses, stopped = self._run_epoch(
                    iterator, epoch, total_steps, lrs, writer, progbar, last_checkpoint, last_losses
                )
                step = int(self.step.numpy())
                if stopped:
                    break
        finally:
            self._restore_signal_handlers(handlers)
            if writer is not None:
                writer.flush()
        if self._stop_requested.is_set():
            raise TrainingInterrupted(f"stopped at step {step}; checkpoint {last_checkpoint}")
        if self.manager.latest_checkpoint is None or self._checkpoint_step() != step:
            last_checkpoint = self._save("end of training")
        final_dir = save_final(self.model, self.config, f"{model_dir}/final") if self.chief else None
        return TrainResult(
            step=step,
            epoch=int(self.epoch.numpy()),
            skipped_steps=int(self.nonfinite_total.numpy()),
            losses=last_losses,
            final_dir=final_dir,
            checkpoint=last_checkpoint,
            seconds=time.time() - start_time,
        )

    def _checkpoint_step(self) -> int:
        latest = self.manager.latest_checkpoint
        return int(latest.rsplit("-", 1)[-1]) if latest else -1

    def _run_epoch(self, iterator, epoch, total_steps, lrs, writer, progbar, last_checkpoint, last_losses):
        options = self.options
        checkpoint_freq = max(1, int(self.train_params["checkpoint_freq"]))
        tick, tick_step = time.time(), int(self.step.numpy())
        while True:
            step = int(self.step.numpy())
            if step >= total_steps:
                return last_checkpoint, last_losses, True
            batch = next(iterator)
            stop = tf.constant(self._stop_requested.is_set())
            losses, applied, loss_ok, stop_all = self._train_step(batch, tf.constant(step, tf.int64), stop)
            losses = {k: float(v) for k, v in losses.items()}
            self.step.assign_add(1)
            self.step_in_epoch.assign_add(1)
            step += 1
            if bool(applied):
                self.nonfinite_in_row = 0
                last_losses = losses
            elif self._is_loss_scale_overflow(bool(loss_ok)):
                logging.info("step %d skipped: float16 gradient overflow, loss scale lowered", step)
            else:
                self.nonfinite_in_row += 1
                self.nonfinite_total.assign_add(1)
                logging.warning(
                    "step %d skipped: non-finite loss or gradient (%d in a row, %d in total); losses %s",
                    step,
                    self.nonfinite_in_row,
                    int(self.nonfinite_total.numpy()),
                    losses,
                )
                if self.nonfinite_in_row >= self.max_nonfinite:
                    raise NonFiniteLossError(
                        f"{self.nonfinite_in_row} consecutive steps had a non-finite loss or gradient "
                        f"(up to step {step}); stopping. The last good checkpoint is {last_checkpoint}. "
                        "Lower the learning rates, check the data for broken frames, or try without "
                        "mixed precision; raise train_params.max_nonfinite_steps to tolerate longer streaks."
                    )
            if self.step_in_epoch.numpy() >= self.steps_per_epoch:
                self.epoch.assign_add(1)
                self.step_in_epoch.assign(0)
            total = sum(losses.values())
            if progbar is not None:
                progbar.update(step, [("loss", total)] + list(losses.items()))
            if writer is not None and (step % max(1, options.log_every) == 0 or step == total_steps):
                now = time.time()
                with writer.as_default(step=step):
                    for name, value in losses.items():
                        tf.summary.scalar(f"loss/{name}", value)
                    tf.summary.scalar("loss/total", total)
                    tf.summary.scalar("learning_rate/segmentation", lrs[0])
                    tf.summary.scalar("learning_rate/reconstruction", lrs[1])
                    tf.summary.scalar("skipped_steps", int(self.nonfinite_total.numpy()))
                    if self.fp16:
                        tf.summary.scalar("loss_scale", float(self.optimizers[0].dynamic_scale.numpy()))
                    if now > tick:
                        tf.summary.scalar("steps_per_second", (step - tick_step) / (now - tick))
                tick, tick_step = now, step
            if (
                progbar is None
                and self.chief
                and options.progress
                and (step % max(1, options.log_every) == 0 or step == total_steps)
            ):
                self._log_line(step, total_steps, epoch, total, losses)
            if writer is not None and options.image_every and step % options.image_every == 0:
                self._write_images(writer, batch, step)
            epoch_done = int(self.step_in_epoch.numpy()) == 0
            due = (options.checkpoint_every and step % options.checkpoint_every == 0) or (
                epoch_done and (epoch + 1) % checkpoint_freq == 0
            )
            if bool(stop_all):
                self._stop_requested.set()
                return self._save("stop requested"), last_losses, True
            if due and self.nonfinite_in_row == 0:
                last_checkpoint = self._save(f"step {step}")
            if epoch_done:
                return last_checkpoint, last_losses, False

    def _log_line(self, step: int, total_steps: int, epoch: int, total: float, losses: dict) -> None:
        """The progress line when stdout is not a terminal: step, losses, speed and ETA."""
        start, start_step = self._run_start
        elapsed = time.time() - start
        rate = (step - start_step) / elapsed if elapsed > 0 else 0.0
        eta = (total_steps - step) / rate if rate > 0 else float("nan")
        terms = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
        logging.info(
            "step %d/%d (epoch %d) loss=%.4f %s | %.2f steps/s, ETA %s",
            step,
            total_steps,
            epoch,
            total,
            terms,
            rate,
            _format_seconds(eta),
        )

    def _is_loss_scale_overflow(self, loss_ok: bool) -> bool:
        """A float16 step with a finite loss whose scaled gradients overflowed.

        Dynamic loss scaling expects these (the scale is halved, as LossScaleOptimizer does);
        they count as non-finite steps only once the scale has fallen to 1.
        """
        return self.fp16 and loss_ok and float(self.optimizers[0].dynamic_scale.numpy()) >= 1.0

    def _write_run_info(self, model_dir: str, total_steps: int) -> None:
        info = {
            "strategy": self.options.strategy,
            "num_replicas": self.num_replicas,
            "global_batch": self.global_batch,
            "per_replica_batch": self.per_replica_batch,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": total_steps,
            "mixed_precision": self.options.mixed_precision,
            "xla": self.options.xla,
            "seed": self.options.seed,
        }
        with tf.io.gfile.GFile(f"{model_dir}/run_info.json", "w") as f:
            json.dump(info, f, indent=1)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._request_stop)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def train(config: Mapping[str, Any], options: TrainOptions, **kwargs: Any) -> TrainResult:
    """Builds a `Trainer` and runs it (see `Trainer` for the keyword arguments)."""
    return Trainer(config, options, **kwargs).train()


__all__ = [
    "PRECISIONS",
    "STRATEGIES",
    "NonFiniteLossError",
    "RunMismatchError",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "apply_mixed_precision",
    "check_run_dir",
    "cpu_has_native_bf16",
    "is_chief",
    "learning_rate",
    "load_initial_weights",
    "make_strategy",
    "model_mismatch",
    "model_variables",
    "resolve_precision",
    "restart_optimizer",
    "restore_newest_readable",
    "save_final",
    "train",
    "training_budget",
]
