"""Evaluation: landmark pickles, ground-truth readers, the k-means baseline and `coseg-eval`."""

import dataclasses
import json
import math
import os
import pathlib
import pickle
import subprocess

import cv2
import numpy as np
import pytest

from coseg_tf import baselines, ground_truth, inference, pickle_tables
from coseg_tf import evaluate as evaluate_lib
from coseg_tf.testing import run_module

TABLES = pathlib.Path(__file__).resolve().parent / "data" / "landmark_tables"
FIXTURES = sorted(TABLES.glob("*.pkl"))
EXPECTED = {
    "b.png": [[10.5, 20.0], [-1.0, 40.0], [50.0, 60.25]],
    "a.png": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
    "c.png": [[7.0, 8.0], [9.0, 10.0], [-1.0, -1.0]],
}


# ----------------------------------------------------------------------------- pickles


def test_every_pandas_fixture_is_present():
    names = {p.name for p in FIXTURES}
    assert {"pandas025_legacy.pkl", "pandas15.pkl", "pandas22.pkl", "pandas30.pkl"} <= names
    assert {"pandas15_protocol2.pkl", "pandas22_protocol2.pkl", "pandas30_protocol2.pkl"} <= names


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_pandas_pickles_read_without_pandas(path):
    columns = pickle_tables.read_dataframe_pickle(str(path), trust=True)
    assert columns["file_name"] == ["b.png", "a.png", "c.png"]
    table = pickle_tables.landmark_table(columns, str(path))
    assert {k: v.tolist() for k, v in table.items()} == EXPECTED


def test_pickles_are_refused_without_trust(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(pickle_tables.UnsafePickleError, match="--trust_pickles"):
        pickle_tables.read_dataframe_pickle(str(FIXTURES[0]), trust=False)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Payload(f"touch {marker}")))
    with pytest.raises(pickle_tables.UnsafePickleError):
        pickle_tables.read_dataframe_pickle(str(evil), trust=False)
    assert not marker.exists()


