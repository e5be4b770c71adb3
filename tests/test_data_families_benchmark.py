"""benchmarks/data_families.py as a user runs it, on tiny sets of both families."""

import json
import os
import subprocess

from coseg_tf.testing import run_python

SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "data_families.py"
)
TINY = ["--num_videos=10", "--num_frames=8", "--frames_per_video=2"]


def run_script(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return run_python(
        [
            SCRIPT,
            *TINY,
            f"--workdir={tmp_path / 'work'}",
            f"--output={tmp_path / 'results' / 'families.json'}",
            *args,
        ]
    )


def test_both_families_floors_side_by_side(tmp_path):
    done = run_script(tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "results" / "families.json").read_text())
    assert list(report["families"]) == ["puppets", "heads"]
    assert (tmp_path / "results" / "families.png").exists()
    for family, found in report["families"].items():
        assert found["data"]["part_names"][1] == {"puppets": "head", "heads": "hair"}[family]
        assert list(found["scores"]) == ["label_prior", "kmeans_w1", "kmeans_w0.25"]
        prior = found["scores"]["label_prior"]
        assert prior["model"]["kind"] == "label_prior"
        assert 0.0 < prior["foreground_iou"] < 1.0 and 0.0 < prior["part_nmi_fg"] <= 1.0
        assert prior["mae_sum_256"] > 0.0
        # The printed table has the JSON's figures.
        line = next(row for row in done.stdout.splitlines() if row.startswith(f"| {family} | `label_prior`"))
        assert f"| {prior['foreground_iou']:.3f} | {prior['part_nmi_fg']:.3f} |" in line
    # The heads fill more of the frame than the puppets: the mask prior is a higher floor there.
    ious = {f: report["families"][f]["scores"]["label_prior"]["foreground_iou"] for f in report["families"]}
    assert ious["heads"] > ious["puppets"]


def test_bad_model_and_a_workdir_of_other_data_are_refused_before_any_work(tmp_path):
    done = run_script(tmp_path, "--model=heads=/no/such/run")
    assert done.returncode != 0 and "/no/such/run not found" in done.stderr
    done = run_script(tmp_path, "--model=cats=/tmp")
    assert done.returncode != 0 and "expected <family>=<model>" in done.stderr
    assert not (tmp_path / "work").exists()
    assert run_script(tmp_path, "--families=heads").returncode == 0
    done = run_script(tmp_path, "--families=heads", "--num_frames=6")
    assert done.returncode != 0 and "give another --workdir" in done.stderr
