"""Quality benchmark: the paper's Table 1(b) and 1(c) on the synthetic puppets, with a floor.

Runs, each trained with the same budget and seeds through the trainer's Python API and
evaluated by `coseg_tf.evaluate` (regression fitted on the train videos' frames, every
score on the held-out test identities):

- Table 1(b), K = 10: `naive`, `shift_only`, `affine_only`, `v_backprop`, `full`;
- Table 1(c), `full`: K = 1, 5, 10 (the `full` run above), 15;
- `full` again with training seeds `--seed` + 1 to + 4 (`full_rep1` ... `full_rep4`): one
  run's IoU moves by a few hundredths with the seed, so the IoU target is judged on the mean;
- the non-learned floor: k-means on colour and position (`coseg_tf.baselines`), K = 10, at
  two fixed position weights (1.0: compact regions; 0.25: colour first). Not tuned.

Writes `benchmarks/results/quality.{md,json,png}`; `--family=heads` (with its own
`--workdir`, and `--config=synthetic-heads`, the same recipe) does the same on the talking
heads and writes `quality-heads.*`. Each run keeps its model and
`metrics.json` under `--workdir/<run>/`, and a run whose metrics exist is not redone, so the
benchmark can be run in pieces (`--runs=...`); the report covers every run found. Each learned
run records its `--config`, `--set`, `--seed` and `--steps`; a run found with other values
stops the script (one table, one recipe).
`--rescore` evaluates the saved models again (after a change to the evaluation) without
retraining them; `--force` retrains. `--init_from=<finished table's workdir>` trains every
learned run on from that table's final weights of the same run: a longer budget in stages,
without redoing the steps already done (the report states the steps before).

The learned runs are heavy (12-19 minutes each on 2 CPU cores with the default budget, the
synthetic config's own schedule): not part of CI. The baselines take seconds:

    python benchmarks/quality.py --runs=kmeans_w1,kmeans_w0.25
    python benchmarks/quality.py                       # everything
    python benchmarks/quality.py --rescore             # every run found, evaluation only
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np
from absl import app, flags, logging

from coseg_tf import config as config_lib
from coseg_tf.data.synthetic import FAMILIES

FLAGS = flags.FLAGS
VARIANT_RUNS = ["naive", "shift_only", "affine_only", "v_backprop", "full"]
K_RUNS = ["full_k1", "full_k5", "full_k15"]
REPEAT_RUNS = ["full_rep1", "full_rep2", "full_rep3", "full_rep4"]
SEED_RUNS = ["full", *REPEAT_RUNS]  # `full` at seeds --seed, --seed + 1, ...
BASELINE_RUNS = {"kmeans_w1": 1.0, "kmeans_w0.25": 0.25}
ALL_RUNS = VARIANT_RUNS + K_RUNS + REPEAT_RUNS + list(BASELINE_RUNS)
IOU_TARGET = 0.85  # the bar for `full` on held-out puppets

flags.DEFINE_list("runs", ALL_RUNS, f"Runs to do, in this order (of {ALL_RUNS}); existing results are kept.")
flags.DEFINE_string("workdir", "runs/quality", "Data, models and per-run metrics.")
flags.DEFINE_string("results_dir", os.path.join(os.path.dirname(__file__), "results"), "Where quality.* go.")
flags.DEFINE_string("config", "synthetic", "Training config (packaged name or path).")
flags.DEFINE_multi_string(
    "set",
    [],
    "Config override of every learned run, section.key=value as coseg-train's --set (e.g. "
    "--set train_params.num_repeats=50 for a schedule twice as long); stated in the report.",
)
flags.DEFINE_integer("steps", None, "Training steps per run (default: the config's schedule).")
flags.DEFINE_string(
    "init_from",
    None,
    "The --workdir of a finished table: each learned run starts from the final weights of that "
    "table's run of the same name (fresh optimisers) and trains this budget on top, so a table "
    "can be taken to a longer budget in stages. Its data and --seed must be this table's.",
)
flags.DEFINE_enum(
    "mixed_precision",
    "auto",
    list(config_lib.PRECISIONS),
    "Training precision of every run; auto (as the main job): mixed_bfloat16 on CPUs with native bf16.",
)
flags.DEFINE_enum(
    "family",
    "puppets",
    list(FAMILIES),
    "Synthetic family (coseg-synth --family); another family than puppets writes quality-<family>.* "
    "and needs its own --workdir.",
)
flags.DEFINE_integer("num_videos", 120, "Synthetic videos (a seeded 20% of identities held out).")
flags.DEFINE_integer("num_frames", 48, "Frames per synthetic video.")
flags.DEFINE_integer("data_seed", 0, "Seed of the synthetic data.")
flags.DEFINE_integer("seed", 0, "Training seed (every run) and evaluation subset seed.")
flags.DEFINE_integer("frames_per_video", 8, "Evaluated frames per video.")
flags.DEFINE_bool("force", False, "Redo runs whose metrics already exist.")
flags.DEFINE_bool(
    "rescore",
    False,
    "Evaluate the runs' saved models again without training (after a change to the evaluation); "
    "a learned run with no model yet is trained.",
)


def run_settings(name: str) -> dict[str, Any]:
    """Variant, K and training seed of a learned run (`full_k5` -> full, K = 5; `full_rep2` -> seed + 2)."""
    if name in VARIANT_RUNS:
        return {"variant": name, "num_segments": 10, "seed": FLAGS.seed}
    if name in REPEAT_RUNS:
        variant, repeat = name.rsplit("_rep", 1)
        return {"variant": variant, "num_segments": 10, "seed": FLAGS.seed + int(repeat)}
    variant, k = name.rsplit("_k", 1)
    return {"variant": variant, "num_segments": int(k), "seed": FLAGS.seed}


def report_name() -> str:
    """`quality` for the puppets, `quality-<family>` for another family: one report per family."""
    return "quality" if FLAGS.family == "puppets" else f"quality-{FLAGS.family}"


def make_data(root: str) -> str:
    """The synthetic set as PNG strips (lossless); returns the data root (with ground_truth/)."""
    from coseg_tf.data.synthetic import generate_once
    from coseg_tf.data.video_io import DatasetError

    sizes = {"num_videos": FLAGS.num_videos, "num_frames": FLAGS.num_frames}
    try:
        generate_once(root, **sizes, seed=FLAGS.data_seed, family=FLAGS.family)
    except DatasetError as e:
        raise app.UsageError(f"{e}: give another --workdir") from None
    return root


def train_run(name: str, data_root: str, run_dir: str) -> dict[str, Any]:
    """Trains one learned run with the fixed budget; returns what the trainer reports."""
    from coseg_tf import trainer
    from coseg_tf.cli import resolve_config
    from coseg_tf.distribute import resolve_precision

    settings = run_settings(name)
    config = resolve_config(
        FLAGS.config,
        [*FLAGS.set, f"model_params.common_params.num_segments={settings['num_segments']}"],
        os.path.join(data_root, "png"),
        settings["variant"],
    )
    options = trainer.TrainOptions(
        model_dir=os.path.join(run_dir, "model"),
        init_weights=os.path.join(FLAGS.init_from, name, "model", "final") if FLAGS.init_from else None,
        seed=settings["seed"],
        max_steps=FLAGS.steps,
        mixed_precision=FLAGS.mixed_precision,
        image_every=0,
        log_every=50,
    )
    started = time.time()
    result = trainer.Trainer(config, options).train()
    return {
        "steps": result.step,
        "steps_before": steps_before(name),
        "skipped_steps": result.skipped_steps,
        "final_losses": result.losses,
        "train_seconds": time.time() - started,
        "variant": settings["variant"],
        "num_segments": settings["num_segments"],
        "batch_size": config["train_params"]["batch_size"],
        "mixed_precision": resolve_precision(FLAGS.mixed_precision),
        "model_dir": options.model_dir,
        **recipe(name),
    }


def steps_before(name: str) -> int:
    """Steps a run of an --init_from table had when this table's training started from it."""
    if not FLAGS.init_from:
        return 0
    with open(os.path.join(FLAGS.init_from, name, "metrics.json")) as f:
        trained = json.load(f)["training"]
    return trained["steps"] + trained.get("steps_before", 0)


