"""The main job end to end on a tiny budget: data, training, IoU, picture, export.

One demo run (a training and an export: most of this module's cost) is shared by the tests,
and by every pytest-xdist worker; the export-failure case runs the demo again on a copy of it.
"""

import json
import os
import shutil

import pytest

from coseg_tf.testing import built_once, run_module

ARGS = ["--config", "tiny", "--num_videos", "10", "--num_frames", "6"]
ARGS += ["--steps", "2", "--mixed_precision", "off"]


@pytest.fixture(scope="module")
def demo_run(shared_tmp):
    """(output_dir, {returncode, stdout, stderr}) of one demo run from scratch, made once per session
    for every test process (the first runs it, the others read what it left)."""
    folder = shared_tmp / "demo_session"
    workdir, outcome = folder / "demo", folder / "outcome.json"
    with built_once(str(outcome)) as build:
        if build:
            shutil.rmtree(workdir, ignore_errors=True)  # a run that died half way
            done = run_module("coseg_tf.demo", ["--output_dir", str(workdir), *ARGS], timeout=600)
            outcome.write_text(
                json.dumps({"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr})
            )
    return workdir, json.loads(outcome.read_text())


def test_demo_trains_evaluates_draws_and_exports(demo_run):
    workdir, done = demo_run
    assert done["returncode"] == 0, done["stderr"][-3000:]
    assert "held-out foreground IoU:" in done["stdout"] and "export:" in done["stdout"]
    results = json.loads((workdir / "results.json").read_text())
    assert 0.0 <= results["foreground_iou"] <= 1.0 and results["steps"] == 2
    # The part figures of coseg-eval beside the IoU (issue 21): printed and in results.json.
    assert "held-out parts: NMI fg" in done["stdout"]
    for key in ("nmi_foreground", "ari_foreground", "part_nmi_fg"):
        assert -1.0 <= results[key] <= 1.0, (key, results[key])
    assert results["landmark_mae_sum_256"] > 0
    assert os.path.isfile(results["picture"])
    export = workdir / "export"
    assert results["export"] == str(export)
    assert (export / "coseg" / "1" / "saved_model.pb").is_file()
    assert list(export.glob("**/*.tflite"))
    assert json.loads((export / "export_report.json").read_text())["passed"] is True


def test_demo_export_failure_keeps_the_results_and_exits_1(demo_run, tmp_path):
    # The shared run's data and trained model, copied: the demo run again resumes the finished
    # run (no training), evaluates and draws it, then its export fails.
    finished, first = demo_run
    assert first["returncode"] == 0, "the shared demo run failed: see the other demo test"
    workdir = tmp_path / "demo"
    for folder in ("data", "model"):
        shutil.copytree(finished / folder, workdir / folder)
    (workdir / "export").write_text("a file where the export folder goes")
    done = run_module("coseg_tf.demo", ["--output_dir", str(workdir), *ARGS], timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "export:        FAILED" in done.stdout and "is a file, not a directory" in done.stderr
    results = json.loads((workdir / "results.json").read_text())
    assert results["export"] is None and results["steps"] == 2
