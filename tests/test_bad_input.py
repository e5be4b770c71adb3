"""Bad input: one line naming the culprit, exit status 2, no traceback, nothing written.

The commands run as subprocesses, as a user runs them; cases that need no trained model
share one process start each where they can (a TensorFlow start costs ~5 s).
"""

import contextlib
import logging
import os
import pathlib
import re
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf import trainer as trainer_lib
from coseg_tf.checkpoints import RunMismatchError, check_run_dir, load_initial_weights
from coseg_tf.cli import resolve_config
from coseg_tf.testing import run_module

SIZE = 32


def _config(*overrides):
    return config_lib.load_config(
        config_lib.packaged_config_path("tiny"),
        [f"dataset_params.frame_shape=[{SIZE}, {SIZE}, 3]", "train_params.batch_size=2", *overrides],
    )


def _frames(n, shape=(SIZE, SIZE), seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(size=(n, *shape, 3)).astype(np.float32) for k in ("source", "target")}


def _trainer(model_dir, config, steps_per_epoch=2, **options):
    batch = config["train_params"]["batch_size"]
    data = _frames(batch * steps_per_epoch, tuple(config["dataset_params"]["frame_shape"][:2]))

    def dataset_fn(context, epoch):
        return tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True)

    options.setdefault("progress", False)
    options.setdefault("image_every", 0)
    return trainer_lib.Trainer(
        config,
        trainer_lib.TrainOptions(model_dir=str(model_dir), **options),
        dataset_fn=dataset_fn,
        steps_per_epoch=steps_per_epoch,
    )


@contextlib.contextmanager
def _eagerly():
    """tf.functions run as plain Python: a step or three then cost a third of tracing the
    training step (the same ops and values; the traced training loop is test_trainer's)."""
    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run of the tiny model (K = 4): (its folder, its TrainResult, what it logged).

    3 steps, past the config's 1 epoch of 2 steps (the budget test reads its log), with
    checkpoints at steps 1, 2 and 3.
    """
    run = tmp_path_factory.mktemp("trained") / "run"
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger("absl")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with _eagerly():
            result = _trainer(run, _config(), checkpoint_every=1, max_steps=3).train()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return run, result, [record.getMessage() for record in records]


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run that a test may damage."""
    shutil.copytree(trained[0], tmp_path / "run")
    return tmp_path / "run"


