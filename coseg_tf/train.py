"""`coseg-train`: trains the co-part segmentation model from a config (also `python -m coseg_tf.train`).

Example:
  coseg-train --config=synthetic --data_dir=runs/demo/data/png --model_dir=runs/synthetic

Re-running the same command resumes from the newest readable checkpoint in --model_dir.
"""

from __future__ import annotations

from absl import app, flags, logging

from coseg_tf import cli
from coseg_tf import config as config_lib

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """The command's flags, defined when it runs (importing the module defines none)."""
    flags.DEFINE_string(
        "config",
        "synthetic",
        "Config: a YAML path (any tf.io.gfile path) or the name of a packaged config "
        "(synthetic, tiny, taichi-256-sem, vox-256-sem-10segments, ...).",
    )
    flags.DEFINE_string("data_dir", None, "Dataset root; overrides dataset_params.root_dir of the config.")
    flags.DEFINE_string(
        "model_dir",
        None,
        "Output directory: checkpoints/, logs/ (TensorBoard), final/ (trained weights), config.yaml. "
        "An existing one is resumed from.",
    )
    flags.DEFINE_enum(
        "strategy",
        "default",
        ["default", "mirrored", "multi_worker"],
        "Distribution: default (one device), mirrored (all local GPUs, else all logical CPUs), "
        "multi_worker (MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG).",
    )
    flags.DEFINE_enum(
        "mixed_precision",
        "auto",
        list(config_lib.PRECISIONS),
        "Mixed precision of the conv layers (geometry and losses stay float32). auto: "
        "mixed_bfloat16 on a CPU with native bf16 (AVX512-BF16/AMX; 1.4-2.1x fewer s/step there), else off. "
        "mixed_float16 (GPUs) uses dynamic loss scaling.",
    )
    flags.DEFINE_boolean("xla", False, "Compile the forward and backward pass with XLA (jit_compile).")
    flags.DEFINE_enum(
        "variant",
        None,
        list(config_lib.VARIANTS),
        "Ablation variant of paper Table 1(b); overrides model_params.variant.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, data order and equivariance warps.")
    flags.DEFINE_string(
        "init_weights",
        None,
        "Initial weights when not resuming: an original checkpoint (.pth.tar/.pth/.npz of this "
        "paper or of First Order Motion Model), one of our checkpoints (prefix, checkpoints/ "
        "folder or model_dir) or a final/ folder.",
    )
    flags.DEFINE_multi_string(
        "set",
        [],
        "Config override section.key=value (YAML value), repeatable, e.g. --set train_params.batch_size=8.",
    )
    flags.DEFINE_integer(
        "steps",
        None,
        "Training budget in steps, counted from the run's start: more epochs are run when it "
        "exceeds num_epochs x steps per epoch (default: the config's num_epochs).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "epochs", None, "Stop after this many epochs (caps train_params.num_epochs).", lower_bound=1
    )
    flags.DEFINE_integer(
        "checkpoint_every",
        0,
        "Also checkpoint every N steps (0: every train_params.checkpoint_freq epochs and at the end).",
        lower_bound=0,
    )
    flags.DEFINE_integer("keep_checkpoints", 3, "How many recent checkpoints to keep.", lower_bound=1)
    flags.DEFINE_integer(
        "image_every", 500, "Write TensorBoard images every N steps (0: never).", lower_bound=0
    )
    flags.DEFINE_integer(
        "log_every",
        10,
        "Write TensorBoard scalars (and progress lines off a terminal) every N steps.",
        lower_bound=1,
    )
    flags.DEFINE_boolean("progress", True, "Show progress (a bar on a terminal, log lines otherwise).")


def _run(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required")
    cli.check_output_dir(FLAGS.model_dir, "--model_dir")
    logging.set_verbosity(logging.INFO)
    return _train()


def _train() -> int:
    """Trains as the flags say; returns the exit status (3: non-finite loss, 143: interrupted)."""
    config = cli.resolve_config(FLAGS.config, FLAGS.set, FLAGS.data_dir, FLAGS.variant)
    cli.check_weights_file(FLAGS.init_weights)
    from coseg_tf import trainer  # after the checks above: a bad config or weights file fails at once

    options = trainer.TrainOptions(
        model_dir=FLAGS.model_dir,
        strategy=FLAGS.strategy,
        mixed_precision=FLAGS.mixed_precision,
        xla=FLAGS.xla,
        seed=FLAGS.seed,
        init_weights=FLAGS.init_weights,
        max_steps=FLAGS.steps,
        max_epochs=FLAGS.epochs,
        checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints,
        image_every=FLAGS.image_every,
        log_every=FLAGS.log_every,
        progress=FLAGS.progress,
    )
    try:
        result = trainer.train(config, options)
    except trainer.NonFiniteLossError as e:
        logging.error("%s", e)
        return 3
    except trainer.TrainingInterrupted as e:
        logging.warning("%s; run the same command again to resume", e)
        return 143
    print(
        f"trained {result.step} steps ({result.epoch} epochs) in {result.seconds:.0f} s; "
        f"skipped {result.skipped_steps} non-finite steps"
    )
    print(f"checkpoint: {result.checkpoint}")
    if result.final_dir:
        print(f"final weights: {result.final_dir}")
    print(f"TensorBoard: tensorboard --logdir {FLAGS.model_dir.rstrip('/')}/logs")
    return 0


def main() -> None:
    """Console-script entry point (`coseg-train`)."""
    cli.run(_run, _define_flags, "coseg-train")


if __name__ == "__main__":
    main()
