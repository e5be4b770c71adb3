"""The training loop: epochs, checkpoints, TensorBoard, signals, streaks of skipped steps.

`Trainer` builds a `coseg_tf.task.TrainingTask` (the model, its optimisers and the
distributed step) and runs it over the epochs of the budget (`training_budget`): the
learning rates of each epoch, progress lines, TensorBoard summaries and images, checkpoints
every N steps or epochs (resumed from the newest readable one), and a checkpoint then a stop on
SIGTERM/SIGINT at a step that every worker agrees on.

Robustness. The task skips a step whose objective or gradient is non-finite on any replica.
After `train_params.max_nonfinite_steps` skipped steps in a row training stops with
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
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from coseg_tf import config as config_lib
from coseg_tf import visualize
from coseg_tf.checkpoints import (
    check_run_dir,
    load_initial_weights,
    model_variables,
    restore_newest_readable,
    save_final,
)
from coseg_tf.distribute import is_chief, make_strategy, resolve_precision
from coseg_tf.task import DatasetFn, TrainingTask, default_dataset_fn, epoch_examples, replica_batch_size

# A training budget below this many steps is warned about: too short to learn parts.
TINY_BUDGET = 100


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


class Trainer:
    """Builds a `TrainingTask` (model, optimisers, step) under a strategy and runs the loop.

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
        self.config = dict(config)
        self.options = options
        self.train_params = self.config["train_params"]
        self.strategy = strategy or make_strategy(options.strategy)
        # A batch the replicas cannot share is refused before anything is read or built.
        replica_batch_size(self.config, int(self.strategy.num_replicas_in_sync), options.xla)
        self.chief = is_chief(self.strategy)
        # Before the data is read or the model built: a run directory of another run is refused.
        config_lib.check_frame_size(self.config)
        check_run_dir(options.model_dir, self.config)
        self.dataset_fn = dataset_fn or default_dataset_fn(self.config, options.seed)
        if steps_per_epoch is None:
            steps_per_epoch = epoch_examples(self.config) // int(self.train_params["batch_size"])
        if steps_per_epoch < 1:
            raise ValueError(
                "an epoch is shorter than one global batch: raise num_repeats or lower batch_size"
            )
        self.steps_per_epoch = int(steps_per_epoch)
        self.max_nonfinite = int(self.train_params["max_nonfinite_steps"])

        self.task = TrainingTask(
            self.config,
            self.strategy,
            seed=options.seed,
            mixed_precision=options.mixed_precision,
            xla=options.xla,
        )
        with self.strategy.scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
            self.nonfinite_total = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_total")
        self.nonfinite_in_row = 0
        self.checkpoint = tf.train.Checkpoint(
            model_variables=model_variables(self.task.model),
            segmenter_optimizer=self.task.optimizers[0],
            generator_optimizer=self.task.optimizers[1],
            step=self.task.step,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            nonfinite_total=self.nonfinite_total,
        )
        self.checkpoint_dir = self._checkpoint_dir()
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.checkpoint_dir, max_to_keep=max(1, options.keep_checkpoints)
        )
        self._visual_fn = tf.function(lambda batch: self.task.model(batch, training=False))
        self._stop_requested = threading.Event()

    # -- paths

    def _checkpoint_dir(self) -> str:
        folder = f"{self.options.model_dir.rstrip('/')}/checkpoints"
        if self.chief:
            return folder
        # Non-chief workers must take part in saving, but into a scratch folder of their own.
        resolver = self.strategy.cluster_resolver
        return f"{self.options.model_dir.rstrip('/')}/worker_scratch/{resolver.task_type}_{resolver.task_id}"

    # -- the loop

    def _distributed_epoch(self, epoch: int, skip: int):
        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self.dataset_fn(context, epoch).repeat().skip(skip)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def _save(self, reason: str) -> str:
        path = self.manager.save(checkpoint_number=int(self.task.step.numpy()))
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
            return (
                f"resumed from {path} (step {int(self.task.step.numpy())}, epoch {int(self.epoch.numpy())})"
            )
        if self.options.init_weights:
            with self.strategy.scope():
                return load_initial_weights(self.task.model, self.options.init_weights)
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
                self.steps_per_epoch * self.task.global_batch,
                self.task.global_batch,
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
        self._run_start = (time.time(), int(self.task.step.numpy()))
        last_losses: dict[str, float] = {}
        last_checkpoint = self.manager.latest_checkpoint
        step = int(self.task.step.numpy())
        try:
            while step < total_steps and int(self.epoch.numpy()) < num_epochs:
                epoch = int(self.epoch.numpy())
                self.task.end_warmup_if_due(epoch, int(self.step_in_epoch.numpy()))
                lrs = self.task.set_learning_rates(epoch)
                iterator = self._distributed_epoch(epoch, int(self.step_in_epoch.numpy()))
                last_checkpoint, last_losses, stopped = self._run_epoch(
                    iterator, epoch, total_steps, lrs, writer, progbar, last_checkpoint, last_losses
                )
                step = int(self.task.step.numpy())
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
        final_dir = save_final(self.task.model, self.config, f"{model_dir}/final") if self.chief else None
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
        tick, tick_step = time.time(), int(self.task.step.numpy())
        while True:
            step = int(self.task.step.numpy())
            if step >= total_steps:
                return last_checkpoint, last_losses, True
            batch = next(iterator)
            stop = tf.constant(self._stop_requested.is_set())
            losses, applied, loss_ok, stop_all = self.task.train_step(
                batch, tf.constant(step, tf.int64), stop
            )
            losses = {k: float(v) for k, v in losses.items()}
            self.task.step.assign_add(1)
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
                    if self.task.fp16:
                        tf.summary.scalar("loss_scale", self.task.loss_scale())
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
        return self.task.fp16 and loss_ok and self.task.loss_scale() >= 1.0

    def _write_run_info(self, model_dir: str, total_steps: int) -> None:
        info = {
            "strategy": self.options.strategy,
            "num_replicas": self.task.num_replicas,
            "global_batch": self.task.global_batch,
            "per_replica_batch": self.task.per_replica_batch,
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
    """Builds a `Trainer` and runs it (see `Trainer` for the keyword arguments).

    Args:
      config: A complete config.
      options: How to run (model folder, epochs, precision, ...).
      **kwargs: `Trainer`'s keyword arguments: `dataset_fn`, `steps_per_epoch`, `strategy`.

    Returns:
      What the run did.
    """
    return Trainer(config, options, **kwargs).train()


__all__ = [
    "NonFiniteLossError",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "train",
    "training_budget",
]
