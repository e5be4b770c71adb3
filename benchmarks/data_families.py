"""The floors of the two synthetic data families side by side (issue 21, item 4).

For each family (`puppets`, `heads`: `coseg-synth --family`) the set is generated as
`benchmarks/quality.py` does (120 videos of 48 frames at 64x64, data seed 0, a seeded 20% of
identities held out, PNG strips) and the non-learned floors are scored by `coseg_tf.evaluate`
on the held-out identities, 8 frames per video:

- `label_prior` (`baselines.LabelPriorSegmenter`, fitted on the train split): the same maps for
  every image. Its foreground IoU is the train-mask prior's (the mean training mask > 0.5),
  its landmark error the mean-landmark predictor's, its part labels each pixel's most
  frequent training label;
- `kmeans_w1`, `kmeans_w0.25`: k-means on colour and position, K = 10, as quality.py.

Figures: foreground IoU (mean per image), `part_nmi_fg` (issue 21's per-frame NMI over the
true foreground), the pooled foreground NMI and ARI, landmark MAE (sum at 256) and NME.
`--model=<family>=<run dir or model file>` adds a trained model's row to that family
(e.g. the main job's run on each family); nothing is trained here.

Writes `benchmarks/results/data_families.{json,png}` (the picture: test frames of each family
over their ground-truth part labels) and prints the table. Takes a few minutes
(the k-means floors segment every train and test frame):

    python benchmarks/data_families.py
    python benchmarks/data_families.py --model=puppets=runs/demo/model --model=heads=runs/heads/model
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

from absl import app, flags, logging

from coseg_tf.data.synthetic import FAMILIES

FLAGS = flags.FLAGS
KMEANS_RUNS = {"kmeans_w1": 1.0, "kmeans_w0.25": 0.25}
FLOORS = ["label_prior", *KMEANS_RUNS]
# (row key, section of coseg-eval's results, key, column title, digits)
FIGURES = (
    ("foreground_iou", "foreground_iou", "mean_per_image", "FG IoU ↑", 3),
    ("part_nmi_fg", "parts", "part_nmi_fg", "part NMI fg ↑", 3),
    ("nmi_foreground", "parts", "nmi_foreground", "NMI fg pooled ↑", 3),
    ("ari_foreground", "parts", "ari_foreground", "ARI fg pooled ↑", 3),
    ("mae_sum_256", "landmark_regression", "mae_sum_256", "MAE sum @256 ↓", 1),
    ("nme", "landmark_regression", "nme", "NME ↓", 4),
)

flags.DEFINE_list("families", list(FAMILIES), f"Families to score (of {list(FAMILIES)}).")
flags.DEFINE_string(
    "workdir", "runs/data_families", "Where each family's set is written (<workdir>/<family>)."
)
flags.DEFINE_string(
    "output",
    os.path.join(os.path.dirname(__file__), "results", "data_families.json"),
    "The JSON written.",
)
flags.DEFINE_multi_string(
    "model", [], "<family>=<model>: a trained model (anything coseg-eval reads) scored beside the floors."
)
flags.DEFINE_integer("num_videos", 120, "Videos per family.")
flags.DEFINE_integer("num_frames", 48, "Frames per video.")
flags.DEFINE_integer("data_seed", 0, "Seed of the synthetic data.")
flags.DEFINE_integer("seed", 0, "k-means and evaluation subset seed.")
flags.DEFINE_integer("frames_per_video", 8, "Evaluated frames per video.")


def make_data(family: str) -> str:
    """The family's set under the workdir (generated once); returns its root."""
    from coseg_tf.data.synthetic import generate_once
    from coseg_tf.data.video_io import DatasetError

    root = os.path.join(FLAGS.workdir, family)
    sizes = {"num_videos": FLAGS.num_videos, "num_frames": FLAGS.num_frames}
    try:
        generate_once(root, **sizes, seed=FLAGS.data_seed, family=family)
    except DatasetError as e:
        raise app.UsageError(f"{e}: give another --workdir") from None
    return root


def parse_models(entries: list[str]) -> dict[str, list[str]]:
    """`--model` entries as {family: [model, ...]}, checked before any work."""
    models: dict[str, list[str]] = {}
    for entry in entries:
        family, sep, model = entry.partition("=")
        if not sep or family not in FLAGS.families or not model:
            raise app.UsageError(
                f"--model={entry}: expected <family>=<model> with a family of {FLAGS.families}"
            )
        if not os.path.exists(model):
            raise app.UsageError(f"--model={entry}: {model} not found")
        models.setdefault(family, []).append(model)
    return models