def _snapshot(folder):
    """Every file under `folder` with its bytes: what a refused command must leave alone."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def _assert_refused(result, command, *culprits):
    """Exit status 2 and exactly one line on stderr, `<command>: error: ...`, naming `culprits`."""
    lines = [line for line in result.stderr.splitlines() if f"{command}: error:" in line]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- wrong outcomes


@pytest.mark.parametrize("name", ["my data #1", "a: b", "[x]"])
def test_data_dir_is_a_path_never_yaml(name):
    config = resolve_config("tiny", ["train_params.batch_size=2"], name, None)
    assert config["dataset_params"]["root_dir"] == name
    assert config["train_params"]["batch_size"] == 2


def test_a_run_with_another_config_is_refused_before_anything_is_written(run):
    before = _snapshot(run)
    other = _config("model_params.common_params.num_segments=6", "train_params.lr_segmentation=1.0e-3")
    with pytest.raises(RunMismatchError) as raised:
        _trainer(run, other).train()
    message = str(raised.value)
    assert "model_params.common_params.num_segments: 4 -> 6" in message
    assert "train_params.lr_segmentation: 0.0002 -> 0.001" in message
    assert _snapshot(run) == before
    # What may change on a resume (a longer run, moved data) is not a difference.
    check_run_dir(str(run), _config("train_params.num_epochs=2", "dataset_params.root_dir=/moved"))


def test_a_checkpoint_of_another_model_is_not_taken_for_a_damaged_one(run, tmp_path):
    (run / "config.yaml").unlink()  # a run from before config.yaml was written
    other = _trainer(run, _config("model_params.common_params.num_segments=6"))
    with pytest.raises(RunMismatchError, match=r"ckpt-3 holds a different model \(its "):
        other.restore_or_initialise()
    # and as initial weights
    fresh = _trainer(tmp_path / "fresh", _config("model_params.common_params.num_segments=6"))
    with pytest.raises(RunMismatchError, match="--init_weights .* holds a different model"):
        load_initial_weights(fresh.task.model, str(run / "checkpoints" / "ckpt-2"))
    with pytest.raises(RunMismatchError, match="--init_weights .*final holds a different model"):
        load_initial_weights(fresh.task.model, str(run / "final"))


def test_coseg_train_on_a_run_with_another_k_stops_and_names_the_key(run, tmp_path):
    before = _snapshot(run)
    result = run_module(
        "coseg_tf.train",
        [
            "--config=tiny",
            f"--data_dir={tmp_path / 'no data'}",
            f"--model_dir={run}",
            f"--set=dataset_params.frame_shape=[{SIZE},{SIZE},3]",
            "--set=train_params.batch_size=2",
            "--set=model_params.common_params.num_segments=6",
        ],
    )
    _assert_refused(result, "coseg-train", str(run), "model_params.common_params.num_segments: 4 -> 6")
    assert _snapshot(run) == before


# ----------------------------------------------------------------------------- config values


@pytest.mark.parametrize(
    "override,message",
    [
        ("train_params.batch_size=abc", "train_params.batch_size must be an integer, got 'abc'"),
        ("train_params.batch_size=0", "train_params.batch_size must be >= 1, got 0"),
        ("train_params.batch_size=-4", "train_params.batch_size must be >= 1, got -4"),
        ("train_params.batch_size=2.5", "train_params.batch_size must be an integer, got 2.5"),
        ("train_params.lr_segmentation=abc", "train_params.lr_segmentation must be a number, got 'abc'"),
        ("train_params.lr_reconstruction=0", "train_params.lr_reconstruction must be > 0, got 0"),
        ("train_params.num_epochs=true", "train_params.num_epochs must be an integer, got True"),
        ("train_params.scales=[1, 0.3]", "train_params.scales must be 1 or 1/n"),
        ("train_params.scales=[1, a]", "train_params.scales must be a list, each item a number"),
        ("train_params.adam_betas=[0.5]", "train_params.adam_betas must be two numbers in [0, 1)"),
        ("model_params.common_params.estimate_affine_part=maybe", "must be true or false, got 'maybe'"),
        ("model_params.segmentation_module_params.num_blocks=0", "num_blocks must be >= 1, got 0"),
        ("dataset_params.frame_shape=[64, 64]", "dataset_params.frame_shape must be [height, width, 3]"),
        ("dataset_params.root_dir=[a]", "dataset_params.root_dir must be a path (a string), got ['a']"),
        ("train_params.batch_size=[4", "override 'train_params.batch_size=[4': the value is not YAML"),
    ],
)
def test_a_bad_config_value_is_named(override, message):
    with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
        config_lib.build_config({}, [override])


def test_a_number_yaml_reads_as_a_string_is_taken_as_the_number():
    config = config_lib.build_config({"train_params": {"lr_segmentation": "2e-4", "scales": [1, "5e-1"]}})
    assert config["train_params"]["lr_segmentation"] == 2e-4
    assert config["train_params"]["scales"] == [1, 0.5]


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("train_params:\n  batch_size: 4\n  scales: [1, 0.5\n")
    with pytest.raises(config_lib.ConfigError) as raised:
        config_lib.load_config(str(path))
    where = rf"{re.escape(str(path))}: YAML syntax error at line \d+, column \d+: "
    assert re.match(where, str(raised.value)), str(raised.value)


@pytest.mark.parametrize("height,width", [(63, 63), (100, 60), (64, 40)])
def test_a_frame_size_the_network_cannot_take_is_refused_with_the_sizes_that_work(height, width, tmp_path):
    with pytest.raises(config_lib.ConfigError) as raised:
        config_lib.load_config(
            config_lib.packaged_config_path("tiny"), [f"dataset_params.frame_shape=[{height}, {width}, 3]"]
        )
    message = str(raised.value)
    assert f"frame size {height}x{width} does not fit this model" in message
    assert "2^num_blocks = 8" in message and "sizes that work: " in message


def test_the_sizes_said_to_work_are_the_sizes_that_work():
    """tiny: segmenter at 1/2 with a 3-level hourglass, generator 2 down blocks, loss down to 1/2."""
    config = _config()
    works = [s for s in range(1, 130) if config_lib.frame_size_problem(config, s, s) is None]
    assert works == [32, 48, 64, 80, 96, 112, 128]
    assert config_lib.frame_size_problem(config, 64, 96) is None
    # What the segmenter alone needs (inference): ceil(size / 2) a multiple of 8.
    alone = [s for s in range(1, 50) if config_lib.frame_size_problem(config, s, s, training=False) is None]
    assert alone == [15, 16, 31, 32, 47, 48]


# ----------------------------------------------------------------------------- ground truth


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    from coseg_tf.data.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "set"
    generate_synthetic_dataset(str(root), num_videos=5, num_frames=4, size=SIZE, formats=("png",))
    return root


def _damage(root, change):
    """Rewrites the first test video's ground truth through `change(arrays) -> arrays`."""
    path = sorted((root / "ground_truth" / "test").glob("*.npz"))[0]
    with np.load(path) as gt:
        arrays = change({name: gt[name] for name in gt.files})
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "change,array,problem",
    [
        (lambda a: {k: v for k, v in a.items() if k != "landmarks"}, "landmarks", "no array 'landmarks'"),
        (lambda a: {**a, "labels": a["labels"][:, :16]}, "labels", f"has shape [4, 16, {SIZE}]"),
        (lambda a: {**a, "landmark_visible": a["landmark_visible"][:2]}, "landmark_visible", "shape [2, "),
        (lambda a: {k: v[:3] for k, v in a.items()}, "labels", "has 3 frames, the video"),
    ],
)
def test_damaged_ground_truth_names_the_file_and_the_array(synthetic_set, tmp_path, change, array, problem):
    from coseg_tf import ground_truth

    root = tmp_path / "set"
    shutil.copytree(synthetic_set, root)
    path = _damage(root, change)
    with pytest.raises(ground_truth.GroundTruthError) as raised:
        splits = ground_truth.read_synthetic(str(root), frames_per_video=2)
        splits["test"].load(list(range(len(splits["test"]))))
    message = str(raised.value)
    assert message.startswith(str(path)) and f"'{array}'" in message and problem in message, message


