"""benchmarks/quality.py as a user runs it, on its seconds-long k-means floor over a tiny set."""

import json
import os
import shutil
import subprocess

import pytest

from coseg_tf.testing import built_once, run_python

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "quality.py")
TINY = ["--num_videos=10", "--num_frames=8", "--frames_per_video=2", "--runs=kmeans_w1"]


def run_quality(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return run_python(
        [SCRIPT, *TINY, f"--workdir={tmp_path / 'work'}", f"--results_dir={tmp_path / 'results'}", *args]
    )


def read_metrics(tmp_path) -> dict:
    with open(tmp_path / "work" / "kmeans_w1" / "metrics.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def kmeans_table(shared_tmp):
    """The tiny set's k-means-only table, made once per session by the script for every test
    process (the first makes it, the others find it made); tests copy it."""
    table = shared_tmp / "quality_kmeans_table"
    with built_once(str(table / "made")) as build:
        if build:
            for folder in ("work", "results"):  # what a run that died half way left
                shutil.rmtree(table / folder, ignore_errors=True)
            done = run_quality(table)
            assert done.returncode == 0, done.stderr
            (table / "made").write_text("")
    return table


def copy_table(kmeans_table, tmp_path) -> None:
    """Puts a copy of the k-means table's workdir and results under `tmp_path`, as if run there."""
    for folder in ("work", "results"):
        shutil.copytree(kmeans_table / folder, tmp_path / folder)


def test_report_has_foreground_precision_and_recall_and_rescore_recomputes(kmeans_table, tmp_path):
    copy_table(kmeans_table, tmp_path)
    first = read_metrics(tmp_path)["foreground_iou"]
    assert 0.0 < first["precision"] <= 1.0 and 0.0 < first["recall"] <= 1.0
    report = (tmp_path / "results" / "quality.md").read_text()
    assert "| FG precision ↑ | FG recall ↑ |" in report
    row = next(line for line in report.splitlines() if line.startswith("| `kmeans_w1`"))
    assert f"| {first['precision']:.3f} | {first['recall']:.3f} |" in row
    not_run = next(line for line in report.splitlines() if line.startswith("| `full` |"))
    assert not_run.count("|") == row.count("|")

    # A run whose metrics exist is kept as it is ...
    metrics_path = tmp_path / "work" / "kmeans_w1" / "metrics.json"
    stale = read_metrics(tmp_path)
    stale["foreground_iou"] = {"available": True, "mean_per_image": -1.0}
    metrics_path.write_text(json.dumps(stale))
    assert run_quality(tmp_path).returncode == 0
    assert read_metrics(tmp_path)["foreground_iou"]["mean_per_image"] == -1.0
    # ... and evaluated again with --rescore
    done = run_quality(tmp_path, "--rescore")
    assert done.returncode == 0, done.stderr
    assert read_metrics(tmp_path)["foreground_iou"] == first


def test_force_and_rescore_together_is_a_usage_error(tmp_path):
    done = run_quality(tmp_path, "--rescore", "--force")
    assert done.returncode != 0
    assert "give one of them" in done.stderr
    assert not (tmp_path / "work").exists()


def test_set_overrides_reach_the_report_and_a_bad_one_fails_before_any_work(tmp_path):
    done = run_quality(tmp_path, "--set", "train_params.lr_segmentation=0.0005")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "results" / "quality.md").read_text()
    assert "config `synthetic` --set train_params.lr_segmentation=0.0005 with" in report
    assert "learning rates 0.0005 (segmenter)" in report

    bad = tmp_path / "bad"
    done = run_quality(bad, "--set", "train_params.lr_segmentatoin=0.0005")
    assert done.returncode != 0
    assert "override 'train_params.lr_segmentatoin=0.0005': unknown config key" in done.stderr
    assert not (bad / "work").exists()


def test_a_run_trained_with_other_flags_is_not_mixed_into_the_table(kmeans_table, tmp_path):
    copy_table(kmeans_table, tmp_path)
    # A learned run left in the workdir by an earlier session with another --set.
    other = read_metrics(tmp_path)
    other["run"] = "full"
    other["training"] = {
        "steps": 10,
        "train_seconds": 1.0,
        "config": "synthetic",
        "overrides": ["train_params.lr_segmentation=0.0005"],
        "seed": 0,
        "max_steps": None,
    }
    (tmp_path / "work" / "full").mkdir()
    (tmp_path / "work" / "full" / "metrics.json").write_text(json.dumps(other))

    done = run_quality(tmp_path)
    assert done.returncode != 0
    assert "work/full was trained with" in done.stderr
    assert "'overrides': ['train_params.lr_segmentation=0.0005']" in done.stderr

    done = run_quality(tmp_path, "--set", "train_params.lr_segmentation=0.0005")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "results" / "quality.md").read_text()
    assert next(line for line in report.splitlines() if line.startswith("| `full` |")).endswith(
        "| 0.0 min, 10 steps |"
    )


