"""What a model path points to: `model_files.resolve_model_path`, the one resolver."""

import pytest
import tensorflow as tf

from coseg_tf import model_files
from coseg_tf.model_files import ModelFile, ModelLoadError, resolve_model_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _checkpoint(folder):
    folder.mkdir(parents=True, exist_ok=True)
    return tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(folder / "ckpt"))


def test_files_are_told_by_their_suffix(tmp_path):
    for name, kind in [
        ("m.tflite", "tflite"),
        ("m.keras", "keras"),
        ("full.pth.tar", "original"),
        ("w.pth", "original"),
        ("w.npz", "original"),
    ]:
        path = str(_touch(tmp_path / name))
        assert resolve_model_path(path) == ModelFile(kind, path)


def test_a_saved_model_folder_and_its_newest_numbered_version(tmp_path):
    _touch(tmp_path / "serving" / "1" / "saved_model.pb")
    _touch(tmp_path / "serving" / "12" / "saved_model.pb")
    _touch(tmp_path / "serving" / "3" / "saved_model.pb")
    (tmp_path / "serving" / "40").mkdir()  # a version being written: no saved_model.pb yet
    newest = str(tmp_path / "serving" / "12")
    assert resolve_model_path(str(tmp_path / "serving")) == ModelFile("saved_model", newest)
    assert resolve_model_path(newest + "/") == ModelFile("saved_model", newest)


def test_a_run_folder_means_its_final_model_then_its_latest_checkpoint(tmp_path):
    run = tmp_path / "run"
    prefix = _checkpoint(run / "checkpoints")
    assert resolve_model_path(str(run)) == ModelFile("checkpoint", prefix)
    # A segmenter saved alone stands for the run only where no generator is needed.
    alone = str(_touch(run / "final" / "segmenter.keras"))
    assert resolve_model_path(str(run)) == ModelFile("checkpoint", prefix)
    assert resolve_model_path(str(run), segmenter_alone=True) == ModelFile("keras", alone)
    final = str(_touch(run / "final" / "model.keras"))
    assert resolve_model_path(str(run), segmenter_alone=True) == ModelFile("keras", final)
    assert resolve_model_path(str(run / "final")) == ModelFile("keras", final)


def test_a_checkpoint_prefix_and_a_checkpoint_folder(tmp_path):
    prefix = _checkpoint(tmp_path / "ckpts")
    assert resolve_model_path(prefix) == ModelFile("checkpoint", prefix)
    assert resolve_model_path(str(tmp_path / "ckpts")) == ModelFile("checkpoint", prefix)


def test_nothing_there_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=f"model path not found: {tmp_path}/absent"):
        resolve_model_path(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=f"no model in {tmp_path}/empty"):
        resolve_model_path(str(tmp_path / "empty"))


def test_keras_modules_are_not_read_from_a_saved_model(tmp_path):
    _touch(tmp_path / "serving" / "1" / "saved_model.pb")
    with pytest.raises(ModelLoadError, match="is a SavedModel, which holds no Keras modules"):
        model_files.load_model(str(tmp_path / "serving"))