class _Payload:
    """Unpickling this runs a shell command (os.system)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalPayload:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_malicious_pickles_are_refused_even_when_trusted(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Payload(f"touch {marker}")))
    with pytest.raises(pickle_tables.UnsafePickleError, match="system"):
        pickle_tables.read_dataframe_pickle(str(evil), trust=True)
    assert not marker.exists()
    evil.write_bytes(pickle.dumps(_EvalPayload()))
    with pytest.raises(pickle_tables.UnsafePickleError, match="eval"):
        pickle_tables.read_dataframe_pickle(str(evil), trust=True)
    # A payload hidden in a cell of a real DataFrame pickle: `value` of row 0 replaced.
    data = (TABLES / "pandas22_protocol2.pkl").read_bytes()
    payload = pickle.dumps(_Payload(f"touch {marker}"), protocol=2)[2:-1]  # without PROTO and STOP
    index = data.index(b"X\x05\x00\x00\x00b.png")
    hidden = data[:index] + payload + data[index + len(b"X\x05\x00\x00\x00b.png") :]
    evil.write_bytes(hidden)
    with pytest.raises(pickle_tables.UnsafePickleError, match="system"):
        pickle_tables.read_dataframe_pickle(str(evil), trust=True)
    assert not marker.exists()


def test_state_cannot_be_forced_onto_stand_ins(tmp_path):
    # DataFrame.__new__ then BUILD with a dict lacking a block manager.
    crafted = b"\x80\x02cpandas.core.frame\nDataFrame\n)\x81}X\x04\x00\x00\x00_mgrK\x01sb."
    path = tmp_path / "crafted.pkl"
    path.write_bytes(crafted)
    with pytest.raises(pickle_tables.PickleTableError, match="block manager"):
        pickle_tables.read_dataframe_pickle(str(path), trust=True)
    path.write_bytes(pickle.dumps({"file_name": ["a"]}))
    with pytest.raises(pickle_tables.PickleTableError, match="not a DataFrame"):
        pickle_tables.read_dataframe_pickle(str(path), trust=True)


# ----------------------------------------------------------------------------- ground truth


def write_png(path: pathlib.Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = image[..., ::-1]
    assert cv2.imwrite(str(path), image)


def test_original_layout_reads_pickles_and_masks(tmp_path):
    for split in ("train", "test"):
        for name in ("a.png", "b.png", "c.png"):
            write_png(tmp_path / "images" / split / name, np.full((8, 8, 3), 100, np.uint8))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5] = 255
    for name in ("a.png", "b.png", "c.png"):
        write_png(tmp_path / "masks" / name, mask)
    table = str(TABLES / "pandas15.pkl")
    with pytest.raises(pickle_tables.UnsafePickleError):
        ground_truth.read_original(str(tmp_path / "images"), table, table, trust_pickles=False)
    splits = ground_truth.read_original(
        str(tmp_path / "images"), table, table, trust_pickles=True, masks_dir=str(tmp_path / "masks")
    )
    test = splits["test"]
    assert test.items == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(test.landmarks[0], EXPECTED["a.png"])
    assert np.isnan(test.landmarks[1, 1, 0]) and test.landmarks[1, 1, 1] == 40.0  # -1 -> missing
    assert np.isnan(test.landmarks[2, 2]).all()
    batch = test.load([1, 2])
    assert batch.images.shape == (2, 8, 8, 3) and batch.labels is None
    np.testing.assert_array_equal(batch.masks[0], mask > 0)


def test_plain_format(tmp_path):
    rng = np.random.default_rng(0)
    for split, names in (("train", ["id1#0.png", "id1#1.png"]), ("test", ["id2#0.jpg"])):
        for name in names:
            write_png(tmp_path / split / "images" / name, rng.integers(0, 255, (6, 10, 3), np.uint8))
            parts = np.zeros((6, 10), np.uint8)
            parts[1:3, 2:6] = 2
            write_png(tmp_path / split / "parts" / (os.path.splitext(name)[0] + ".png"), parts)
    (tmp_path / "train" / "landmarks.csv").write_text(
        "name,nose_x,nose_y,chin_x,chin_y\nid1#0.png,1.5,2,-1,4\nid1#1.png,,nan,3,3\n"
    )
    (tmp_path / "test" / "landmarks.csv").write_text(
        "name,identity,nose_x,nose_y,chin_x,chin_y\nid2#0,person7,1,1,2,2\n"
    )
    splits = ground_truth.read_plain(str(tmp_path))
    train, test = splits["train"], splits["test"]
    assert train.identities == ["id1", "id1"] and test.identities == ["person7"]
    assert train.landmark_names == ["nose", "chin"] and train.image_size == (6, 10)
    np.testing.assert_array_equal(train.landmarks[0], [[1.5, 2.0], [np.nan, 4.0]])
    assert np.isnan(train.landmarks[1, 0]).all()
    batch = test.load([0])
    assert batch.labels.max() == 2 and batch.masks.sum() == 8
    assert test.has_labels and test.has_masks
    (tmp_path / "test" / "landmarks.csv").write_text("name,nose_x,chin_y\nx,1,2\n")
    with pytest.raises(ground_truth.GroundTruthError, match="pair"):
        ground_truth.read_plain(str(tmp_path))


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from coseg_tf.data.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_dataset(
        str(root), num_videos=5, num_frames=4, size=32, formats=("png",), test_fraction=0.4, num_threads=1
    )
    return str(root)


def test_synthetic_ground_truth_has_disjoint_identities(synthetic_root):
    splits = ground_truth.read_synthetic(synthetic_root, frames_per_video=2)
    train, test = splits["train"], splits["test"]
    assert len(train) == 2 * 3 and len(test) == 2 * 2
    assert not set(train.identities) & set(test.identities)
    batch = test.load([0, 3])
    assert batch.images.shape == (2, 32, 32, 3) and batch.labels.shape == (2, 32, 32)
    np.testing.assert_array_equal(batch.masks, batch.labels > 0)
    # invisible joints are missing
    from coseg_tf.data.synthetic import load_ground_truth

    video, frame = test.items[3].split("/")
    gt = load_ground_truth(synthetic_root, "test", video)
    visible = gt["landmark_visible"][int(frame)]
    assert np.isfinite(test.landmarks[3]).all(-1).tolist() == visible.tolist()


# ----------------------------------------------------------------------------- evaluate()


class OraclePredictor(inference.Segmenter):
    """Returns the ground-truth labels (one-hot), optionally permuted or shifted; reads the item id
    written into pixel (0, 0) of each image."""

    kind = "oracle"
    frame_size = None
    source = "oracle"

    def __init__(self, labels: np.ndarray, num_segments: int, permutation=None, shift: int = 0):
        self.labels = labels
        self.num_segments = num_segments
        self.permutation = permutation
        self.shift = shift

    def _run(self, frames):
        labels = self.labels[np.rint(frames[:, 0, 0, 0] * 255.0).astype(int)]
        if self.permutation is not None:
            labels = np.asarray(self.permutation)[labels]
        labels = np.roll(labels, self.shift, axis=2)
        return np.eye(self.num_segments + 1, dtype=np.float32)[labels], np.zeros((len(frames), 2, 2))


def hand_split(name: str, labels: np.ndarray, first_id: int, identities: list[str]) -> ground_truth.EvalSplit:
    """A split of label maps whose landmarks are the centroids of parts 1 and 2 (+ 1 px)."""
    count, height, width = labels.shape
    images = np.zeros((count, height, width, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(first_id, first_id + count)
    ys, xs = np.mgrid[0:height, 0:width]
    points = np.zeros((count, 2, 2))
    for i, lab in enumerate(labels):
        for k in (1, 2):
            points[i, k - 1] = [xs[lab == k].mean() + 1.0, ys[lab == k].mean()]

    def load(indices):
        chosen = labels[list(indices)]
        return ground_truth.Batch(images[list(indices)], chosen > 0, chosen.astype(np.int32))

    return ground_truth.EvalSplit(
        name,
        [f"{name}{i}" for i in range(count)],
        identities,
        (height, width),
        load,
        points,
        None,
        True,
        True,
    )


def square_labels(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((count, 16, 16), int)
    for i in range(count):
        y, x = rng.integers(1, 8, 2)
        labels[i, y : y + 4, x : x + 6] = 1
        labels[i, y + 4 : y + 8, x : x + 6] = 2
    return labels


def oracle_setup():
    train_labels, test_labels = square_labels(12, 0), square_labels(6, 1)
    splits = {
        "train": hand_split("train", train_labels, 0, [f"t{i}" for i in range(12)]),
        "test": hand_split("test", test_labels, 12, [f"s{i}" for i in range(6)]),
    }
    return splits, np.concatenate([train_labels, test_labels])


def test_perfect_and_permuted_predictions():
    splits, labels = oracle_setup()
    settings = evaluate_lib.EvalSettings(batch_size=4, nme_normalizer="bbox_diagonal")
    for permutation in (None, [0, 2, 1]):
        results = evaluate_lib.evaluate(OraclePredictor(labels, 2, permutation), splits, settings, "plain")
        assert results["foreground_iou"]["mean_per_image"] == pytest.approx(1.0)
        assert results["foreground_iou"]["pooled"] == pytest.approx(1.0)
        assert results["foreground_iou"]["precision"] == results["foreground_iou"]["recall"] == 1.0
        assert results["foreground_iou"]["false_fg_within_1px"] == 0.0
        for key in ("nmi_all_pixels", "ari_all_pixels", "nmi_foreground", "ari_foreground", "part_nmi_fg"):
            assert results["parts"][key] == pytest.approx(1.0)
        assert results["parts"]["part_nmi_fg_num_frames"] == 6
        # landmarks are affine in the (possibly swapped) centroids
        assert results["landmark_regression"]["mae_sum_256"] == pytest.approx(0.0, abs=0.05)
        assert results["landmark_regression"]["nme"] == pytest.approx(0.0, abs=1e-3)
    assert results["parts"]["num_pixels_all"] == 6 * 16 * 16
    assert results["parts"]["num_pixels_foreground"] == 6 * 48


def test_shifted_prediction_lowers_iou_as_computed_by_hand():
    splits, labels = oracle_setup()
    settings = evaluate_lib.EvalSettings(batch_size=4)
    results = evaluate_lib.evaluate(OraclePredictor(labels, 2, shift=1), splits, settings, "plain")
    # an 8x6 figure moved one column: intersection 8 * 5, union 8 * 7
    assert results["foreground_iou"]["mean_per_image"] == pytest.approx(40 / 56)
    # 8 of 48 predicted pixels are false fg, all in the column next to the figure; 8 missed
    assert results["foreground_iou"]["precision"] == pytest.approx(40 / 48)
    assert results["foreground_iou"]["recall"] == pytest.approx(40 / 48)
    assert results["foreground_iou"]["false_fg_within_1px"] == pytest.approx(1.0)
    assert results["parts"]["nmi_foreground"] < 1.0
    # Per frame, the figure's first column is predicted background (8 of 48 pixels, 4 per
    # part) and the rest right: I = 5/6 ln 2, H(pred) over labels 0, 1, 2 of 8, 20, 20 pixels.
    h_pred = -(1 / 6 * math.log(1 / 6) + 2 * (5 / 12) * math.log(5 / 12))
    expected = 5 / 6 * math.log(2) / math.sqrt(math.log(2) * h_pred)
    assert results["parts"]["part_nmi_fg"] == pytest.approx(expected)
    # the centroids move by exactly 1 px: the regression's bias absorbs it
    assert results["landmark_regression"]["mae_sum_256"] == pytest.approx(0.0, abs=0.05)


def test_regression_refuses_an_identity_in_both_splits():
    splits, labels = oracle_setup()
    splits["test"].identities[2] = "t5"
    with pytest.raises(ValueError, match="identities are in both"):
        evaluate_lib.evaluate(OraclePredictor(labels, 2), splits, evaluate_lib.EvalSettings(), "plain")


def test_subsets_are_seeded_and_keep_order():
    splits, _ = oracle_setup()
    a = ground_truth.limit(splits["train"], 5, seed=3)
    b = ground_truth.limit(splits["train"], 5, seed=3)
    assert a.items == b.items and a.items == sorted(a.items, key=lambda s: int(s[5:]))
    assert len(a) == 5 and a.landmarks.shape == (5, 2, 2)
    first = int(a.items[0][5:])
    assert a.load([0]).images[0, 0, 0, 0] == first


# ----------------------------------------------------------------------------- baseline


def test_kmeans_baseline_finds_a_flat_object_and_orders_parts():
    image = np.full((32, 32, 3), 0.5, np.float32)
    image[6:14, 10:22] = [1.0, 0.0, 0.0]  # red top half
    image[14:26, 10:22] = [0.0, 0.0, 1.0]  # blue bottom half
    labels = baselines.kmeans_parts(image, 2, work_size=32, position_weight=0.2)
    expected = np.zeros((32, 32), int)
    expected[6:14, 10:22] = 1
    expected[14:26, 10:22] = 2
    np.testing.assert_array_equal(labels, expected)
    maps = baselines.KMeansSegmenter(2, work_size=16).segment(image[None]).soft
    assert maps.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(maps.sum(-1), 1.0)


def test_kmeans_keeps_k_clusters():
    points = np.concatenate([np.zeros((20, 2)), np.ones((20, 2))])
    centres, assignment = baselines.kmeans(points, 3, seed=0)
    assert len(np.unique(assignment)) == 3 and centres.shape == (3, 2)


def test_label_prior_gives_the_mask_prior_iou_and_the_mean_landmarks():
    train_labels = np.array([[[0, 1, 1], [0, 2, 2]], [[0, 0, 1], [2, 2, 2]]])
    test_labels = np.array([[[0, 1, 1], [2, 2, 2]], [[1, 1, 0], [2, 2, 0]]])
    splits = {
        "train": hand_split("train", train_labels, 0, ["a", "b"]),
        "test": hand_split("test", test_labels, 2, ["c", "d"]),
    }
    prior = baselines.LabelPriorSegmenter.fit(splits["train"])
    assert prior.num_segments == 2
    np.testing.assert_allclose(prior.frequencies[0, 1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(prior.frequencies[1, 2], [0.0, 0.0, 1.0])
    settings = evaluate_lib.EvalSettings(batch_size=1, nme_normalizer="bbox_diagonal")
    results = evaluate_lib.evaluate(prior, splits, settings, "plain")
    # Foreground where more than half the training masks are: pixels (0, 2), (1, 1), (1, 2).
    # Test 0: all 3 inside its 5-pixel mask; test 1: (1, 1) only, union 3 + 4 - 1.
    assert results["foreground_iou"]["mean_per_image"] == pytest.approx((3 / 5 + 1 / 6) / 2)
    # The centroids never change: each landmark is predicted at its training mean.
    train_points, test_points = splits["train"].landmarks, splits["test"].landmarks
    error = np.abs(train_points.mean(0) - test_points).mean(0) * [256 / 3, 256 / 2]
    assert results["landmark_regression"]["mae_sum_256"] == pytest.approx(error.sum())
    with pytest.raises(ValueError, match="no part labels"):
        baselines.LabelPriorSegmenter.fit(dataclasses.replace(splits["train"], has_labels=False))


# ----------------------------------------------------------------------------- the command


def write_tiny_model(model_dir: pathlib.Path) -> None:
    """The trainer's layout: <model_dir>/config.yaml and final/segmenter.keras (untrained, tiny)."""
    from coseg_tf import config as config_lib
    from coseg_tf.model import build_segmenter

    config = config_lib.load_config(
        config_lib.packaged_config_path("tiny"), ["dataset_params.frame_shape=[32, 32, 3]"]
    )
    (model_dir / "final").mkdir(parents=True)
    build_segmenter(config).save(str(model_dir / "final" / "segmenter.keras"))
    config_lib.save_config(config, str(model_dir / "config.yaml"))
    config_lib.save_config(config, str(model_dir / "final" / "config.yaml"))


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return run_module("coseg_tf.evaluate", args)


