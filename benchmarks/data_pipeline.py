"""Data-pipeline throughput: frame pairs per second per layout and size, against a training step.

    python benchmarks/data_pipeline.py --json=data_pipeline.json

Generates synthetic puppet datasets at each size in every layout (plus TFRecords converted
from the stacked PNGs), then for each measures, through `make_pair_dataset` with the
original's augmentations (flips + colour jitter) on:
  - startup: seconds to the first batch (listing, probing, graph building),
  - first pass: pairs/s over the first epoch's worth of pairs (decode caches cold),
  - steady: pairs/s afterwards (caches warm), over `--seconds`.
Rows marked "no cache" decode the whole video for every pair, as the original does.

It then times training steps of the published model (`coseg_tf.model.build_model`, random
VGG weights) at each size in the same process, so that "pairs/s the pipeline gives" and
"pairs/s a training step consumes" are measured on the same machine under the same load.
Without `coseg_tf.model` it says so and reports the pipeline alone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "256"], "Frame sizes (square).")
flags.DEFINE_list(
    "layouts", ["frames", "png", "jpg", "mp4", "mov", "avi", "gif"], "Video layouts to measure."
)
flags.DEFINE_integer("videos_64", 200, "Videos per dataset at sizes <= 128.")
flags.DEFINE_integer("videos_256", 48, "Videos per dataset at larger sizes (all fit the decode cache).")
flags.DEFINE_integer("num_frames", 32, "Frames per video.")
flags.DEFINE_integer("batch_size", 20, "Batch size of the pipeline (the published configs use 20).")
flags.DEFINE_float("seconds", 5.0, "Steady-state measuring time per row.")
flags.DEFINE_bool("no_cache_rows", True, "Also measure mp4 and png decoding every pair whole (the original).")
flags.DEFINE_bool("tfrecords", True, "Also measure TFRecords converted from the png dataset.")
flags.DEFINE_list(
    "train_configs",
    ["64:tiny", "256:taichi-256-sem"],
    "size:packaged config of the model timed at that size (the published model needs >= 256).",
)
flags.DEFINE_integer("train_batch_size", 4, "Batch size of the timed training steps.")
flags.DEFINE_integer("train_steps", 3, "Timed training steps (after one warm-up step).")
flags.DEFINE_bool("train", True, "Time training steps.")
flags.DEFINE_string("workdir", None, "Where datasets are written (default: a temp dir, removed after).")
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")

AUGMENTATION = {
    "flip_param": {"horizontal_flip": True, "time_flip": True},
    "jitter_param": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
}


def measure_pipeline(
    params: dict[str, Any], batch_size: int, num_videos: int, seconds: float
) -> dict[str, float]:
    """Startup, first-pass and steady pairs/s of `make_pair_dataset` on one dataset."""
    from coseg_tf.data import make_pair_dataset

    start = time.perf_counter()
    ds = make_pair_dataset(params, batch_size=batch_size, num_repeats=10_000, seed=0)
    iterator = iter(ds)
    next(iterator)["source"].numpy()
    startup = time.perf_counter() - start
    pairs, t0 = 0, time.perf_counter()
    while pairs < num_videos:
        pairs += int(next(iterator)["source"].shape[0])
    first_pass = pairs / (time.perf_counter() - t0)
    pairs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pairs += int(next(iterator)["source"].shape[0])
    steady = pairs / (time.perf_counter() - t0)
    return {"startup_s": startup, "first_pass_pairs_per_s": first_pass, "steady_pairs_per_s": steady}


def load_training_step(config_name: str, size: int, batch_size: int) -> Callable[[dict], Any]:
    """A compiled training step (forward, all losses, backward, Adam) of the published model.

    Raises ImportError when `coseg_tf.model` is not available.
    """
    import keras
    import tensorflow as tf

    from coseg_tf import config as config_lib
    from coseg_tf import model as model_lib  # the optional part: may not exist

    config = config_lib.load_config(
        config_lib.packaged_config_path(config_name),
        [f"dataset_params.frame_shape=[{size},{size},3]", "train_params.vgg_weights=none"],
    )
    model = model_lib.build_model(config, seed=0)
    optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999)

    @tf.function
    def step(batch: dict) -> tf.Tensor:
        with tf.GradientTape() as tape:
            out = model(batch, training=True)
            loss = tf.add_n([tf.reduce_sum(v) for v in out["losses"].values()])
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return step


def measure_training_step(config_name: str, size: int, batch_size: int, steps: int) -> dict[str, Any]:
    """Seconds per training step and the pairs/s it consumes; {"available": False, ...} without a model."""
    import numpy as np
    import tensorflow as tf

    try:
        step = load_training_step(config_name, size, batch_size)
    except ImportError as e:
        return {"available": False, "reason": f"coseg_tf.model not importable ({e})"}
    except Exception as e:  # noqa: BLE001 - a model that cannot be built here must not stop the benchmark
        return {"available": False, "reason": f"{config_name} at {size}: {type(e).__name__}: {e}"[:300]}
    rng = np.random.default_rng(0)
    batch = {
        key: tf.constant(rng.uniform(0, 1, (batch_size, size, size, 3)).astype(np.float32))
        for key in ("source", "target")
    }
    start = time.perf_counter()
    try:
        step(batch).numpy()  # tracing + first step
    except Exception as e:  # noqa: BLE001
        return {"available": False, "reason": f"{config_name} at {size}: {type(e).__name__}: {e}"[:300]}
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step(batch).numpy()
    per_step = (time.perf_counter() - start) / steps
    return {
        "available": True,
        "config": config_name,
        "batch_size": batch_size,
        "warmup_s": warmup,
        "step_s": per_step,
        "pairs_per_s": batch_size / per_step,
    }


def _videos_for(size: int) -> int:
    return FLAGS.videos_64 if size <= 128 else FLAGS.videos_256


def main(argv: list[str]) -> None:
    del argv
    from coseg_tf.data import convert_to_tfrecords, synthetic

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    work = FLAGS.workdir or tempfile.mkdtemp(prefix="coseg-bench-")
    results: dict[str, Any] = {
        "machine": {"cpus": cpus, "platform": platform.platform(), "python": platform.python_version()},
        "settings": {
            "num_frames": FLAGS.num_frames,
            "batch_size": FLAGS.batch_size,
            "seconds": FLAGS.seconds,
            "augmentation": AUGMENTATION,
        },
        "pipeline": [],
        "training": [],
    }
    try:
        for size in (int(s) for s in FLAGS.sizes):
            num_videos = _videos_for(size)
            root = os.path.join(work, f"puppets{size}")
            start = time.perf_counter()
            roots = synthetic.generate_synthetic_dataset(
                root, num_videos=num_videos, num_frames=FLAGS.num_frames, size=size, formats=FLAGS.layouts
            )
            logging.info("generated %d videos at %d in %.1f s", num_videos, size, time.perf_counter() - start)
            rows: list[tuple[str, dict[str, Any]]] = [
                (fmt, {"root_dir": path, "frame_shape": [size, size, 3], "augmentation_params": AUGMENTATION})
                for fmt, path in roots.items()
            ]
            if FLAGS.no_cache_rows:
                rows += [
                    (f"{fmt} (no cache)", {**dict(rows)[fmt], "decoded_cache_mb": 0})
                    for fmt in ("png", "mp4")
                    if fmt in roots
                ]
            if FLAGS.tfrecords and "png" in roots:
                tfr = os.path.join(work, f"puppets{size}-tfrecords")
                start = time.perf_counter()
                convert_to_tfrecords({"root_dir": roots["png"], "frame_shape": [size, size, 3]}, tfr)
                logging.info("converted to TFRecords in %.1f s", time.perf_counter() - start)
                rows.append(("tfrecords", {**dict(rows)["png"], "root_dir": tfr}))
            for name, params in rows:
                measured = measure_pipeline(params, FLAGS.batch_size, num_videos, FLAGS.seconds)
                results["pipeline"].append({"size": size, "format": name, "videos": num_videos, **measured})
                logging.info("%d %s: %s", size, name, measured)
            configs = dict(item.split(":", 1) for item in FLAGS.train_configs)
            if FLAGS.train and str(size) in configs:
                trained = measure_training_step(
                    configs[str(size)], size, FLAGS.train_batch_size, FLAGS.train_steps
                )
                results["training"].append({"size": size, **trained})
    finally:
        if not FLAGS.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(results, f, indent=1)
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    training = {row["size"]: row for row in results["training"] if row.get("available")}
    print(f"\nData pipeline, {results['machine']['cpus']} CPU(s), batch {results['settings']['batch_size']}:")
    header = f"{'size':>5}  {'format':<18}{'startup s':>10}{'1st pass/s':>12}{'steady/s':>10}{'x train':>9}"
    print(header)
    print("-" * len(header))
    for row in results["pipeline"]:
        consumed = training.get(row["size"], {}).get("pairs_per_s")
        ratio = f"{row['steady_pairs_per_s'] / consumed:8.0f}x" if consumed else f"{'n/a':>9}"
        print(
            f"{row['size']:>5}  {row['format']:<18}{row['startup_s']:>10.2f}"
            f"{row['first_pass_pairs_per_s']:>12.0f}{row['steady_pairs_per_s']:>10.0f}{ratio}"
        )
    print()
    for row in results["training"]:
        if row.get("available"):
            print(
                f"training step {row['size']}x{row['size']} ({row['config']}, batch {row['batch_size']}): "
                f"{row['step_s']:.2f} s/step = {row['pairs_per_s']:.2f} pairs/s consumed"
            )
        else:
            print(f"training step {row['size']}x{row['size']}: not available: {row['reason']}")


if __name__ == "__main__":
    app.run(main)