# ----------------------------------------------------------------------------- training budget


def test_steps_set_the_budget_beyond_the_configs_epochs():
    budget = trainer_lib.training_budget
    assert budget(1, 36) == (1, 36)
    assert budget(1, 36, max_steps=100) == (3, 100)  # more epochs than the config's
    assert budget(6, 36, max_steps=50) == (2, 50)  # and fewer steps
    assert budget(6, 36, max_epochs=2) == (2, 72)
    assert budget(1, 36, max_steps=100, max_epochs=2) == (2, 72)


def test_training_past_the_configs_epochs_says_its_budget_and_warns_when_tiny(trained):
    _, result, messages = trained  # 3 steps; the config: 1 epoch of 2 steps
    assert result.step == 3 and result.epoch == 1
    assert "budget: 3 steps (2 epochs of 2 steps: 4 pairs per epoch / global batch 2)" in messages
    assert any(m.startswith("a budget of 3 steps is too short") for m in messages)


# ----------------------------------------------------------------------------- any frame size

# Narrow layers: the architecture of a config at a fraction of its cost.
NARROW = [
    "model_params.segmentation_module_params.block_expansion=4",
    "model_params.segmentation_module_params.max_features=16",
    "model_params.reconstruction_module_params.block_expansion=4",
    "model_params.reconstruction_module_params.max_features=16",
    "model_params.reconstruction_module_params.num_bottleneck_blocks=1",
    "model_params.common_params.sync_batch_norm=false",
    "train_params.vgg_weights=none",
    "train_params.batch_size=1",
]


