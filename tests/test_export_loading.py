"""Loading the modules to export: the trainer's .keras and checkpoints, and original checkpoints."""

import os
import shutil
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf import model_files
from coseg_tf.export import testing
from coseg_tf.losses import PerceptualLoss
from coseg_tf.model import CosegModel


@pytest.fixture(scope="module")
def run(export_session):
    return testing.trained_run(export_session)


@pytest.fixture(scope="module")
def frame():
    return testing.render_puppet(64, np.random.default_rng(3))[0][None]


def _same_outputs(loaded, model, frame):
    got = loaded.segmenter(frame, training=False)
    want = model.segmenter(frame, training=False)
    for key in ("segmentation", "shift", "affine"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-6)
    assert loaded.generator is not None
    np.testing.assert_allclose(
        loaded.generator.encode(frame, training=False),
        model.generator.encode(frame, training=False),
        atol=1e-6,
    )


def test_keras_file_with_the_trainers_config(run, frame):
    loaded = model_files.load_model(run["keras_path"])  # config.yaml found next to final/
    assert loaded.frame_size == (64, 64) and loaded.num_segments == 4
    assert loaded.config["dataset_params"]["root_dir"] == run["data"]
    _same_outputs(loaded, run["model"], frame)


def test_trainer_checkpoint_directory(run, frame):
    loaded = model_files.load_model(os.path.join(run["run_dir"], "checkpoints"))
    assert loaded.source.startswith("checkpoint:")
    _same_outputs(loaded, run["model"], frame)


def test_object_graph_checkpoint_missing_list_layers_is_refused(run, tmp_path):
    # Under Keras 3, tf.train.Checkpoint(model=CosegModel) does not reach the blocks kept in
    # Python lists: such a checkpoint lacks most weights and must not load half-random modules.
    prefix = tf.train.Checkpoint(model=run["model"]).save(str(tmp_path / "ckpt"))
    stored = [name for name, _ in tf.train.list_variables(prefix) if name.startswith("model/segmenter/")]
    assert len(stored) < len(run["model"].segmenter.weights)  # the premise
    with pytest.raises(model_files.ModelLoadError, match="final/model.keras"):
        model_files.load_model(str(tmp_path), run["config_path"])


def test_run_folder_means_its_final_model(run, frame):
    loaded = model_files.load_model(run["run_dir"])
    assert loaded.source == f"keras:{os.path.join(run['run_dir'], 'final', 'model.keras')}"
    _same_outputs(loaded, run["model"], frame)


def test_checkpoint_needs_a_config(run, tmp_path):
    folder = os.path.join(run["run_dir"], "checkpoints")
    for name in os.listdir(folder):
        shutil.copy(os.path.join(folder, name), tmp_path / name)
    with pytest.raises(model_files.ModelLoadError, match="--config"):
        model_files.load_model(str(tmp_path))


def test_checkpoint_with_the_wrong_config_is_refused(run, tmp_path):
    config = testing.tiny_config()
    config["model_params"]["common_params"]["num_segments"] = 6
    path = tmp_path / "k6.yaml"
    config_lib.save_config(config, str(path))
    with pytest.raises(model_files.ModelLoadError, match="wrong --config"):
        model_files.load_model(os.path.join(run["run_dir"], "checkpoints"), str(path))


def test_keras_file_with_the_wrong_config_is_refused(run, tmp_path):
    config = testing.tiny_config()
    config["model_params"]["segmentation_module_params"]["scale_factor"] = 0.25
    path = tmp_path / "quarter.yaml"
    config_lib.save_config(config, str(path))
    with pytest.raises(model_files.ModelLoadError, match="scale_factor"):
        model_files.load_model(run["keras_path"], str(path))


def test_keras_file_with_imagenet_vgg_loads_without_downloading(run, tmp_path, frame, monkeypatch):
    # The trainer's CosegModel carries its perceptual loss; with vgg_weights "imagenet" its
    # deserialisation would fetch VGG19 weights. Loading for export must not.
    model = run["model"]
    with_vgg = CosegModel(
        model.segmenter, model.generator, PerceptualLoss([1, 0.5], vgg_weights="none"), name="coseg"
    )
    with_vgg.built = True
    path = tmp_path / "final" / "model.keras"
    path.parent.mkdir()
    with_vgg.save(str(path))
    shutil.copy(run["config_path"], tmp_path / "config.yaml")
    rewritten = tmp_path / "final" / "imagenet.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                text = data.decode()
                assert '"vgg_weights": "none"' in text
                data = text.replace('"vgg_weights": "none"', '"vgg_weights": "imagenet"').encode()
            dst.writestr(item, data)

    def no_download(*args, **kwargs):
        raise AssertionError(f"tried to download {args} {kwargs}")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_download)
    loaded = model_files.load_model(str(rewritten))
    _same_outputs(loaded, model, frame)


def test_bare_segmenter_keras_file(run, tmp_path, frame):
    path = tmp_path / "segmenter.keras"
    run["model"].segmenter.save(str(path))
    loaded = model_files.load_model(str(path), run["config_path"])
    assert loaded.generator is None
    np.testing.assert_allclose(
        loaded.segmenter(frame)["segmentation"], run["model"].segmenter(frame)["segmentation"], atol=1e-6
    )


def test_original_pth_tar_with_config(parity_dir, parity_config):
    # The reference parity checkpoint (written by the original PyTorch code) and its golden outputs.
    path = parity_config()
    loaded = model_files.load_model(str(parity_dir / "full.pth.tar"), str(path))
    io = np.load(parity_dir / "full_io.npz")
    got = loaded.segmenter(io["input/target"], training=False)
    np.testing.assert_allclose(got["segmentation"], io["seg_target/segmentation"], atol=1e-4)
    with pytest.raises(model_files.ModelLoadError, match="--config"):
        model_files.load_model(str(parity_dir / "full.pth.tar"))


def test_missing_model_path(tmp_path):
    with pytest.raises(model_files.ModelLoadError, match="not found"):
        model_files.load_model(str(tmp_path / "nothing.keras"))


@pytest.mark.parametrize("content", [b"", b"not a zip archive", b"PK\x03\x04 truncated"])
def test_corrupt_keras_file_names_the_file(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(model_files.ModelLoadError, match="model.keras is not a readable .keras file"):
        model_files.load_model(str(path))


def test_vgg_rewrite_only_touches_the_perceptual_loss():
    config = {
        "class_name": "CosegModel",
        "config": {
            "perceptual": {
                "class_name": "PerceptualLoss",
                "config": {"vgg_weights": "imagenet", "scales": [1]},
            },
            "segmenter": {"class_name": "SegmentationModule", "config": {"vgg_weights": "imagenet"}},
        },
    }
    assert model_files._disable_vgg_download(config)
    assert config["config"]["perceptual"]["config"] == {"vgg_weights": "none", "scales": [1]}
    assert config["config"]["segmenter"]["config"]["vgg_weights"] == "imagenet"
    assert not model_files._disable_vgg_download(config)