def check_init_from(names: list[str], data_root: str) -> None:
    """Before any training: the --init_from table has these runs' final weights, on the same data."""
    if os.path.abspath(FLAGS.init_from) == os.path.abspath(FLAGS.workdir):
        raise app.UsageError("--init_from must be another table's --workdir, not this one")
    theirs, ours = (
        os.path.join(root, "data", "ground_truth", "info.json") for root in (FLAGS.init_from, FLAGS.workdir)
    )
    if not os.path.exists(theirs):
        raise app.UsageError(f"--init_from {FLAGS.init_from}: no synthetic set in it ({theirs} not found)")
    with open(theirs) as f, open(ours) as g:
        if json.load(f) != json.load(g):
            raise app.UsageError(
                f"--init_from {FLAGS.init_from}: its data differ from {data_root} (see info.json)"
            )
    missing = [
        name
        for name in names
        if not all(
            os.path.exists(os.path.join(FLAGS.init_from, name, *part))
            for part in (("metrics.json",), ("model", "final", "segmenter.weights.h5"))
        )
    ]
    if missing:
        raise app.UsageError(f"--init_from {FLAGS.init_from}: no finished run {missing} in it")
    for name in names:
        with open(os.path.join(FLAGS.init_from, name, "metrics.json")) as f:
            seed = json.load(f)["training"]["seed"]
        if seed != run_settings(name)["seed"]:
            raise app.UsageError(
                f"--init_from {FLAGS.init_from}/{name} was trained with seed {seed}, not this table's "
                f"{run_settings(name)['seed']}"
            )


