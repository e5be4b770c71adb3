"""Training speed: steps/s and images/s of full training steps, fp32 vs bf16 vs XLA, side by side.

  python benchmarks/training_speed.py [--sizes=64,256] [--modes=fp32,bf16,xla] [--json=out.json]
      [--baseline=REV] [--set=section.key=value ...]

`--baseline=REV` also times every case with the code of git revision REV (checked out into a
temporary worktree and run there in a subprocess, case by case alternating with this tree's),
so that a speed change is measured against its starting point in one run, on one machine.
`--set` times a config variant (e.g. a shallower perceptual loss) beside each case of this tree.

64x64: the synthetic config (its batch size); 256x256: the paper's Tai-Chi config at batch 4
(the original PyTorch implementation takes about 8.5 s per step there on 2 CPU threads).
The fastest of the timed steps is reported (the median too, in the JSON): on a shared
machine the others' jobs slow some steps down. A step is the trainer's whole distributed
step: forward, both losses, backward, the NaN check and both Adam updates. The VGG19 is
randomly initialised (same cost as ImageNet weights). Each case warms up (tracing, XLA
compilation, oneDNN kernel selection) before it is timed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "256"], "Frame sizes: 64 (synthetic config) and/or 256 (paper config).")
flags.DEFINE_list("modes", ["fp32", "bf16", "xla"], "fp32, bf16 (mixed_bfloat16), xla (fp32 + jit_compile).")
flags.DEFINE_integer("warmup", 2, "Untimed steps per case.")
flags.DEFINE_integer("steps", 4, "Timed steps per case.")
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
flags.DEFINE_multi_string(
    "set",
    [],
    "Config overrides of a variant timed beside each case of this tree (its rows are marked +set), "
    "e.g. --set train_params.loss_weights.perceptual=[10,0,0,0,0]; repeatable.",
)
flags.DEFINE_string(
    "baseline", None, "A git revision to time side by side with this tree (e.g. a956108); needs git."
)

REFERENCE_SECONDS_PER_STEP_256 = 8.5  # original PyTorch, paper config, 256x256, batch 4, 2 threads

CASES = {
    "64": ("synthetic", ["train_params.vgg_weights=none"]),
    "256": ("taichi-256-sem", ["train_params.vgg_weights=none", "train_params.batch_size=4"]),
}
MODES = {"fp32": ("off", False), "bf16": ("mixed_bfloat16", False), "xla": ("off", True)}


def measure(size: str, mode: str, warmup: int, steps: int, extra: list[str] | tuple[str, ...] = ()) -> dict:
    """Seconds per step of one (size, mode) case, with `extra` config overrides if given."""
    from coseg_tf import config as config_lib
    from coseg_tf import trainer as trainer_lib

    name, overrides = CASES[size]
    config = config_lib.load_config(config_lib.packaged_config_path(name), [*overrides, *extra])
    batch = int(config["train_params"]["batch_size"])
    height, width, _ = config["dataset_params"]["frame_shape"]
    precision, xla = MODES[mode]
    rng = np.random.default_rng(0)
    frames = {k: rng.uniform(size=(batch, height, width, 3)).astype(np.float32) for k in ("source", "target")}
    with tempfile.TemporaryDirectory() as model_dir:
        options = trainer_lib.TrainOptions(
            model_dir=model_dir, mixed_precision=precision, xla=xla, progress=False
        )
        trainer = trainer_lib.Trainer(
            config, options, dataset_fn=lambda context, epoch: None, steps_per_epoch=1
        )
        started = time.perf_counter()
        for _ in range(warmup):
            trainer.task.run_step(frames)
        warm = time.perf_counter() - started
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            _, applied = trainer.task.run_step(frames)
            times.append(time.perf_counter() - started)
            if not applied:
                raise RuntimeError(f"{size}/{mode}: a benchmark step was skipped as non-finite")
    # The fastest step: on a shared machine the median also measures the other jobs.
    seconds = float(np.min(times))
    return {
        "size": int(size),
        "config": name,
        "mode": mode,
        "overrides": list(extra),
        "batch": batch,
        "seconds_per_step": seconds,
        "steps_per_second": 1.0 / seconds,
        "images_per_second": batch / seconds,
        "median_seconds_per_step": float(np.median(times)),
        "warmup_seconds": warm,
        "step_times": times,
    }


def measure_baseline(worktree: str, size: str, mode: str, warmup: int, steps: int) -> dict:
    """One case timed with the code of a checked-out revision, in a subprocess of its own."""
    import subprocess

    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "baseline.json")
        command = [sys.executable, os.path.join(worktree, "benchmarks", "training_speed.py")]
        command += [
            f"--sizes={size}",
            f"--modes={mode}",
            f"--warmup={warmup}",
            f"--steps={steps}",
            f"--json={out}",
        ]
        # The revision's package first on the path, ahead of this tree's (editable) install.
        env = {**os.environ, "PYTHONPATH": worktree}
        subprocess.run(command, cwd=worktree, env=env, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)["results"][0]


def checkout(revision: str, directory: str) -> str:
    """A detached worktree of `revision` in `directory`; returns the full commit hash."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
        cwd=here,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        ["git", "worktree", "add", "--detach", directory, commit], cwd=here, check=True, capture_output=True
    )
    return commit


