"""The training loop: variants and precisions train, distribution is exact, resume, NaN skip.

Multi-device and multi-process cases run in subprocesses: logical CPU devices must be set
before TensorFlow initialises its devices, and each worker of a cluster is its own process.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf import distribute
from coseg_tf import task as task_lib
from coseg_tf import trainer as trainer_lib
from coseg_tf.testing import quiet_env, run_module, run_python

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = 32


def _config(*overrides, variant="full", batch=2):
    return config_lib.load_config(
        config_lib.packaged_config_path("tiny"),
        [
            f"model_params.variant={variant}",
            f"dataset_params.frame_shape=[{SIZE}, {SIZE}, 3]",
            f"train_params.batch_size={batch}",
            # Shallower hourglasses than tiny's: the loop's logic does not depend on the depth,
            # and an eager step of the shallower model takes about half the time.
            "model_params.segmentation_module_params.num_blocks=2",
            "model_params.reconstruction_module_params.num_down_blocks=1",
            "train_params.lr_segmentation=2.0e-3",
            "train_params.lr_reconstruction=2.0e-3",
            *overrides,
        ],
    )


# One scale, one VGG layer and a one-level hourglass: every kind of op of the step in a smaller
# graph, for the tests whose cost is tracing or compiling it (XLA's first step: 22 instead of
# 31 CPU-s; the two-replica step: 30 instead of 40 s for its test).
SMALL_GRAPH = (
    "train_params.scales=[1]",
    "train_params.loss_weights.perceptual=[10,0,0,0,0]",
    "model_params.segmentation_module_params.num_blocks=1",
)


def _frames(n, seed=0):
    """Smooth random frames (a blurred noise field), so that reconstruction is learnable."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(size=(n, 2, SIZE // 4, SIZE // 4, 3)).astype(np.float32)
    frames = tf.image.resize(coarse.reshape(2 * n, SIZE // 4, SIZE // 4, 3), (SIZE, SIZE)).numpy()
    frames = frames.reshape(n, 2, SIZE, SIZE, 3)
    return {"source": frames[:, 0], "target": frames[:, 1]}


def _dataset_fn(data, batch):
    def fn(context, epoch):
        per_replica = context.get_per_replica_batch_size(batch)
        ds = tf.data.Dataset.from_tensor_slices(data)
        ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        return ds.batch(per_replica, drop_remainder=True)

    return fn


def _trainer(tmp_path, config=None, data=None, steps_per_epoch=4, **options):
    config = config or _config()
    batch = config["train_params"]["batch_size"]
    data = data if data is not None else _frames(batch * steps_per_epoch)
    options.setdefault("progress", False)
    options.setdefault("image_every", 0)
    return trainer_lib.Trainer(
        config,
        trainer_lib.TrainOptions(model_dir=str(tmp_path), **options),
        dataset_fn=_dataset_fn(data, batch),
        steps_per_epoch=steps_per_epoch,
    )


@pytest.fixture
def eager_steps():
    """Runs the training step eagerly: for tests of the loop's logic over a few steps, cheaper
    than tracing the step (the compiled step is what the precision, mirrored and parity tests run)."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def _weights(trainer):
    return [v.numpy().copy() for m in trainer.task.modules for v in m.weights]


def _lowers_the_loss(trainer, steps=5, max_skipped=0):
    batch = _frames(2, seed=1)
    results = [trainer.task.run_step(batch) for _ in range(steps)]
    applied = [losses for losses, was_applied in results if was_applied]
    assert len(applied) >= steps - max_skipped, [a for _, a in results]
    return applied[0], applied[-1]


@pytest.mark.parametrize("variant", config_lib.VARIANTS)
def test_every_variant_lowers_the_loss_on_a_fixed_batch(tmp_path, variant, eager_steps):
    trainer = _trainer(tmp_path, _config(variant=variant))
    before = [[v.numpy().copy() for v in m.trainable_variables] for m in trainer.task.modules]
    first, last = _lowers_the_loss(trainer)
    assert np.isfinite(sum(last.values()))
    assert last["perceptual"] < 0.97 * first["perceptual"], (first, last)
    for module, old in zip(trainer.task.modules, before, strict=True):  # both modules learn
        changed = [
            not np.array_equal(v.numpy(), o) for v, o in zip(module.trainable_variables, old, strict=True)
        ]
        assert any(changed), f"{module.name} did not change in variant {variant}"


@pytest.mark.parametrize(
    "precision,xla", [("mixed_bfloat16", False), ("mixed_float16", False), ("off", True)]
)
def test_mixed_precision_and_xla_train(tmp_path, precision, xla):
    # XLA compiles the whole step, in time that grows with the graph (see SMALL_GRAPH).
    trainer = _trainer(tmp_path, _config(*SMALL_GRAPH) if xla else None, mixed_precision=precision, xla=xla)
    if precision != "off":
        conv = trainer.task.model.generator.bottleneck[0].conv1
        assert conv.compute_dtype == precision.removeprefix("mixed_")
        assert trainer.task.model.segmenter.shift.compute_dtype == "float32"  # geometry stays float32
    # float16: the first steps may overflow while the dynamic loss scale settles.
    fp16 = precision == "mixed_float16"
    first, last = _lowers_the_loss(trainer, steps=8 if fp16 else 5, max_skipped=4 if fp16 else 0)
    assert last["perceptual"] < 0.97 * first["perceptual"], (first, last)


def test_mixed_precision_keeps_the_read_layers_float32():
    from coseg_tf.model import build_model

    model = build_model(_config("train_params.loss_weights.perceptual=[1,1,0,0,0]"), seed=0)
    distribute.apply_mixed_precision(model, "mixed_bfloat16")
    vgg = model.perceptual.vgg
    assert [vgg.get_layer(n).dtype_policy.name for n in model.perceptual.feature_layers] == ["float32"] * 2
    assert vgg.get_layer("block1_conv2").dtype_policy.name == "mixed_bfloat16"


def test_learning_rate_steps_down_at_the_milestones():
    assert task_lib.learning_rate(1.0, 0, [2, 4]) == 1.0
    assert task_lib.learning_rate(1.0, 2, [2, 4]) == pytest.approx(0.1)
    assert task_lib.learning_rate(1.0, 5, [2, 4]) == pytest.approx(0.01)
    warmup = {"epochs": 2, "factor": 0.2}
    assert task_lib.learning_rate(1.0, 1, [2], warmup) == pytest.approx(0.2)
    assert task_lib.learning_rate(1.0, 2, [2], warmup) == pytest.approx(0.1)
    assert task_lib.learning_rate(1.0, 1, [1], warmup) == pytest.approx(0.02)


def test_one_optimiser_per_module_with_the_configured_settings(tmp_path, eager_steps):
    config = _config(
        "train_params.lr_segmentation=1.0e-4",
        "train_params.adam_betas=[0.5, 0.9]",
        "train_params.epoch_milestones=[2]",
        "train_params.segmentation_warmup={epochs: 1, factor: 0.5}",
        "train_params.num_epochs=3",
    )
    trainer = _trainer(tmp_path, config, steps_per_epoch=1, max_epochs=1)
    segmenter_opt, generator_opt = trainer.task.optimizers
    assert segmenter_opt.beta_1 == 0.5 and segmenter_opt.beta_2 == 0.9
    trainer.train()  # epoch 0: the segmenter's warm-up, not the generator's
    assert float(segmenter_opt.learning_rate.numpy()) == pytest.approx(0.5e-4)
    assert float(generator_opt.learning_rate.numpy()) == pytest.approx(2.0e-3)
    trainer.options.max_epochs = 2
    trainer.train()  # epoch 1: the configured rates
    assert float(segmenter_opt.learning_rate.numpy()) == pytest.approx(1.0e-4)
    trainer.options.max_epochs = None
    trainer.train()  # epoch 2: after the milestone
    assert float(segmenter_opt.learning_rate.numpy()) == pytest.approx(1.0e-5)
    assert float(generator_opt.learning_rate.numpy()) == pytest.approx(2.0e-4)


@pytest.mark.parametrize("loss_scale", [False, True])
def test_restart_optimizer_zeroes_steps_and_moments_and_keeps_the_rate(loss_scale):
    weights = [tf.Variable(tf.ones((3,)))]
    optimizer = keras.optimizers.Adam(1e-3)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(weights)
    optimizer.apply([tf.ones((3,))], weights)
    optimizer.learning_rate = 5e-4
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    assert int(inner.iterations.numpy()) == 1 and np.any(inner.variables[-1].numpy() != 0)
    task_lib.restart_optimizer(optimizer)
    rest = [v.numpy() for v in inner.variables if v.name != "learning_rate"]
    assert len(rest) == 3 and all(np.all(v == 0) for v in rest)
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(5e-4)


def test_warmup_end_restarts_both_optimisers_also_on_resume(tmp_path, eager_steps):
    """Adam starts afresh after the warm-up, also when resumed from the checkpoint written at
    the warm-up's end; a resume later on keeps the restarted state."""
    config = _config("train_params.segmentation_warmup={epochs: 1, factor: 0.5}", "train_params.num_epochs=3")

    def iterations(trainer):
        return [int(o.iterations.numpy()) for o in trainer.task.optimizers]

    warm = _trainer(tmp_path, config, steps_per_epoch=2, max_epochs=1)
    warm.train()
    assert iterations(warm) == [2, 2]
    resumed = _trainer(tmp_path, config, steps_per_epoch=2, max_steps=3)
    resumed.train()  # from step 2, the warm-up's end: restart, then one step
    assert iterations(resumed) == [1, 1]
    later = _trainer(tmp_path, config, steps_per_epoch=2, max_steps=4)
    later.train()  # from step 3, inside epoch 1: no second restart
    assert iterations(later) == [2, 2]


def test_resume_continues_exactly_where_training_stopped(tmp_path, eager_steps):
    """Train 4 steps at once, or 3 (stopping inside the second epoch) + (new trainer) 1: same
    weights, optimiser and step."""
    config = _config("train_params.num_epochs=2")
    data = _frames(4)
    whole = _trainer(tmp_path / "whole", config, data, steps_per_epoch=2)
    whole.train()
    first = _trainer(tmp_path / "split", config, data, steps_per_epoch=2, max_steps=3)
    first.train()
    second = _trainer(tmp_path / "split", config, data, steps_per_epoch=2)
    result = second.train()
    assert result.step == 4 and int(second.epoch.numpy()) == 2
    for a, b in zip(_weights(whole), _weights(second), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert [int(t.task.optimizers[0].iterations.numpy()) for t in (whole, second)] == [4, 4]


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, eager_steps, caplog):
    trainer = _trainer(tmp_path, steps_per_epoch=4, checkpoint_every=2, keep_checkpoints=5)
    trainer.train()
    checkpoints = tf.train.get_checkpoint_state(str(tmp_path / "checkpoints")).all_model_checkpoint_paths
    assert [int(p.rsplit("-", 1)[1]) for p in checkpoints] == [2, 4]
    # A crash while writing leaves partial files that the index does not name: ignored.
    (tmp_path / "checkpoints" / "ckpt-6_temp").mkdir()
    (tmp_path / "checkpoints" / "ckpt-6_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    # A newest checkpoint damaged after the fact (truncated data file): the previous one is used.
    data_file = next((tmp_path / "checkpoints").glob("ckpt-4.data-*"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    resumed = _trainer(tmp_path, steps_per_epoch=4, checkpoint_every=2, keep_checkpoints=5)
    with caplog.at_level("WARNING"):
        message = resumed.restore_or_initialise()
    assert "ckpt-2" in message and int(resumed.task.step.numpy()) == 2
    assert any("ckpt-4 is unreadable" in r.getMessage() for r in caplog.records)


def test_non_finite_steps_are_skipped_counted_and_stop_training(tmp_path, eager_steps):
    config = _config("train_params.max_nonfinite_steps=3", "train_params.num_epochs=10")
    data = _frames(2 * 8)
    data["source"][2 * 3 : 2 * 4] = np.nan  # step 4 (1-based) sees a NaN batch
    data["source"][2 * 5 :] = np.nan  # steps 6, 7, 8: a streak of three
    trainer = _trainer(tmp_path, config, data, steps_per_epoch=8, checkpoint_every=1, keep_checkpoints=10)
    after = []  # the weights after each step
    original = trainer.task.train_step

    def step_and_record(*args):
        out = original(*args)
        after.append(_weights(trainer))
        return out

    trainer.task.train_step = step_and_record
    with pytest.raises(trainer_lib.NonFiniteLossError, match="3 consecutive steps") as error:
        trainer.train()
    assert "ckpt-5" in str(error.value)
    assert int(trainer.nonfinite_total.numpy()) == 4
    assert int(trainer.task.optimizers[0].iterations.numpy()) == 4  # 8 steps, 4 applied
    # The skipped step 4 changed nothing, batch-norm statistics included.
    for a, b in zip(after[2], after[3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(after[3], after[4], strict=True))
    assert all(np.all(np.isfinite(w)) for w in _weights(trainer))
    # No checkpoint during the streak: the newest is the last good one.
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-5")


def _run_python(code, env=None, timeout=240):
    return run_python(["-c", textwrap.dedent(code)], cwd=REPO, env=quiet_env(**(env or {})), timeout=timeout)


_COMMON = f"""
    import sys
    sys.path.insert(0, {str(REPO / "tests")!r})
    import numpy as np
    import tensorflow as tf
    from test_trainer import SMALL_GRAPH, _config, _dataset_fn, _frames, _weights
    from coseg_tf import distribute
    from coseg_tf import trainer as trainer_lib
"""


def test_mirrored_on_two_devices_matches_one_device(tmp_path):
    code = (
        _COMMON
        + f"""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    config = _config(*SMALL_GRAPH, batch=4)
    trainers = {{}}
    for name in ("default", "mirrored"):
        options = trainer_lib.TrainOptions(model_dir={str(tmp_path)!r} + "/" + name, strategy=name,
                                           progress=False, image_every=0)
        trainers[name] = trainer_lib.Trainer(config, options, dataset_fn=_dataset_fn(_frames(4), 4),
                                             steps_per_epoch=1)
    one, two = trainers["default"], trainers["mirrored"]
    assert one.task.num_replicas == 1 and two.task.num_replicas == 2, two.task.num_replicas
    for a, b in zip(two.task.model.weights, one.task.model.weights):
        a.assign(b)
    initial = _weights(one)

    def run_step(name, frames):
        # One device eagerly (its compiled step is run by the other tests), two compiled.
        tf.config.run_functions_eagerly(name == "default")
        return trainers[name].task.run_step(frames)[0]

    first = {{name: run_step(name, _frames(4, seed=1)) for name in trainers}}
    updates = {{name: [w - w0 for w, w0 in zip(_weights(t), initial)] for name, t in trainers.items()}}
    # Adam's first moments after one step are (1 - beta_1) x the all-reduced gradient.
    moments = {{}}
    for name, t in trainers.items():
        slots = [v.numpy().ravel() for o in t.task.optimizers for v in o.variables if "momentum" in v.path]
        moments[name] = np.concatenate(slots)
    second = {{name: run_step(name, _frames(4, seed=2)) for name in trainers}}
    for key in first["default"]:
        np.testing.assert_allclose(first["mirrored"][key], first["default"][key], rtol=1e-5, err_msg=key)
        # After one update: Adam's first step is lr x sign(gradient), so near-zero gradients that
        # round to the other sign (up to 1% of the weights, checked below) move a loss by up to ~1%.
        np.testing.assert_allclose(second["mirrored"][key], second["default"][key], rtol=1e-2, err_msg=key)
    lr = config["train_params"]["lr_segmentation"]
    a = np.concatenate([u.ravel() for u in updates["default"]])
    b = np.concatenate([u.ravel() for u in updates["mirrored"]])
    assert np.abs(a).max() > 0.5 * lr  # an update happened
    g1, g2 = moments["default"], moments["mirrored"]
    assert g1.size > 1000 and np.abs(g1).max() > 0
    # One device normalises with the fused batch-norm kernel, two with all-reduced partial sums
    # (synchronised): they round differently, and near-zero gradients carry it, hence the
    # percent-level tolerance element-wise.
    relative_error = np.linalg.norm(g2 - g1) / np.linalg.norm(g1)
    print("gradient relative error", relative_error)
    assert relative_error < 1e-3, relative_error
    assert np.isclose(g2, g1, rtol=1e-2, atol=1e-4 * np.abs(g1).max()).mean() > 0.99
    # Updates: Adam's step is ~lr x sign(gradient), so a near-zero gradient may round either way.
    assert np.isclose(b, a, rtol=1e-3, atol=1e-6).mean() > 0.99
    assert np.abs(a - b).max() <= 2 * lr
    # XLA cannot hold the all-reduces of synchronised batch norm: a clear error up front.
    options = trainer_lib.TrainOptions(model_dir={str(tmp_path)!r} + "/xla", strategy="mirrored", xla=True)
    try:
        trainer_lib.Trainer(config, options, dataset_fn=_dataset_fn(_frames(4), 4), steps_per_epoch=1)
        raise AssertionError("no error for XLA with synchronised batch norm")
    except ValueError as e:
        assert "sync_batch_norm=false" in str(e), e
    print("OK", first["default"], first["mirrored"])
    """
    )
    proc = _run_python(code)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-5000:]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Two worker processes on one machine: minutes of start-up and training on 2 cores. The
# all-reduce they rely on is checked fast by the two-device test above.
@pytest.mark.slow
def test_multi_worker_on_loopback_trains_and_workers_agree(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    code = (
        _COMMON
        + f"""
    import json, os
    strategy = distribute.make_strategy("multi_worker")
    config = _config("train_params.num_epochs=1", batch=4)
    options = trainer_lib.TrainOptions(model_dir={str(tmp_path / "model")!r}, strategy="multi_worker",
                                       progress=False, image_every=0, checkpoint_every=2)
    t = trainer_lib.Trainer(config, options, dataset_fn=_dataset_fn(_frames(12), 4), steps_per_epoch=3,
                            strategy=strategy)
    assert t.task.num_replicas == 2
    result = t.train()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    np.savez({str(tmp_path)!r} + f"/worker{{task}}.npz", *_weights(t))
    print("OK", result.step, t.chief)
    """
    )
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = quiet_env(TF_CONFIG=tf_config)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(code)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and "OK 3" in out, out[-2000:] + err[-5000:]
    assert "True" in outputs[0][0] and "False" in outputs[1][0]  # worker 0 is the chief
    w0, w1 = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    assert tf.train.latest_checkpoint(str(tmp_path / "model" / "checkpoints")).endswith("ckpt-3")
    assert (tmp_path / "model" / "final" / "segmenter.keras").exists()
    assert not (tmp_path / "model" / "worker_scratch" / "worker_1").exists()


def _synthetic_videos(tmp_path, num_videos):
    from coseg_tf.data.synthetic import generate_synthetic_dataset

    return generate_synthetic_dataset(
        str(tmp_path / "data"), num_videos=num_videos, num_frames=4, size=SIZE, formats=("png",)
    )["png"]


def _train_args(tmp_path, data_root, steps):
    return [
        "--config=tiny",
        f"--data_dir={data_root}",
        f"--model_dir={tmp_path / 'model'}",
        f"--steps={steps}",
        "--checkpoint_every=2",
        "--image_every=0",
        "--log_every=1",
        "--set=train_params.batch_size=2",
        "--set=train_params.num_repeats=4",
        "--set=train_params.num_epochs=10",
        f"--set=dataset_params.frame_shape=[{SIZE},{SIZE},3]",
    ]


# Two runs of the command, one killed: minutes on 2 cores. Exact resumption is checked fast in
# process (test_resume_continues_exactly_where_training_stopped, the SIGTERM test).
@pytest.mark.slow
def test_training_killed_mid_run_resumes_to_the_same_step_count(tmp_path):
    data_root = _synthetic_videos(tmp_path, num_videos=4)
    env = quiet_env()
    command = [sys.executable, "-m", "coseg_tf.train", *_train_args(tmp_path, data_root, steps=10)]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    checkpoints = tmp_path / "model" / "checkpoints"
    deadline = time.time() + 180
    try:
        while time.time() < deadline and proc.poll() is None:
            latest = tf.train.latest_checkpoint(str(checkpoints)) if checkpoints.exists() else None
            if latest and int(latest.rsplit("-", 1)[1]) >= 4:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training ended before it could be killed:\n" + proc.stdout.read()
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1])
    assert 4 <= killed_at < 10
    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-5000:]
    assert f"resumed from {checkpoints}/ckpt-{killed_at}" in log
    assert "trained 10 steps" in log
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-10")
    assert (tmp_path / "model" / "final" / "segmenter.weights.h5").exists()
    assert (tmp_path / "model" / "config.yaml").exists() and (checkpoints / "config.yaml").exists()


def test_sigterm_checkpoints_and_stops_then_resumes(tmp_path, eager_steps):
    config = _config("train_params.num_epochs=2")
    trainer = _trainer(tmp_path, config, steps_per_epoch=2)
    original = trainer.task.train_step

    def step_then_signal(*args):
        if int(trainer.task.step.numpy()) == 0:  # during the first step, as a preemption notice would
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args)

    trainer.task.train_step = step_then_signal
    # The flag is all-reduced with the next step, so that every worker stops at the same one.
    with pytest.raises(trainer_lib.TrainingInterrupted, match="stopped at step 2"):
        trainer.train()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again
    assert _trainer(tmp_path, config, steps_per_epoch=2).train().step == 4


def test_command_names_bad_input_in_one_line_without_a_traceback(tmp_path):
    data_root = _synthetic_videos(tmp_path, num_videos=2)
    good = _train_args(tmp_path, data_root, steps=1)
    cases = {
        "no videos found for split 'train'": [a for a in good if not a.startswith("--data_dir")]
        + [f"--data_dir={tmp_path / 'empty'}"],
        f"--init_weights {tmp_path}/ckpt-600: not found": good + [f"--init_weights={tmp_path}/ckpt-600"],
        "unknown config key 'train_params.no_such_key'": good + ["--set=train_params.no_such_key=1"],
    }
    (tmp_path / "empty" / "train").mkdir(parents=True)
    for message, args in cases.items():
        result = run_module("coseg_tf.train", args, timeout=240)
        assert result.returncode == 2, (message, result.stderr[-3000:])
        assert "coseg-train: error: " in result.stderr and message in result.stderr, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "model" / "checkpoints").exists() or not any(
        (tmp_path / "model" / "checkpoints").glob("ckpt-*")
    )