def recipe(name: str) -> dict[str, Any]:
    """The flags that make a learned run comparable: kept with its metrics and checked on reuse."""
    return {
        "config": FLAGS.config,
        "overrides": list(FLAGS.set),
        "seed": run_settings(name)["seed"],
        "max_steps": FLAGS.steps,
        "init_from": FLAGS.init_from,
    }


def check_recipe(name: str, report: dict[str, Any]) -> None:
    """Refuses to put a run trained with other flags into this table (pieces over several sessions)."""
    trained = report.get("training")
    if trained is None:  # a baseline: nothing trained
        return
    expected = recipe(name)
    found = {key: trained.get(key) for key in expected}
    if found != expected:
        raise app.UsageError(
            f"{FLAGS.workdir}/{name} was trained with {found}, not this run's {expected}: give another "
            "--workdir, the same flags, or --force to retrain it"
        )


def evaluate_run(name: str, data_root: str, run_dir: str, trained: dict[str, Any] | None) -> dict[str, Any]:
    """Scores a run on the synthetic ground truth; keeps the picture's test frames."""
    from coseg_tf import evaluate as evaluate_lib

    if name in BASELINE_RUNS:
        predictor = evaluate_lib.load_predictor(
            "kmeans", kmeans_parts=10, kmeans_position_weight=BASELINE_RUNS[name], seed=FLAGS.seed
        )
    else:
        predictor = evaluate_lib.load_predictor(os.path.join(run_dir, "model"))
    splits = evaluate_lib.load_splits("synthetic", data_root, frames_per_video=FLAGS.frames_per_video)
    settings = evaluate_lib.EvalSettings(seed=FLAGS.seed, num_visualize=4)
    results = evaluate_lib.evaluate(predictor, splits, settings, "synthetic")
    shown = results["_shown"]
    np.savez_compressed(
        os.path.join(run_dir, "shown.npz"),
        images=np.stack([s["image"] for s in shown]),
        predicted=np.stack([s["maps"].argmax(-1) for s in shown]),
        labels=np.stack([s["labels"] for s in shown]),
    )
    report = {
        "run": name,
        "model": predictor.describe(),
        "training": trained,
        "settings": {"frames_per_video": FLAGS.frames_per_video, "seed": FLAGS.seed},
        **evaluate_lib.public_results(results),
    }
    evaluate_lib.write_json(report, os.path.join(run_dir, "metrics.json"))
    return report


