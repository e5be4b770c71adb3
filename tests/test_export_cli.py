"""`coseg-export` end to end: artifacts, printed agreement, report, exit status."""

import json
import os
import shutil

import pytest
from absl import app

from coseg_tf.export import main, testing, tflite


@pytest.fixture(scope="module")
def exported(export_session):
    return testing.full_export(export_session)


def test_full_export_succeeds_and_reports_agreement(exported):
    result = exported["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "check frames: 8 pairs from data pipeline" in result.stdout
    assert "int8 calibration: 32 frames" in result.stdout
    assert "Agreement with Keras:" in result.stdout
    out = exported["output_dir"]
    with open(os.path.join(out, "export_report.json")) as f:
        report = json.load(f)
    assert report["passed"] and report["num_segments"] == 4 and report["frame_size"] == [64, 64]
    checks = {c["artifact"]: c for c in report["checks"]}
    for name in ("serving_default", "serve_uint8", "serve_bytes (PNG)", "part_swap"):
        assert checks[f"saved_model:{name}"]["value"] <= 1e-4
    assert checks["tflite:segmenter_float32"]["value"] <= 1e-4
    assert checks["tflite:segmenter_float16"]["value"] >= 0.98
    assert checks["tflite:segmenter_dynamic_int8"]["value"] >= 0.98
    assert checks["tflite:segmenter_int8"]["value"] >= 0.95
    assert checks["tflite:part_swap_float32"]["value"] <= 1e-4
    assert all(c["passed"] for c in checks.values())
    for artifact, path in report["artifacts"].items():
        assert os.path.exists(path), artifact
    for variant in tflite.SEGMENTER_VARIANTS:
        assert os.path.isfile(os.path.join(out, "tflite", f"coseg_segmenter_{variant}_64x64.tflite"))
    for variant in tflite.PART_SWAP_VARIANTS:
        assert os.path.isfile(os.path.join(out, "tflite", f"coseg_part_swap_{variant}_64x64.tflite"))
    # Quantised models are smaller than float32.
    sizes = {v: os.path.getsize(report["artifacts"][f"segmenter_{v}"]) for v in tflite.SEGMENTER_VARIANTS}
    assert sizes["float16"] < sizes["float32"] and sizes["int8"] < sizes["float16"]


def test_below_threshold_exits_non_zero(exported, tmp_path):
    run = exported["run"]
    result = testing.run_export(
        [
            "--model",
            run["keras_path"],
            "--output_dir",
            str(tmp_path),
            "--formats",
            "tflite",
            "--tflite_variants",
            "int8",
            "--part_swap=false",
            "--tflite_size",
            "64",
            "--num_samples",
            "2",
            "--calibration_samples",
            "4",
            "--images",
            os.path.join(run["data"], "test", "*", "*.png"),
            "--min_agreement_int8",
            "1.01",  # unreachable: the check must fail and say so
        ]
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "check frames: 2 pairs from image files" in result.stdout
    assert "FAILED: tflite:segmenter_int8" in result.stderr
    with open(tmp_path / "export_report.json") as f:
        report = json.load(f)
    assert not report["passed"]
    assert os.path.isfile(report["artifacts"]["segmenter_int8"])  # kept for inspection


def test_input_errors_exit_2(exported, tmp_path):
    folder = os.path.join(exported["run"]["run_dir"], "checkpoints")
    for name in os.listdir(folder):
        shutil.copy(os.path.join(folder, name), tmp_path / name)
    result = testing.run_export(["--model", str(tmp_path), "--output_dir", str(tmp_path / "out")])
    assert result.returncode == 2
    assert "--config" in result.stderr
    result = testing.run_export(
        ["--model", exported["run"]["keras_path"], "--output_dir", str(tmp_path), "--tflite_variants=int4"]
    )
    assert result.returncode == 2
    assert "unknown ['int4']" in result.stderr
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = testing.run_export(["--model", exported["run"]["keras_path"], "--output_dir", str(a_file)])
    assert result.returncode == 2
    assert f"coseg-export: error: --output_dir={a_file} is a file, not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_parse_size():
    assert main.parse_size("256") == (256, 256)
    assert main.parse_size("192x128") == (192, 128)
    for bad in ("0", "12x", "axb", "1x2x3"):
        with pytest.raises(app.UsageError):
            main.parse_size(bad)