def test_help_lists_the_flags():
    shown = _cli(["--help"])  # absl exits with 1 after the help
    for flag in ("--model", "--data_dir", "--data_format", "--[no]trust_pickles", "--kmeans_parts"):
        assert flag in shown.stdout, flag
    result = _cli(["--data_dir=d"])
    assert result.returncode != 0 and "--model" in result.stderr


def test_command_end_to_end(synthetic_root, tmp_path):
    model_dir = tmp_path / "model"
    write_tiny_model(model_dir)
    out = tmp_path / "eval"
    argv = [f"--model={model_dir}", f"--data_dir={synthetic_root}", f"--output_dir={out}"]
    result = _cli(argv + ["--frames_per_video=2", "--num_visualize=2"])
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    assert f"metrics: {out}/metrics.json" in printed and f"picture: {out}/parts.png" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"]["num_segments"] == 4 and report["model"]["kind"] == "keras"
    assert report["settings"]["max_test_images"] == 300 and report["data"]["frames_per_video"] == 2
    lm = report["landmark_regression"]
    assert lm["available"] and lm["identities_disjoint"] and lm["num_landmarks"] == 14
    assert (
        lm["num_train_images"] == 6 and lm["num_test_images"] == 4 and lm["nme_normalizer"] == "mask_height"
    )
    assert np.isfinite(lm["mae_sum_256"]) and 0.0 <= report["foreground_iou"]["mean_per_image"] <= 1.0
    assert -1.0 <= report["parts"]["ari_foreground"] <= 1.0
    picture = cv2.imread(str(out / "parts.png"))
    assert picture.shape[0] > 2 * 128 and picture.shape[1] > 5 * 128  # 2 rows of 5 cells

    # the baseline through the same command
    out_km = tmp_path / "kmeans"
    result = _cli(
        ["--model=kmeans", "--kmeans_parts=3", f"--data_dir={synthetic_root}", f"--output_dir={out_km}"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out_km / "metrics.json").read_text())["model"]["kind"] == "kmeans_baseline"