COLUMNS = (
    "run",
    "MAE sum @256 ↓",
    "NME ↓",
    "FG IoU ↑",
    "FG precision ↑",
    "FG recall ↑",
    "NMI all ↑",
    "ARI all ↑",
    "NMI fg ↑",
    "ARI fg ↑",
    "training",
)


# The metric columns: (section of metrics.json, key, higher is better, digits shown). Precision
# and recall explain the IoU; they are not among the metrics that `full` must win.
METRICS = (
    ("landmark_regression", "mae_sum_256", False, 1),
    ("landmark_regression", "nme", False, 4),
    ("foreground_iou", "mean_per_image", True, 4),
    ("foreground_iou", "precision", True, 3),
    ("foreground_iou", "recall", True, 3),
    ("parts", "nmi_all_pixels", True, 4),
    ("parts", "ari_all_pixels", True, 4),
    ("parts", "nmi_foreground", True, 4),
    ("parts", "ari_foreground", True, 4),
)
DIAGNOSTICS = ("precision", "recall")


def _cell(value: Any, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _row(label: str, report: dict[str, Any] | None) -> str:
    if report is None:
        return f"| {label} | not run |" + " |" * (len(COLUMNS) - 2)
    cells = [_cell(report[section].get(key), digits) for section, key, _, digits in METRICS]
    trained = report.get("training") or {}
    minutes = trained.get("train_seconds")
    before = f"{trained['steps_before']} + " if trained.get("steps_before") else ""
    training = "-" if minutes is None else f"{minutes / 60:.1f} min, {before}{trained.get('steps')} steps"
    return f"| {label} | {' | '.join(cells)} | {training} |"


def seed_runs(reports: dict[str, dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(training seed, report) of `full` and its seed repeats that have been run."""
    return [(run_settings(name)["seed"], reports[name]) for name in SEED_RUNS if name in reports]


def seed_rows(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Table rows of `full` per training seed, then their mean and (from two seeds) spread."""
    rows = []
    for name in SEED_RUNS:
        label = f"seed {run_settings(name)['seed']}" + ("" if name == "full" else f" (`{name}`)")
        rows.append(_row(label, reports.get(name)))
    runs = [report for _, report in seed_runs(reports)]
    rows.append(_row("mean", summary_report(runs, np.mean) if runs else None))
    if len(runs) > 1:
        rows.append(_row("standard deviation", summary_report(runs, spread)))
    return rows


def spread(values: list[float]) -> float:
    """Sample standard deviation (n - 1): how far one seed's figure may fall from the mean."""
    return float(np.std(values, ddof=1))


def summary_report(runs: list[dict[str, Any]], statistic: Any) -> dict[str, Any]:
    """One statistic of each metric over runs (a metric missing from any run is left out)."""
    summary: dict[str, Any] = {section: {} for section, *_ in METRICS}
    for section, key, _, _ in METRICS:
        values = [r[section].get(key) for r in runs]
        if all(v is not None for v in values):
            summary[section][key] = float(statistic(values))
    return summary


def findings(reports: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's acceptance checks, each stated with its figures (or as not yet measurable)."""

    def iou(name: str) -> float | None:
        r = reports.get(name)
        return None if r is None else r["foreground_iou"].get("mean_per_image")

    lines = []
    full = iou("full")
    if full is None:
        return ["The learned runs have not been run yet: no finding about the paper can be stated."]
    seeds = seed_runs(reports)
    values = [r["foreground_iou"]["mean_per_image"] for _, r in seeds]
    judged = float(np.mean(values))
    verdict = ">=" if judged >= IOU_TARGET else "<"
    if len(seeds) == 1:
        lines.append(f"- `full` held-out foreground IoU {judged:.4f} {verdict} {IOU_TARGET} (one seed).")
    else:
        per_seed = ", ".join(f"seed {s}: {v:.4f}" for (s, _), v in zip(seeds, values, strict=True))
        below = sum(v < IOU_TARGET for v in values)
        lines.append(
            f"- `full` held-out foreground IoU, mean over {len(seeds)} training seeds: {judged:.4f} "
            f"{verdict} {IOU_TARGET} (standard deviation {spread(values):.4f}; {below} of {len(seeds)} "
            f"seeds below {IOU_TARGET}: {per_seed})."
        )
    for other in ("naive", "v_backprop"):
        value = iou(other)
        if value is not None:
            verdict = "reproduces" if full > value else "does NOT reproduce"
            lines.append(
                f"- `full` vs `{other}` foreground IoU: {full:.4f} vs {value:.4f} ({verdict} the paper)."
            )
    for name in ("full", "v_backprop"):
        fg = reports.get(name, {}).get("foreground_iou", {})
        if "precision" in fg:
            lines.append(
                f"- `{name}` foreground errors: precision {fg['precision']:.3f} (of its false fg, "
                f"{fg['false_fg_within_1px']:.0%} lies within 1 px of the figure), recall {fg['recall']:.3f}."
            )
    for base in BASELINE_RUNS:
        if base not in reports:
            continue
        lost = []
        for section, key, higher, _ in METRICS:
            if key in DIAGNOSTICS:
                continue
            a, b = reports["full"][section].get(key), reports[base][section].get(key)
            if a is None or b is None or (a <= b if higher else a >= b):
                lost.append(f"{key} ({_cell(a, 4)} vs {_cell(b, 4)})")
        if lost:
            lines.append(f"- `full` does NOT beat `{base}` on: {', '.join(lost)}.")
        else:
            lines.append(f"- `full` beats `{base}` on every metric.")
    k_iou = [(k, iou(name)) for k, name in ((1, "full_k1"), (5, "full_k5"), (10, "full"), (15, "full_k15"))]
    k_mae = [
        (k, reports[name]["landmark_regression"].get("mae_sum_256"))
        for k, name in ((1, "full_k1"), (5, "full_k5"), (10, "full"), (15, "full_k15"))
        if name in reports
    ]
    if len(k_mae) > 1:
        falling = all(a[1] > b[1] for a, b in zip(k_mae, k_mae[1:], strict=False))
        listing = ", ".join(f"K={k}: {v:.1f}" for k, v in k_mae)
        verdict = "falls" if falling else "does NOT fall monotonically"
        lines.append(f"- Table 1(c): the MAE {verdict} as K grows ({listing}).")
    if sum(v is not None for _, v in k_iou) > 1:
        listing = ", ".join(f"K={k}: {v:.4f}" for k, v in k_iou if v is not None)
        lines.append(f"- Table 1(c) foreground IoU by K: {listing}.")
    return lines


def write_picture(reports: dict[str, dict[str, Any]], path: str) -> str | None:
    """Rows: test frames, ground-truth parts, then each run's predicted parts on the same frames."""
    import cv2

    from coseg_tf import visualize

    rows, names = [], []
    first = None
    for name in ALL_RUNS:
        shown_path = os.path.join(FLAGS.workdir, name, "shown.npz")
        if name not in reports or not os.path.exists(shown_path):
            continue
        with np.load(shown_path) as shown:
            if first is None:
                first = {k: shown[k] for k in shown.files}
                rows.append(list(first["images"]))
                rows.append(list(visualize.label_colors(first["labels"], 10)))
                names += ["frames", "ground truth"]
            k = int(reports[name]["model"]["num_segments"])
            rows.append(list(visualize.label_colors(shown["predicted"], k)))
            names.append(name)
    if not rows:
        return None
    grid = visualize.grid(rows, zoom=2)
    labelled = np.full((grid.shape[0], 150, 3), 255, np.uint8)
    height = grid.shape[0] // len(names)
    for i, name in enumerate(names):
        cv2.putText(
            labelled, name, (4, i * height + height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1
        )
    return visualize.write_png(path, np.concatenate([labelled, grid], 1))


def schedule(data_root: str) -> str:
    """The config's optimisation schedule, as the report states it."""
    from coseg_tf.cli import resolve_config

    train = resolve_config(FLAGS.config, FLAGS.set, os.path.join(data_root, "png"), None)["train_params"]
    text = (
        f"learning rates {train['lr_segmentation']:g} (segmenter) and {train['lr_reconstruction']:g} "
        f"(generator), x0.1 at epoch milestones {train['epoch_milestones']}, batch {train['batch_size']}"
    )
    warmup = train["segmentation_warmup"]
    if warmup["epochs"]:
        text += (
            f"; segmenter warm-up: x{warmup['factor']:g} for the first {warmup['epochs']} epochs, "
            "then both optimisers restart"
        )
    return text


def write_report(reports: dict[str, dict[str, Any]], data_root: str) -> str:
    from coseg_tf.distribute import resolve_precision

    os.makedirs(FLAGS.results_dir, exist_ok=True)
    name = report_name()
    md_path = os.path.join(FLAGS.results_dir, f"{name}.md")
    json_path = os.path.join(FLAGS.results_dir, f"{name}.json")
    png_path = write_picture(reports, os.path.join(FLAGS.results_dir, f"{name}.png"))
    with open(os.path.join(data_root, "ground_truth", "info.json")) as f:
        info = json.load(f)
    any_report = next(iter(reports.values()), None)
    splits = any_report["splits"] if any_report else {}
    header = f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}"
    learned_steps = {r["training"]["steps"] for r in reports.values() if r.get("training")}
    steps_earlier = {r["training"].get("steps_before", 0) for r in reports.values() if r.get("training")}
    started_from = []
    if FLAGS.init_from:
        earlier = sorted(steps_earlier) if steps_earlier else "no learned run yet"
        started_from = [
            f"- Started from: the final weights of each run of `{FLAGS.init_from}` (fresh optimisers; "
            f"steps before: {earlier}), so the total budget is those plus this table's."
        ]
    lines = [
        f"# Quality benchmark: Table 1(b) and 1(c) on the synthetic {FLAGS.family}",
        "",
        "Produced by `python benchmarks/quality.py` "
        f"(runs present: {', '.join(r for r in ALL_RUNS if r in reports)}).",
        "",
        f"- Data: {info['num_videos']} {FLAGS.family} videos of {info['num_frames']} frames, "
        f"{info['size']}x{info['size']}, "
        f"data seed {info['seed']}; identities split 80/20 by the generator.",
        f"- Evaluation: {FLAGS.frames_per_video} evenly spaced frames per video; regression fitted on "
        f"{splits.get('train', {}).get('num_images', '?')} train-split frames "
        f"({splits.get('train', {}).get('num_identities', '?')} identities), every score on "
        f"{splits.get('test', {}).get('num_images', '?')} test-split frames "
        f"({splits.get('test', {}).get('num_identities', '?')} other identities); NME normalised by the "
        "ground-truth figure height (mask rows); MAE summed over 14 joints x 2 coordinates, "
        "pixels scaled to 256.",
        f"- Training: config `{FLAGS.config}`"
        f"{''.join(f' --set {item}' for item in FLAGS.set)} with the run's variant and K, seed {FLAGS.seed}, "
        f"precision {FLAGS.mixed_precision} ({resolve_precision(FLAGS.mixed_precision)} here), budget "
        f"{'the config schedule' if FLAGS.steps is None else f'{FLAGS.steps} steps'} "
        f"(steps done: {sorted(learned_steps) if learned_steps else 'no learned run yet'}); "
        f"{schedule(data_root)}.",
        *started_from,
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}.",
        "",
        "## Table 1(b): variants (K = 10)",
        "",
        header,
        *[_row(f"`{name}`", reports.get(name)) for name in VARIANT_RUNS],
        "",
        "## Table 1(c): number of parts (`full`)",
        "",
        header,
        *[
            _row(f"K = {k}", reports.get(name))
            for k, name in ((1, "full_k1"), (5, "full_k5"), (10, "full"), (15, "full_k15"))
        ],
        "",
        "## Non-learned floor: k-means on colour and position (K = 10)",
        "",
        header,
        *[_row(f"`{name}` (position weight {w})", reports.get(name)) for name, w in BASELINE_RUNS.items()],
        "",
        "## `full` (K = 10) over training seeds",
        "",
        header,
        *seed_rows(reports),
        "",
        "## Findings",
        "",
        *findings(reports),
        "",
    ]
    if png_path:
        lines += [
            "## Picture",
            "",
            f"![parts]({name}.png)",
            "",
            "Rows: test frames, ground truth, then each run.",
            "",
        ]
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    from coseg_tf.evaluate import write_json

    write_json({"flags": {k: FLAGS[k].value for k in FLAGS_USED}, "runs": reports}, json_path)
    return md_path


FLAGS_USED = [
    "runs",
    "config",
    "set",
    "steps",
    "init_from",
    "mixed_precision",
    "num_videos",
    "num_frames",
    "data_seed",
    "seed",
    "frames_per_video",
]


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    unknown = [r for r in FLAGS.runs if r not in ALL_RUNS]
    if unknown:
        raise app.UsageError(f"unknown runs {unknown}; choose from {ALL_RUNS}")
    if FLAGS.force and FLAGS.rescore:
        raise app.UsageError("--force retrains and --rescore does not: give one of them")
    from coseg_tf.cli import resolve_config

    try:  # a bad --config or --set fails here, not after the first run's training
        resolve_config(FLAGS.config, FLAGS.set, None, None)
    except (config_lib.ConfigError, FileNotFoundError) as e:
        raise app.UsageError(str(e)) from None
    data_root = make_data(os.path.join(FLAGS.workdir, "data"))
    reports, path = {}, None
    for name in ALL_RUNS:
        metrics_path = os.path.join(FLAGS.workdir, name, "metrics.json")
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                reports[name] = json.load(f)
            if not (FLAGS.force and name in FLAGS.runs):
                check_recipe(name, reports[name])
    if FLAGS.init_from:
        to_train = [n for n in FLAGS.runs if n not in BASELINE_RUNS and (FLAGS.force or n not in reports)]
        check_init_from(to_train, data_root)
    # In the order given, the report rewritten after each run: a benchmark stopped midway
    # still leaves every finished run in the results.
    for name in FLAGS.runs:
        rescore = FLAGS.rescore and name in reports
        if name in reports and not (FLAGS.force or rescore):
            continue
        run_dir = os.path.join(FLAGS.workdir, name)
        os.makedirs(run_dir, exist_ok=True)
        logging.info("%s %s", "rescore" if rescore else "run", name)
        if name in BASELINE_RUNS:
            trained = None
        elif rescore:
            trained = reports[name]["training"]
        else:
            trained = train_run(name, data_root, run_dir)
        reports[name] = evaluate_run(name, data_root, run_dir, trained)
        path = write_report(reports, data_root)
    if path is None:  # nothing ran: the report of the runs found
        path = write_report(reports, data_root)
    print(f"results: {path}")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