@pytest.mark.parametrize(
    "name,overrides",
    [
        # VGG19 at 512x512 is most of the cost: the loss is taken at the smallest scale only.
        ("vox-512-sem-10segments", ["train_params.scales=[0.125]"]),
        ("tiny", ["dataset_params.frame_shape=[96, 48, 3]"]),
    ],
)
def test_every_size_the_architecture_takes_trains(name, overrides, tmp_path):
    config = config_lib.load_config(config_lib.packaged_config_path(name), [*overrides, *NARROW])
    trainer = _trainer(tmp_path / "run", config, steps_per_epoch=2, checkpoint_every=0)
    height, width = config["dataset_params"]["frame_shape"][:2]
    batch = _frames(1, (height, width))
    with _eagerly():
        losses, applied = trainer.task.run_step(batch)
    assert applied and all(np.isfinite(v) for v in losses.values()), losses
    out = trainer.task.model.segmenter(batch["target"], training=False)
    stride = round(1 / config["model_params"]["segmentation_module_params"]["scale_factor"])
    assert out["segmentation"].shape[1:3] == (-(-height // stride), -(-width // stride))


# ----------------------------------------------------------------------------- every command


def _bad_files(folder):
    """A truncated .pth.tar, a foreign .pth.tar, an empty .npz and a frame to segment."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "whole.zip", "w") as archive:
        archive.writestr("archive/data.pkl", b"x" * 4000)
    (folder / "truncated.pth.tar").write_bytes((folder / "whole.zip").read_bytes()[:1000])
    (folder / "foreign.pth.tar").write_bytes(b"<html>not a checkpoint</html>")
    (folder / "empty.npz").write_bytes(b"")
    (folder / "broken.yaml").write_text("train_params:\n  batch_size: [4\n")
    (folder / "a_file").write_text("a file where a folder goes")
    cv2.imwrite(str(folder / "frame.png"), np.zeros((SIZE, SIZE, 3), np.uint8))
    return folder


def _cases(files, out, synthetic_root, original):
    """(module, command, args, culprits, path that must not be written) of each kind of bad input.

    Config values are tested in-process above; here each kind reaches each command once.
    """
    train = ["--config=tiny", f"--data_dir={synthetic_root}/png", f"--model_dir={out}/run"]
    sized = ["--set=train_params.batch_size=2", f"--set=dataset_params.frame_shape=[{SIZE},{SIZE},3]"]
    segment = [f"--input={files}/frame.png", f"--output_dir={out}/parts", "--config=tiny"]
    export = ["--config=tiny", f"--output_dir={out}/export", "--allow_random_samples"]
    return [
        ("coseg_tf.train", "coseg-train", [*train, *sized, "--steps=0"], ["--steps"], f"{out}/run"),
        (
            "coseg_tf.train",
            "coseg-train",
            [*train, "--set=train_params.batch_size=abc"],
            ["batch_size", "abc"],
            f"{out}/run",
        ),
        (
            "coseg_tf.train",
            "coseg-train",
            [*train, "--set=dataset_params.frame_shape=[63,63,3]"],
            ["63x63", "sizes that work"],
            f"{out}/run",
        ),
        (
            "coseg_tf.train",
            "coseg-train",
            [*train[1:], f"--config={files}/broken.yaml"],
            ["broken.yaml", "line 3"],
            f"{out}/run",
        ),
        (
            "coseg_tf.train",
            "coseg-train",
            [*train[:2], f"--model_dir={files}/a_file", *sized],
            ["a_file", "not a directory"],
            None,
        ),
        (
            "coseg_tf.train",
            "coseg-train",
            [*train, *sized, f"--init_weights={files}/foreign.pth.tar"],
            ["foreign.pth.tar"],
            f"{out}/run",
        ),
        (
            "coseg_tf.segment",
            "coseg-segment",
            [*segment, f"--model={files}/truncated.pth.tar"],
            ["truncated.pth.tar"],
            f"{out}/parts",
        ),
        (
            "coseg_tf.segment",
            "coseg-segment",
            [*segment, f"--model={files}/empty.npz"],
            ["empty.npz"],
            f"{out}/parts",
        ),
        (
            "coseg_tf.segment",
            "coseg-segment",
            [*segment[::2], f"--output_dir={files}/a_file", f"--model={files}/empty.npz"],
            ["a_file"],
            None,
        ),
        (
            "coseg_tf.segment",
            "coseg-segment",
            [*segment[1:], f"--input={files}/nope.png", f"--model={files}/empty.npz"],
            ["nope.png"],
            f"{out}/parts",
        ),
        (
            "coseg_tf.export.main",
            "coseg-export",
            [*export, f"--model={files}/truncated.pth.tar"],
            ["truncated.pth.tar"],
            f"{out}/export",
        ),
        (
            "coseg_tf.export.main",
            "coseg-export",
            [*export, f"--model={files}/foreign.pth.tar", "--tflite_size=63"],
            ["foreign.pth.tar"],
            f"{out}/export",
        ),
        (
            "coseg_tf.export.main",
            "coseg-export",
            [*export, f"--model={original}"],  # another model's widths than tiny's
            ["state-dict key", "does not fit the model's"],
            f"{out}/export",
        ),
        (
            "coseg_tf.evaluate",
            "coseg-eval",
            ["--model=kmeans", f"--data_dir={synthetic_root}", f"--output_dir={files}/a_file"],
            ["a_file"],
            None,
        ),
        (
            "coseg_tf.data.make_synthetic",
            "coseg-synth",
            [f"--output_dir={files}/a_file/x", "--num_videos=2"],
            ["a_file"],
            None,
        ),
        (
            "coseg_tf.data.prepare",
            "coseg-prepare",
            [f"--data_dir={files}/none", f"--output_dir={out}/records"],
            ["none"],
            f"{out}/records",
        ),
        (
            "coseg_tf.demo",
            "coseg-demo",
            [f"--output_dir={out}/demo", "--steps=-1"],
            ["--steps"],
            f"{out}/demo",
        ),
    ]


_CASE_IDS = [
    f"{command}-{culprits[0]}" for _, command, _, culprits, _ in _cases(pathlib.Path("f"), "o", "s", "p")
]


@pytest.mark.parametrize("index", range(len(_CASE_IDS)), ids=_CASE_IDS)
def test_every_command_refuses_bad_input_in_one_line(index, tmp_path, synthetic_set, parity_dir):
    """Each kind of bad input reaches its command as a user runs it (a test per case, so that the
    test processes share them out)."""
    files = _bad_files(tmp_path / "files")
    out = tmp_path / "out"
    cases = _cases(files, out, synthetic_set, parity_dir / "full.pth.tar")
    module, command, args, culprits, written = cases[index]
    result = run_module(module, args, timeout=240)
    _assert_refused(result, command, *culprits)
    assert written is None or not os.path.exists(written), (args, os.listdir(os.path.dirname(written)))
    assert (files / "a_file").read_text() == "a file where a folder goes"


def test_an_old_flag_spelling_still_works_and_warns(tmp_path):
    result = run_module(
        "coseg_tf.data.make_synthetic",
        [f"--out_dir={tmp_path / 'set'}", "--num_videos=2", "--num_frames=2", "--size=32", "--formats=png"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--out_dir is deprecated: use --output_dir" in result.stderr
    assert (tmp_path / "set" / "png").is_dir()
