"""Initial weights (`--init_weights`) from every kind of model file, through the one resolver."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import checkpoints
from coseg_tf.export import testing
from coseg_tf.model_files import ModelLoadError


def _fresh(config):
    return testing.build_tiny_model(config)


def _assert_same_weights(a, b):
    for module_a, module_b in ((a.segmenter, b.segmenter), (a.generator, b.generator)):
        for x, y in zip(module_a.get_weights(), module_b.get_weights(), strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny model saved as a run: final/ (as save_final writes it) and a checkpoint."""
    config = testing.tiny_config()
    tf.keras.utils.set_random_seed(1)
    model = _fresh(config)
    root = tmp_path_factory.mktemp("run")
    checkpoints.save_final(model, config, str(root / "final"))
    variables = checkpoints.model_variables(model)
    prefix = tf.train.Checkpoint(model_variables=variables).save(str(root / "checkpoints" / "ckpt"))
    return {"model": model, "config": config, "root": root, "prefix": prefix}


def test_a_run_its_final_folder_and_its_checkpoint_give_the_trained_weights(run):
    for path in (run["root"], run["root"] / "final", run["prefix"]):
        tf.keras.utils.set_random_seed(2)
        fresh = _fresh(run["config"])
        message = checkpoints.load_initial_weights(fresh, str(path))
        _assert_same_weights(fresh, run["model"])
        assert ("checkpoint" in message) == (path == run["prefix"]), message


def test_a_keras_file_without_its_weight_files_is_read_itself(run, tmp_path):
    shutil.copy(run["root"] / "final" / "model.keras", tmp_path / "model.keras")
    shutil.copy(run["root"] / "final" / "config.yaml", tmp_path / "config.yaml")
    tf.keras.utils.set_random_seed(3)
    fresh = _fresh(run["config"])
    assert checkpoints.load_initial_weights(fresh, str(tmp_path / "model.keras")).startswith("model weights")
    _assert_same_weights(fresh, run["model"])


def test_files_without_training_weights_are_refused(run, tmp_path):
    fresh = _fresh(run["config"])
    with pytest.raises(FileNotFoundError, match=f"--init_weights {tmp_path}/absent: not found"):
        checkpoints.load_initial_weights(fresh, str(tmp_path / "absent"))
    (tmp_path / "serving" / "1").mkdir(parents=True)
    (tmp_path / "serving" / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is an exported model \\(saved_model\\)"):
        checkpoints.load_initial_weights(fresh, str(tmp_path / "serving"))
    (tmp_path / "alone").mkdir()
    shutil.copy(run["root"] / "final" / "segmenter.keras", tmp_path / "alone" / "segmenter.keras")
    shutil.copy(run["root"] / "final" / "config.yaml", tmp_path / "alone" / "config.yaml")
    with pytest.raises(ModelLoadError, match="holds the segmenter alone"):
        checkpoints.load_initial_weights(fresh, str(tmp_path / "alone" / "segmenter.keras"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [1, 2\nb: 3\n", r"YAML syntax error at line \d+, column \d+"),
        ("- a\n- b\n", "must hold a mapping"),
    ],
)
def test_a_run_dir_whose_config_is_not_a_yaml_mapping_is_refused(tmp_path, text, problem):
    # Read as coseg-train reads --config (config.read_yaml_mapping), then named as a run problem.
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(checkpoints.RunMismatchError, match=rf"config.yaml.*{problem}.*is {tmp_path} a run\?"):
        checkpoints.check_run_dir(str(tmp_path), {})
    checkpoints.check_run_dir(str(tmp_path / "no_run_yet"), {})