def test_seed_repeats_of_full_are_averaged_and_the_iou_target_is_judged_on_the_mean(kmeans_table, tmp_path):
    copy_table(kmeans_table, tmp_path)
    template = read_metrics(tmp_path)

    def plant(name: str, seed: int, iou: float) -> None:
        report = json.loads(json.dumps(template))
        report["run"] = name
        report["foreground_iou"]["mean_per_image"] = iou
        report["training"] = {"steps": 10, "train_seconds": 1.0, "config": "synthetic", "overrides": []}
        report["training"].update(seed=seed, max_steps=None)
        (tmp_path / "work" / name).mkdir(exist_ok=True)
        (tmp_path / "work" / name / "metrics.json").write_text(json.dumps(report))

    plant("full", 0, 0.84)
    plant("full_rep1", 1, 0.90)
    plant("full_rep2", 2, 0.83)
    done = run_quality(tmp_path)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "results" / "quality.md").read_text()
    mean = next(line for line in report.splitlines() if line.startswith("| mean |"))
    assert "| 0.8567 |" in mean
    assert "| seed 2 (`full_rep2`) |" in report
    assert (
        "- `full` held-out foreground IoU, mean over 3 training seeds: 0.8567 >= 0.85 (standard deviation "
        "0.0379; 2 of 3 seeds below 0.85: seed 0: 0.8400, seed 1: 0.9000, seed 2: 0.8300)." in report
    )
    spread = next(line for line in report.splitlines() if line.startswith("| standard deviation |"))
    assert "| 0.0379 |" in spread

    # A repeat must have been trained with its own seed (--seed + 1), not the table's.
    plant("full_rep1", 0, 0.90)
    done = run_quality(tmp_path)
    assert done.returncode != 0
    assert "work/full_rep1 was trained with" in done.stderr
    assert "'seed': 1" in done.stderr


def plant_finished_full(kmeans_table, table) -> None:
    """`table`: the k-means table's copy plus a finished `full` run, as quality.py leaves one.

    The run's final folder is written by the trainer's own `save_final` from the model that
    `--config=tiny` builds for `full` (untrained: a start table's weights only have to fit),
    and its metrics.json says 1 step at seed 0 on top of 1 step of an earlier start; no training,
    so the test trains once.
    """
    from coseg_tf import model as model_lib
    from coseg_tf.checkpoints import save_final
    from coseg_tf.cli import resolve_config

    copy_table(kmeans_table, table)
    run = table / "work" / "full"
    config = resolve_config(
        "tiny", ["model_params.common_params.num_segments=10"], str(table / "work" / "data" / "png"), "full"
    )
    save_final(model_lib.build_model(config), config, str(run / "model" / "final"))
    metrics = read_metrics(table)
    metrics["run"] = "full"
    metrics["training"] = {"steps": 1, "steps_before": 1, "seed": 0, "config": "tiny", "overrides": []}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_init_from_trains_each_run_on_from_a_finished_tables_weights(kmeans_table, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    plant_finished_full(kmeans_table, first)
    tiny_full = ["--config=tiny", "--steps=1", "--runs=full"]
    done = run_quality(second, *tiny_full, f"--init_from={first / 'work'}")
    assert done.returncode == 0, done.stderr
    assert f"final weights from {first / 'work' / 'full' / 'model' / 'final'}" in done.stderr
    trained = json.loads((second / "work" / "full" / "metrics.json").read_text())["training"]
    assert (trained["steps_before"], trained["steps"]) == (2, 1)
    report = (second / "results" / "quality.md").read_text()
    assert f"- Started from: the final weights of each run of `{first / 'work'}`" in report
    assert next(line for line in report.splitlines() if line.startswith("| `full` |")).endswith(
        "2 + 1 steps |"
    )

    # Reused only with the same --init_from: a table trained on from one start is not another's.
    done = run_quality(second, *tiny_full)
    assert done.returncode != 0
    assert f"'init_from': '{first / 'work'}'" in done.stderr


def test_init_from_is_checked_before_any_training(kmeans_table, tmp_path):
    copy_table(kmeans_table, tmp_path)  # a table with data and k-means only
    start = tmp_path / "work"

    def refused(workdir, *args: str) -> str:
        done = run_quality(workdir, "--runs=full,kmeans_w1", f"--init_from={start}", *args)
        assert done.returncode != 0
        assert not (workdir / "work" / "full").exists()
        return done.stderr

    assert "not this one" in refused(tmp_path)
    assert "no synthetic set in it" in run_quality(tmp_path / "b", "--init_from=/nonexistent").stderr
    assert "its data differ" in refused(tmp_path / "c", "--num_videos=12")
    assert "no finished run ['full'] in it" in refused(tmp_path / "d")

    # A run of the start table trained with another seed.
    planted = read_metrics(tmp_path)
    planted["training"] = {"steps": 10, "seed": 3}
    (start / "full" / "model" / "final").mkdir(parents=True)
    (start / "full" / "model" / "final" / "segmenter.weights.h5").write_bytes(b"")
    (start / "full" / "metrics.json").write_text(json.dumps(planted))
    assert "trained with seed 3, not this table's 0" in refused(tmp_path / "e")


def test_heads_family_writes_its_own_report_and_its_workdir_is_not_mixed(tmp_path):
    done = run_quality(tmp_path, "--family=heads", "--config=synthetic-heads")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "results" / "quality.md").exists()
    report = (tmp_path / "results" / "quality-heads.md").read_text()
    assert "on the synthetic heads" in report and "10 heads videos" in report
    assert read_metrics(tmp_path)["parts"]["ground_truth_part_names"][1] == "hair"
    # The puppets' table on the heads' workdir is refused before any work.
    done = run_quality(tmp_path)
    assert done.returncode != 0
    assert "holds a set made with {'family': 'heads'}, not {'family': 'puppets'}" in done.stderr