def score(predictor: Any, splits: dict[str, Any]) -> dict[str, Any]:
    """The table's figures of one predictor on one family, with what it is."""
    from coseg_tf import evaluate as evaluate_lib

    settings = evaluate_lib.EvalSettings(seed=FLAGS.seed, num_visualize=0)
    started = time.time()
    results = evaluate_lib.evaluate(predictor, splits, settings, "synthetic")
    row = {key: results[section].get(name) for key, section, name, _, _ in FIGURES}
    return {**row, "model": predictor.describe(), "seconds": round(time.time() - started, 1)}


def score_family(family: str, models: list[str]) -> dict[str, Any]:
    from coseg_tf import baselines
    from coseg_tf import evaluate as evaluate_lib

    root = make_data(family)
    splits = evaluate_lib.load_splits("synthetic", root, frames_per_video=FLAGS.frames_per_video)
    prior = baselines.LabelPriorSegmenter.fit(splits["train"])
    rows = {"label_prior": score(prior, splits)}
    for name, weight in KMEANS_RUNS.items():
        logging.info("%s: %s", family, name)
        predictor = evaluate_lib.load_predictor(
            "kmeans", kmeans_parts=10, kmeans_position_weight=weight, seed=FLAGS.seed
        )
        rows[name] = score(predictor, splits)
    for model in models:
        logging.info("%s: %s", family, model)
        rows[model] = score(evaluate_lib.load_predictor(model), splits)
    test = splits["test"]
    return {
        "data": {
            "dir": root,
            "part_names": test.part_names,
            "landmark_names": test.landmark_names,
            "num_train_images": len(splits["train"]),
            "num_test_images": len(test),
            "num_train_identities": len(set(splits["train"].identities)),
            "num_test_identities": len(set(test.identities)),
            # Share of foreground pixels: what a mask prior has to work with.
            "foreground_fraction": float(1.0 - prior.frequencies[..., 0].mean()),
        },
        "scores": rows,
    }


def write_picture(families: list[str], path: str, count: int = 8) -> str:
    """Per family, `count` test frames spread over the split, and their part labels below."""
    import numpy as np

    from coseg_tf import evaluate as evaluate_lib
    from coseg_tf import visualize

    rows = []
    for family in families:
        test = evaluate_lib.load_splits("synthetic", os.path.join(FLAGS.workdir, family), frames_per_video=2)[
            "test"
        ]
        batch = test.load(np.round(np.linspace(0, len(test) - 1, count)).astype(int).tolist())
        rows.append(list(batch.images))
        rows.append([visualize.color_labels(lab, len(test.part_names) - 1) for lab in batch.labels])
    return visualize.write_png(path, visualize.grid(rows, zoom=2))


def table(families: dict[str, Any]) -> list[str]:
    """Markdown: one row per (family, predictor)."""
    lines = [
        "| family | predictor | " + " | ".join(title for *_, title, _ in FIGURES) + " |",
        "|---|---|" + "---|" * len(FIGURES),
    ]
    for family, found in families.items():
        for name, row in found["scores"].items():
            cells = ["n/a" if row[key] is None else f"{row[key]:.{digits}f}" for key, *_, digits in FIGURES]
            lines.append(f"| {family} | `{name}` | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    unknown = [f for f in FLAGS.families if f not in FAMILIES]
    if unknown:
        raise app.UsageError(f"unknown families {unknown}; choose from {list(FAMILIES)}")
    models = parse_models(FLAGS.model)
    logging.set_verbosity(logging.INFO)
    families = {family: score_family(family, models.get(family, [])) for family in FLAGS.families}
    report = {
        "command": " ".join(["python benchmarks/data_families.py", *sys.argv[1:]]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "settings": {
            "num_videos": FLAGS.num_videos,
            "num_frames": FLAGS.num_frames,
            "size": 64,
            "data_seed": FLAGS.data_seed,
            "seed": FLAGS.seed,
            "frames_per_video": FLAGS.frames_per_video,
            "floors": {
                "label_prior": "train label frequencies per pixel: train-mask prior IoU, "
                "mean-landmark predictor, per-pixel majority labels",
                **{
                    name: f"k-means on colour and position, K = 10, position weight {w}"
                    for name, w in KMEANS_RUNS.items()
                },
            },
        },
        "families": families,
    }
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    from coseg_tf.evaluate import write_json

    write_json(report, FLAGS.output)
    picture = write_picture(list(families), os.path.splitext(FLAGS.output)[0] + ".png")
    print("\n".join(table(families)))
    print(f"results: {FLAGS.output}, picture: {picture}")


if __name__ == "__main__":
    app.run(main)
