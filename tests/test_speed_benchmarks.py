"""benchmarks/training_speed.py and step_profile.py: their tables, from results made by hand."""

import importlib.util
import os

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name: str):
    """The script as a module; the absl flags it defines are dropped again (both define --sizes)."""
    before = set(flags.FLAGS)
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for flag in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, flag)
    return module


def _speed(size: int, mode: str, seconds: float, code: str | None = None) -> dict:
    row = {
        "size": size,
        "config": "synthetic",
        "mode": mode,
        "batch": 8,
        "seconds_per_step": seconds,
        "steps_per_second": 1 / seconds,
        "images_per_second": 8 / seconds,
    }
    return {**row, "code": code} if code else row


def test_training_speed_table_compares_with_the_baseline_revision():
    speed = _script("training_speed")
    rows = [_speed(64, "fp32", 1.0, code="a956108" + "0" * 33), _speed(64, "fp32", 0.4)]
    lines = speed.table(rows).splitlines()
    assert lines[0].split()[-1] == "base"  # the "vs base" column
    assert "fp32@a956108" in lines[1]
    assert lines[2].split()[-1] == "2.50x"  # 1.0 s at the baseline, 0.4 s here
    # Without a baseline there is no such column.
    assert "vs base" not in speed.table([_speed(64, "fp32", 0.4)])


def test_training_speed_table_marks_the_variant_and_keeps_fp32_as_the_plain_config():
    speed = _script("training_speed")
    variant = {**_speed(64, "fp32", 0.25), "overrides": ["train_params.loss_weights.perceptual=[10,0,0,0,0]"]}
    rows = [_speed(64, "fp32", 1.0, code="a956108" + "0" * 33), _speed(64, "fp32", 0.5), variant]
    lines = speed.table(rows).splitlines()
    assert "fp32+set" in lines[3] and "fp32+set" not in lines[2]
    # "vs fp32" compares with this tree's plain fp32 row, "vs base" with the baseline revision.
    assert lines[3].split()[-3:-1] == ["2.00x", "-"] and lines[3].split()[-1] == "4.00x"


def test_step_profile_table_counts_the_segmenter_three_times():
    profile = _script("step_profile")
    result = {
        "size": 64,
        "config": "synthetic",
        "mode": "fp32",
        "batch": 8,
        "seconds": {"segmenter (x1)": 0.1, "generator": 0.05, "whole step": 0.5},
        "share_of_step": {"segmenter (x1)": 0.6, "generator": 0.1},
        "parts_sum_seconds": 0.35,
    }
    text = profile.table([result])
    assert "segmenter (x1)" in text and "60%" in text and "(x3 per step)" in text
    assert "whole step" in text and "0.350" in text
