"""Export speed: size and single-image latency of the segmenter as Keras, SavedModel and TFLite.

  python benchmarks/export_speed.py [--config=vox-256-sem-10segments] [--size=256] [--threads=2]
      [--runs=30] [--json=out.json] [--profile]

One run measures, for the paper's configuration with random weights (latency does not depend
on the values): Keras (eager call and tf.function), the TF Serving SavedModel
(`serving_default`, the signature clients call) and each TFLite variant in the LiteRT
interpreter (XNNPACK, `--threads` threads). Latency is the median over `--runs` calls on
one image after `--warmup` untimed calls (the minimum is shown too: on a shared machine it
is the closest to an idle one); the cases take turns call by call so that load changes hit
them alike. TensorFlow is limited to the same thread count.
int8 is calibrated on smooth random images (any frames do for timing). The reference is the
original PyTorch segmenter: about 19.6 ms per 256x256 image with 2 threads on this machine
type; float32 TFLite should be no slower, the best quantised variant at most half.

`--profile` instead times where the float32 TFLite segmenter spends its time: the Python
LiteRT interpreter has no op profiler, so each stage's cost is the difference between
float32 TFLite models of the segmenter cut after consecutive stages (timed interleaved).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "vox-256-sem-10segments", "Packaged config name or YAML path.")
flags.DEFINE_integer("size", 256, "Square input size (the TFLite models' fixed size).")
flags.DEFINE_integer("threads", 2, "Threads for TensorFlow (intra-op) and the LiteRT interpreter.")
flags.DEFINE_integer("warmup", 5, "Untimed calls per case.")
flags.DEFINE_integer("runs", 30, "Timed calls per case (the median is reported).")
flags.DEFINE_list("variants", ["float32", "float16", "dynamic_int8", "int8"], "TFLite variants.")
flags.DEFINE_integer("calibration_samples", 16, "int8 calibration images.")
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
flags.DEFINE_bool("profile", False, "Per-stage profile of the float32 TFLite segmenter instead.")

REFERENCE_MS = 19.6  # original PyTorch segmenter, 256x256, 2 threads


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes spent busy since boot (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def _invoke_only(content: bytes, image: Any) -> Callable[[], object]:
    """`invoke()` of a segmenter interpreter with `image` already set: no input/output copies."""
    from coseg_tf.inference import SEGMENT_SIGNATURE, LiteRunner

    interpreter = LiteRunner(content, SEGMENT_SIGNATURE, FLAGS.threads).interpreter
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    return interpreter.invoke


def _time_interleaved(
    cases: dict[str, Callable[[], object]], warmup: int, runs: int
) -> tuple[dict[str, list[float]], float | None]:
    """Milliseconds per call of every case, the cases taking turns call by call, and the
    share of the machine's CPUs that other processes used meanwhile.

    On a shared machine the load changes from second to second; interleaving spreads it
    evenly over the cases, so their medians stay comparable with each other. With 2 threads
    on 2 cores one busy core about doubles every latency (each op waits for its slower
    thread), hence the share, which the load average (a 1-minute mean that includes this
    process) does not give.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    busy, own, wall = _machine_busy_seconds(), time.process_time(), time.perf_counter()
    for _ in range(runs):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(1000.0 * (time.perf_counter() - start))
    if busy is None:
        return times, None
    others = _machine_busy_seconds() - busy - (time.process_time() - own)
    return times, max(0.0, others / ((time.perf_counter() - wall) * os.cpu_count()))


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _model():
    """The config's segmenter with random weights, as the exporter's LoadedModel."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from coseg_tf import config as config_lib
    from coseg_tf.model import build_segmenter
    from coseg_tf.model_files import LoadedModel

    path = FLAGS.config if os.path.exists(FLAGS.config) else config_lib.packaged_config_path(FLAGS.config)
    config = config_lib.load_config(path, [f"dataset_params.frame_shape=[{FLAGS.size}, {FLAGS.size}, 3]"])
    return LoadedModel(config, build_segmenter(config), None, f"random weights ({FLAGS.config})")


def _stages(segmenter: Any) -> list[tuple[str, Callable]]:
    """(name, fn) pairs: fn runs the segmenter up to the end of the named stage.

    Follows `SegmentationModule.call` and the hourglass's halves block by block.
    """
    import tensorflow as tf

    from coseg_tf import geometry

    def prefix(n_down: int, n_up: int, heads: bool = False) -> Callable:
        def fn(images):
            skips = [geometry.antialias_downsample(images, segmenter.scale_factor)]
            for block in segmenter.predictor.encoder.down_blocks[:n_down]:
                skips.append(block(skips[-1], training=False))
            out = skips.pop()
            for block in segmenter.predictor.decoder.up_blocks[:n_up]:
                out = tf.concat([block(out, training=False), skips.pop()], axis=-1)
            if heads:
                return {f"head_{i}": x for i, x in enumerate(segmenter._head_logits(out))}
            return {"features": out}

        return fn

    encoder, decoder = segmenter.predictor.encoder.down_blocks, segmenter.predictor.decoder.up_blocks
    stages = [("anti-alias downsample: PAD, DEPTHWISE_CONV_2D 13x13 stride 4", prefix(0, 0))]
    for i, block in enumerate(encoder):
        stages.append(
            (f"{block.name}: CONV_2D 3x3 ->{block.filters} (+ReLU), AVERAGE_POOL_2D", prefix(i + 1, 0))
        )
    for i, block in enumerate(decoder):
        stages.append(
            (
                f"{block.name}: x2 nearest (CONCAT/RESHAPE), CONV_2D 3x3 ->{block.filters}, CONCAT skip",
                prefix(len(encoder), i + 1),
            )
        )
    stages.append(
        (
            "heads: one CONV_2D 7x7 (shift, affine, segmentation), STRIDED_SLICE",
            prefix(len(encoder), len(decoder), True),
        )
    )
    stages.append(
        (
            "spatial softmax, soft-argmax, affine sums, softmax (whole model)",
            lambda x: segmenter(x, training=False),
        )
    )
    return stages


def profile() -> tuple[list[dict], float | None]:
    """Cost of each stage of the float32 TFLite segmenter (differences of prefix models)."""
    from coseg_tf.export import samples, tflite

    model = _model()
    size = (FLAGS.size, FLAGS.size)
    image = samples.random_pairs(size, 1, seed=0)[0, :1]
    cases: dict[str, Callable[[], object]] = {}
    for name, fn in _stages(model.segmenter):
        content = tflite._convert(
            fn, tflite.segmenter_specs(size), tflite.SEGMENT_SIGNATURE, tflite._configure("float32", None)
        )
        cases[name] = _invoke_only(content, image)
    print(f"timing {len(cases)} prefix models x {FLAGS.runs} calls, interleaved", file=sys.stderr)
    times, others = _time_interleaved(cases, FLAGS.warmup, FLAGS.runs)
    medians = [statistics.median(t) for t in times.values()]
    total = medians[-1]
    stages = [
        {"stage": name, "latency_ms": ms - prev, "share": (ms - prev) / total}
        for name, ms, prev in zip(cases, medians, [0.0, *medians[:-1]], strict=True)
    ]
    stages.append({"stage": "total (float32 TFLite, invoke only)", "latency_ms": total, "share": 1.0})
    return stages, others


def run() -> tuple[list[dict], float | None]:
    import tensorflow as tf

    from coseg_tf import inference
    from coseg_tf.export import samples, saved_model, tflite

    model = _model()
    segmenter = model.segmenter
    size = (FLAGS.size, FLAGS.size)
    image = samples.random_pairs(size, 1, seed=0)[0, :1]
    cases: dict[str, Callable[[], object]] = {}
    sizes: dict[str, int] = {}

    with tempfile.TemporaryDirectory() as workdir:
        keras_path = os.path.join(workdir, "segmenter.keras")
        segmenter.save(keras_path)
        sizes["keras (eager)"] = sizes["keras (tf.function)"] = os.path.getsize(keras_path)
        cases["keras (eager)"] = lambda: segmenter(image, training=False)
        compiled = tf.function(lambda x: segmenter(x, training=False))
        cases["keras (tf.function)"] = lambda: compiled(image)

        exported = saved_model.export_saved_model(model, workdir, "coseg", 1, part_swap=False)
        serving = tf.saved_model.load(exported).signatures["serving_default"]
        images = tf.constant(image)
        sizes["saved_model serving_default"] = _folder_bytes(exported)
        cases["saved_model serving_default"] = lambda: serving(images=images)

        calibration = [f[None] for f in samples.random_pairs(size, FLAGS.calibration_samples, 1)[:, 0]]
        for variant in FLAGS.variants:
            content = tflite.convert_segmenter(
                model, variant, size, calibration if variant == "int8" else None
            )
            runner = inference.LiteRunner(content, tflite.SEGMENT_SIGNATURE, FLAGS.threads)
            sizes[f"tflite {variant}"] = len(content)
            cases[f"tflite {variant}"] = lambda r=runner: r(image=image)
            if variant == "float32":
                # The same model without the signature runner's input and output copies.
                sizes["tflite float32 (invoke only)"] = len(content)
                cases["tflite float32 (invoke only)"] = _invoke_only(content, image)
        print(f"timing {len(cases)} cases x {FLAGS.runs} calls, interleaved", file=sys.stderr)
        times, others = _time_interleaved(cases, FLAGS.warmup, FLAGS.runs)
    results = [
        {
            "artifact": name,
            "size_mb": sizes[name] / 1e6,
            "latency_ms": statistics.median(times[name]),
            "min_ms": min(times[name]),
        }
        for name in cases
    ]
    return results, others


def _table(results: list[dict]) -> str:
    if FLAGS.profile:
        lines = ["| stage | median (ms) | share |", "| --- | ---: | ---: |"]
        lines += [f"| {r['stage']} | {r['latency_ms']:.2f} | {100 * r['share']:.0f}% |" for r in results]
        return "\n".join(lines)
    lines = [
        "| artifact | size (MB) | median latency (ms) | min (ms) | median vs PyTorch 19.6 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['artifact']} | {r['size_mb']:.1f} | {r['latency_ms']:.1f} | {r['min_ms']:.1f} | "
            f"{r['latency_ms'] / REFERENCE_MS:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    load_start = os.getloadavg()
    results, others = profile() if FLAGS.profile else run()
    load = os.getloadavg()
    meta = {
        "config": FLAGS.config,
        "size": FLAGS.size,
        "threads": FLAGS.threads,
        "runs": FLAGS.runs,
        "reference_pytorch_ms": REFERENCE_MS,
        "load_average_1_5_15min_at_start": [round(x, 2) for x in load_start],
        "load_average_1_5_15min_at_end": [round(x, 2) for x in load],
        "cpu_count": os.cpu_count(),
        "other_processes_cpu_share_while_timing": None if others is None else round(others, 3),
    }
    print(_table(results))
    if others is not None:
        print(f"other processes used {100 * others:.0f}% of the {os.cpu_count()} CPUs while timing")
    print(json.dumps({"meta": meta, "results": results}, indent=2))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
