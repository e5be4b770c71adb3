"""Where a training step's time goes: each part of the step timed on its own, side by side.

  python benchmarks/step_profile.py [--sizes=64,256] [--modes=fp32,bf16] [--steps=4] [--json=out.json]

Each part runs as its own compiled function with the work the step does for it: forward and,
where the step back-propagates through it, backward (the gradients taken with respect to the
same variables as in training). Parts:
- `segmenter (x1)`: one segmenter call, forward and backward; the step makes three (source,
  target, the equivariance-warped target);
- `generator`: the reconstruction module, forward and backward;
- `perceptual @s`: VGG19 on the prediction (forward and backward) and on the target (forward)
  at pyramid scale s, with the pyramid itself;
- `equivariance warp`: the random warp of the target frame (grid sample, no gradient) and the
  shift/affine loss terms;
- `optimisers`: both Adam updates;
- `whole step`: the trainer's own step (`TrainingTask.run_step`), for the total.
The parts' sum (segmenter counted 3x) exceeds the whole step by what the parts repeat on their
own (e.g. each part's own launch); the shares are what to cut first. The fastest of the timed
repeats is reported (on a shared machine the others slow some down). The VGG19 is random (the
same cost as ImageNet weights).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "256"], "Frame sizes: 64 (synthetic config) and/or 256 (paper config).")
flags.DEFINE_list("modes", ["fp32"], "fp32 and/or bf16 (mixed_bfloat16).")
flags.DEFINE_integer("warmup", 2, "Untimed calls per part (tracing, kernel selection).")
flags.DEFINE_integer("steps", 4, "Timed calls per part.")
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")

CASES = {
    "64": ("synthetic", ["train_params.vgg_weights=none"]),
    "256": ("taichi-256-sem", ["train_params.vgg_weights=none", "train_params.batch_size=4"]),
}
PRECISIONS = {"fp32": "off", "bf16": "mixed_bfloat16"}


def _fastest(fn: Callable[[], object], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.min(times))


def profile(size: str, mode: str, warmup: int, steps: int) -> dict:
    """Seconds of each part of one training step for a (size, mode) case."""
    import tensorflow as tf

    from coseg_tf import config as config_lib
    from coseg_tf import geometry
    from coseg_tf import task as task_lib
    from coseg_tf import trainer as trainer_lib
    from coseg_tf.losses import EquivarianceTransform, equivariance_losses, image_pyramid

    name, overrides = CASES[size]
    config = config_lib.load_config(config_lib.packaged_config_path(name), overrides)
    batch = int(config["train_params"]["batch_size"])
    height, width, _ = config["dataset_params"]["frame_shape"]
    rng = np.random.default_rng(0)
    frames = {k: rng.uniform(size=(batch, height, width, 3)).astype(np.float32) for k in ("source", "target")}
    with tempfile.TemporaryDirectory() as model_dir:
        options = trainer_lib.TrainOptions(
            model_dir=model_dir, mixed_precision=PRECISIONS[mode], progress=False
        )
        trainer = trainer_lib.Trainer(
            config, options, dataset_fn=lambda context, epoch: None, steps_per_epoch=1
        )
        task = trainer.task
        model = task.model
        segmenter, generator, perceptual = model.segmenter, model.generator, model.perceptual
        source, target = tf.constant(frames["source"]), tf.constant(frames["target"])
        seg_source = segmenter(source, training=False)
        seg_target = segmenter(target, training=False)
        prediction = tf.constant(
            generator({"source": source, "seg_source": seg_source, "seg_target": seg_target})["prediction"]
        )
        params = config["train_params"]["transform_params"]
        theta, tps = task_lib.global_transform(0, 0, batch, params)
        transform = EquivarianceTransform(
            theta, geometry.make_coordinate_grid(params["points_tps"], params["points_tps"]), tps
        )

        @tf.function
        def segmenter_part():
            with tf.GradientTape() as tape:
                out = segmenter(target, training=True)
                total = sum(tf.reduce_sum(tf.cast(v, tf.float32)) for v in out.values())
            return tape.gradient(total, segmenter.trainable_variables)

        @tf.function
        def generator_part():
            with tf.GradientTape() as tape:
                out = generator(
                    {"source": source, "seg_source": seg_source, "seg_target": seg_target}, training=True
                )
                total = tf.reduce_sum(out["prediction"])
            return tape.gradient(total, generator.trainable_variables)

        def perceptual_part(scale: float):
            level = f"prediction_{scale}"

            @tf.function
            def run():
                with tf.GradientTape() as tape:
                    tape.watch(prediction)
                    predicted = image_pyramid(prediction, [scale])[level]
                    total = perceptual.level_loss(predicted, image_pyramid(target, [scale])[level])
                return tape.gradient(total, prediction)

            return run

        @tf.function
        def equivariance_part():
            warped = transform.transform_frame(target)
            # The warp's segmenter call is timed as one of the three segmenter calls.
            return warped, equivariance_losses(seg_target, seg_target, transform, 10.0, True)

        grads = [[tf.zeros_like(v) for v in m.trainable_variables] for m in task.modules]

        @tf.function
        def optimiser_part():
            for optimizer, module, g in zip(task.optimizers, task.modules, grads, strict=True):
                optimizer.apply(g, module.trainable_variables)

        parts = {"segmenter (x1)": segmenter_part, "generator": generator_part}
        if perceptual is not None:
            for scale in perceptual.scales:
                parts[f"perceptual @{scale}"] = perceptual_part(scale)
        parts["equivariance warp"] = equivariance_part
        parts["optimisers"] = optimiser_part
        parts["whole step"] = lambda: task.run_step(frames)
        seconds = {}
        for part, fn in parts.items():
            print(f"  {size}x{size} {mode}: {part} ...", file=sys.stderr, flush=True)
            seconds[part] = _fastest(fn, warmup, steps)
    whole = seconds["whole step"]
    counted = {k: v * (3 if k == "segmenter (x1)" else 1) for k, v in seconds.items() if k != "whole step"}
    return {
        "size": int(size),
        "config": name,
        "mode": mode,
        "batch": batch,
        "seconds": seconds,
        "share_of_step": {k: v / whole for k, v in counted.items()},
        "parts_sum_seconds": sum(counted.values()),
    }


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r['size']}x{r['size']} {r['config']} {r['mode']} batch {r['batch']}")
        lines.append(f"  {'part':<20} {'s':>8} {'share':>7}")
        for part, seconds in r["seconds"].items():
            share = r["share_of_step"].get(part)
            times = " (x3 per step)" if part == "segmenter (x1)" else ""
            lines.append(
                f"  {part:<20} {seconds:>8.3f} "
                + (f"{share:>6.0%}" if share is not None else f"{'':>6}")
                + times
            )
        lines.append(f"  {'parts, summed':<20} {r['parts_sum_seconds']:>8.3f}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    results = [profile(size, mode, FLAGS.warmup, FLAGS.steps) for size in FLAGS.sizes for mode in FLAGS.modes]
    report = {"results": results, "tensorflow": tf.__version__, "cpu_threads": os.cpu_count()}
    print(table(results))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    app.run(main)