def test_command_refuses_pickles_without_the_flag(tmp_path):
    for split in ("train", "test"):
        write_png(tmp_path / split / "a.png", np.zeros((8, 8, 3), np.uint8))
    table = str(TABLES / "pandas22.pkl")
    argv = ["--model=kmeans", "--data_format=original", f"--data_dir={tmp_path}"]
    argv += [f"--train_landmarks={table}", f"--test_landmarks={table}", f"--output_dir={tmp_path / 'out'}"]
    result = _cli(argv)
    assert result.returncode == 2
    assert "coseg-eval: error:" in result.stderr and "--trust_pickles" in result.stderr
    assert "Traceback" not in result.stderr
    # trusted: read, but a.png of both splits is one identity, which the regression refuses
    result = _cli(argv + ["--trust_pickles"])
    assert result.returncode == 2
    assert "coseg-eval: error: 1 identities are in both" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_names_the_bad_input_without_a_traceback(synthetic_root, tmp_path):
    model_dir = tmp_path / "model"
    write_tiny_model(model_dir)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    good = [f"--model={model_dir}", f"--data_dir={synthetic_root}", f"--output_dir={tmp_path / 'out'}"]
    cases = {
        "model path not found: /no/model": [good[1], good[2], "--model=/no/model"],
        "/no/data is not a synthetic set": [good[0], good[2], "--data_dir=/no/data"],
        f"--output_dir={a_file} is a file, not a directory": [good[0], good[1], f"--output_dir={a_file}"],
    }
    for message, argv in cases.items():
        result = _cli(argv)
        assert result.returncode == 2, (message, result.stderr[-2000:])
        assert "coseg-eval: error: " in result.stderr and message in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr


def test_exported_models_predict_like_the_keras_model(tmp_path):
    from coseg_tf.export import saved_model, tflite
    from coseg_tf.model_files import load_model

    write_tiny_model(tmp_path / "model")
    loaded = load_model(str(tmp_path / "model" / "final" / "segmenter.keras"))
    lite_path = tmp_path / "tiny.tflite"
    lite_path.write_bytes(tflite.convert_segmenter(loaded, "float32", loaded.frame_size))
    exported = saved_model.export_saved_model(loaded, str(tmp_path / "serving"), "tiny", part_swap=False)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3), np.uint8)  # the model's frame size
    other_size = rng.integers(0, 256, (2, 40, 48, 3), np.uint8)
    keras_predictor = evaluate_lib.load_predictor(str(tmp_path / "model"))
    assert keras_predictor.describe()["kind"] == "keras"
    reference = keras_predictor.segment(images).soft
    assert reference.shape == (2, 16, 16, 5)
    for path, kind in ((str(lite_path), "tflite"), (exported, "saved_model")):
        predictor = evaluate_lib.load_predictor(path)
        assert predictor.describe()["kind"] == kind and predictor.num_segments == 4
        np.testing.assert_allclose(predictor.segment(images).soft, reference, atol=1e-4)
    # Other sizes: the TFLite path resizes as the Keras path does; this SavedModel (no
    # part_swap signature, no config: frame size unknown) resizes in its graph (anti-aliased
    # bilinear), close but not identical.
    lite = evaluate_lib.load_predictor(str(lite_path))
    keras_other = keras_predictor.segment(other_size).soft
    np.testing.assert_allclose(lite.segment(other_size).soft, keras_other, atol=1e-4)
    served = evaluate_lib.load_predictor(exported)
    np.testing.assert_allclose(served.segment(other_size).soft, keras_other, atol=0.05)
