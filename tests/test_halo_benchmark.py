"""benchmarks/halo.py: the rings by hand, and the diagnosis on a model with a planted halo."""

import importlib.util
import os
import subprocess

import numpy as np
import tensorflow as tf

from coseg_tf.testing import run_python

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "halo.py")
spec = importlib.util.spec_from_file_location("halo_benchmark", SCRIPT)
halo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(halo)


def square(size: int = 8, lo: int = 2, hi: int = 5) -> np.ndarray:
    mask = np.zeros((1, size, size), bool)
    mask[0, lo:hi, lo:hi] = True
    return mask


def test_rings_of_a_square_by_hand():
    rings = halo.rings(square())
    # A 3x3 square: its outer ring is 3 pixels on each side (no corners), its inner ring is
    # all but the centre, and everything else is far.
    assert rings["outer"].sum() == 12
    assert rings["inner"].sum() == 8 and not rings["inner"][0, 3, 3]
    assert not rings["outer"][0, 1, 1] and rings["outer"][0, 1, 3] and rings["outer"][0, 3, 5]
    assert rings["far"].sum() == 64 - 9 - 12
    edge = halo.rings(np.ones((1, 3, 3), bool))  # the frame's edge counts as background
    assert edge["inner"].sum() == 8 and edge["outer"].sum() == 0


class PlantedHalo:
    """Segments the white pixels of a frame, plus their outer ring (K = 1); "reconstructs" the
    target as its foreground share, so a clean target ring is the perfect reconstruction."""

    @staticmethod
    def segmenter(images, training=False):
        mask = np.asarray(images)[..., 0] > 0.5
        foreground = (mask | halo.rings(mask)["outer"]).astype(np.float32)
        return {"segmentation": tf.constant(np.stack([1 - foreground, foreground], -1))}

    @staticmethod
    def generator(inputs, training=False):
        foreground = tf.reduce_sum(inputs["seg_target"]["segmentation"][..., 1:], -1, keepdims=True)
        return {"prediction": tf.tile(foreground, [1, 1, 1, 3])}

    @staticmethod
    def perceptual(prediction, target):
        return tf.reduce_sum(tf.abs(prediction - target))


def test_a_planted_halo_is_found_and_cleaning_the_target_removes_its_loss():
    masks = np.concatenate([square(), square(lo=3, hi=7)])
    frames = np.repeat(masks[..., None].astype(np.float32), 3, -1)
    report = halo.diagnose(PlantedHalo(), [(frames, frames[::-1], masks, masks[::-1])])
    assert report["num_pairs"] == 2
    assert report["soft_foreground"]["outer"] == 1.0 and report["soft_foreground"]["inner"] == 1.0
    assert report["soft_foreground"]["far"] == 0.0 and report["outer_ring_predicted_fg"] == 1.0
    losses = report["losses"]
    # The planted loss is 3 channels x the target halo's pixels; only the target's ring matters.
    assert np.isclose(losses["predicted"]["perceptual"], 3 * halo.rings(masks)["outer"].sum())
    assert losses["clean_target"]["perceptual"] < 1e-3 and losses["clean_both"]["perceptual"] < 1e-3
    assert np.isclose(losses["clean_source"]["perceptual"], losses["predicted"]["perceptual"])
    target = report["outer_ring_gradient"]["target"]
    assert target["favours_background"] == 1.0 and target["mean"] < 0
    assert report["outer_ring_gradient"]["source"]["zero"] == 1.0


def run_halo(*flags: str) -> subprocess.CompletedProcess:
    return run_python([SCRIPT, *flags], timeout=120)


def test_the_script_names_a_bad_runs_entry_before_any_work(tmp_path):
    (tmp_path / "ground_truth").mkdir()
    (tmp_path / "ground_truth" / "info.json").write_text("{}")
    (tmp_path / "good" / "final").mkdir(parents=True)
    output = f"--output={tmp_path / 'halo.json'}"
    bad = run_halo(
        f"--data_dir={tmp_path}", output, f"--runs=good={tmp_path / 'good'},oops={tmp_path / 'missing'}"
    )
    assert bad.returncode != 0
    assert "--runs entry 'oops=" in bad.stderr and "final/" in bad.stderr
    no_data = run_halo(f"--data_dir={tmp_path / 'none'}", output, f"--runs=good={tmp_path / 'good'}")
    assert no_data.returncode != 0 and "is not a synthetic set" in no_data.stderr
    assert not (tmp_path / "halo.json").exists()