def remove_checkout(directory: str) -> None:
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(
        ["git", "worktree", "remove", "--force", directory], cwd=here, check=False, capture_output=True
    )


def table(results: list[dict]) -> str:
    lines = [
        f"{'size':>5} {'config':<16} {'mode':<13} {'batch':>5} {'s/step':>8} {'steps/s':>8} {'img/s':>8} "
        f"{'vs fp32':>8} {'vs PyTorch':>10}"
    ]
    fp32 = {
        r["size"]: r["seconds_per_step"]
        for r in results
        if r["mode"] == "fp32" and "code" not in r and not r.get("overrides")
    }
    baseline = {(r["size"], r["mode"]): r["seconds_per_step"] for r in results if "code" in r}
    if baseline:
        lines[0] += f" {'vs base':>8}"
    for r in results:
        speedup = fp32.get(r["size"], float("nan")) / r["seconds_per_step"]
        reference = (
            REFERENCE_SECONDS_PER_STEP_256 / r["seconds_per_step"] if r["size"] == 256 else float("nan")
        )
        mode = r["mode"] if "code" not in r else f"{r['mode']}@{r['code'][:7]}"
        if r.get("overrides"):
            mode += "+set"
        line = (
            f"{r['size']:>5} {r['config']:<16} {mode:<13} {r['batch']:>5} {r['seconds_per_step']:>8.3f} "
            f"{r['steps_per_second']:>8.3f} {r['images_per_second']:>8.2f} {speedup:>7.2f}x "
            + (f"{reference:>9.2f}x" if reference == reference else f"{'-':>10}")
        )
        if baseline and "code" not in r:
            line += f" {baseline.get((r['size'], r['mode']), float('nan')) / r['seconds_per_step']:>7.2f}x"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    results = []
    worktree = tempfile.mkdtemp(prefix="training_speed_baseline_") if FLAGS.baseline else None
    commit = None
    try:
        if worktree:
            os.rmdir(worktree)  # git creates it
            commit = checkout(FLAGS.baseline, worktree)
        for size in FLAGS.sizes:
            for mode in FLAGS.modes:
                if worktree:
                    print(f"measuring {size}x{size} {mode} at {commit[:7]} ...", file=sys.stderr, flush=True)
                    base = measure_baseline(worktree, size, mode, FLAGS.warmup, FLAGS.steps)
                    results.append({**base, "code": commit})
                print(f"measuring {size}x{size} {mode} ...", file=sys.stderr, flush=True)
                results.append(measure(size, mode, FLAGS.warmup, FLAGS.steps))
                if FLAGS.set:
                    print(f"measuring {size}x{size} {mode} with {FLAGS.set} ...", file=sys.stderr, flush=True)
                    results.append(measure(size, mode, FLAGS.warmup, FLAGS.steps, FLAGS.set))
    finally:
        if worktree:
            remove_checkout(worktree)
    report = {
        "baseline": commit,
        "set": FLAGS.set,
        "results": results,
        "tensorflow": tf.__version__,
        "cpu_threads": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "reference_pytorch_seconds_per_step_256": REFERENCE_SECONDS_PER_STEP_256,
    }
    print(table(results))
    print(json.dumps(report, indent=1))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    app.run(main)
