"""The main job end to end on a tiny budget: data, training, IoU, picture, export."""

import json
import os

from coseg_tf.testing import run_module


def test_demo_trains_evaluates_draws_and_exports(tmp_path):
    workdir = tmp_path / "demo"
    args = ["--output_dir", str(workdir), "--config", "tiny", "--num_videos", "10", "--num_frames", "6"]
    done = run_module("coseg_tf.demo", [*args, "--steps", "2", "--mixed_precision", "off"], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "held-out foreground IoU:" in done.stdout and "export:" in done.stdout
    results = json.loads((workdir / "results.json").read_text())
    assert 0.0 <= results["foreground_iou"] <= 1.0 and results["steps"] == 2
    # The part figures of coseg-eval beside the IoU (issue 21): printed and in results.json.
    assert "held-out parts: NMI fg" in done.stdout
    for key in ("nmi_foreground", "ari_foreground", "part_nmi_fg"):
        assert -1.0 <= results[key] <= 1.0, (key, results[key])
    assert results["landmark_mae_sum_256"] > 0
    assert os.path.isfile(results["picture"])
    export = workdir / "export"
    assert results["export"] == str(export)
    assert (export / "coseg" / "1" / "saved_model.pb").is_file()
    assert list(export.glob("**/*.tflite"))
    assert json.loads((export / "export_report.json").read_text())["passed"] is True


def test_demo_export_failure_keeps_the_results_and_exits_1(tmp_path):
    workdir = tmp_path / "demo"
    args = ["--output_dir", str(workdir), "--config", "tiny", "--num_videos", "10", "--num_frames", "6"]
    args += ["--steps", "2", "--mixed_precision", "off"]
    workdir.mkdir()
    (workdir / "export").write_text("a file where the export folder goes")
    done = run_module("coseg_tf.demo", args, timeout=600)
    assert done.returncode == 1
    assert "export:        FAILED" in done.stdout and "is a file, not a directory" in done.stderr
    results = json.loads((workdir / "results.json").read_text())
    assert results["export"] is None and results["steps"] == 2
