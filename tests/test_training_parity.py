"""Training parity: two training steps of the trainer against the original's recorded steps.

`../shared/fixtures/reference_training/` holds two train-mode steps of the original PyTorch
implementation (tiny widths, the paper's topology, a torchvision-layout VGG19, the recorded
equivariance transforms). Here the trainer's own step (`TrainingTask.run_step`) runs them from the
same weights, and its losses, gradients, batch-norm running statistics and Adam updates are
compared with the recording, at the tolerances of the fixture's README.

Gradients are read from Adam's first moment, which the step itself wrote: m_1 = (1 - b1) g_1
and m_2 = b1 m_1 + (1 - b1) g_2, so no second forward pass (and no second batch-norm update)
is needed to see them. Adam's first steps are close to lr * sign(m): an element whose moment
is within the gradient tolerance of zero moves by +-lr on either side at random, so the update
is compared where the reference moment is resolvable, and step 2 starts from the recorded
weights and statistics after step 1 (with our own optimiser state), so that those random
+-lr moves do not feed into step 2's forward pass. The mutation tests (`slow`) show that each
way of training another function than the original's fails one of these checks.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import config as config_lib
from coseg_tf import geometry, layers, losses, weights
from coseg_tf.trainer import Trainer, TrainOptions

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reference_training"
MODULES = ("segmentation_module", "reconstruction_module")
LOSS_RTOL = 1e-4
GRADIENT_TOL = 1e-2  # of the largest absolute value of the reference gradient tensor
# Gradients that reach a parameter only through the generator's bilinear sampling and the
# perceptual loss are rough: moving the generator's sampling positions by 1e-8 (1e-6) of the
# frame changes the segmentation head's gradient by 0.08% (0.5-0.7%) of its scale. Three
# tensors exceed 1e-2 for it (measured: segmentation head 1.2% at step 1, 2.0% at step 2; the
# first bottleneck conv 1.01% at step 2); they are held to 3e-2, everything else to 1e-2.
ROUGH_GRADIENT_TOL = {
    "segmentation_module/segmentation.weight": 3e-2,
    "segmentation_module/segmentation.bias": 3e-2,
    "reconstruction_module/bottleneck.r0.conv1.weight": 3e-2,
}
STATISTICS_RTOL = 1e-4
# Adam updates: |ours - reference| / |reference| per tensor (the first steps are ~lr * sign(g)).
UPDATE_TOL = 1e-2
# Parameters whose true gradient is zero (conv biases followed by batch norm; the shift head's
# bias, which the spatial softmax cancels): both sides hold float noise, so their gradient is
# only checked to be near zero and their Adam update (lr * sign of noise) is not compared.
NO_TRUE_GRADIENT = (".conv.bias", ".conv1.bias", "shift.bias")
NEAR_ZERO = 1e-3  # of the largest gradient of the module


@dataclasses.dataclass
class Differences:
    """The largest relative difference of each kind of recorded quantity, and the worst key."""

    values: dict[str, tuple[float, str]] = dataclasses.field(default_factory=dict)

    def add(self, kind: str, value: float, key: str) -> None:
        if kind not in self.values or value > self.values[kind][0]:
            self.values[kind] = (float(value), key)


def _reference():
    if not REFERENCE.is_dir():
        pytest.fail(f"reference training fixtures not found at {REFERENCE}")
    manifest = json.loads((REFERENCE / "manifest.json").read_text())
    io = dict(np.load(REFERENCE / "train_step_io.npz"))
    return manifest, io


def _config(manifest: dict, overrides: list[str] = ()) -> dict:
    model, train = manifest["model_params"], manifest["train_params"]
    seg, gen = dict(model["segmentation_module_params"]), dict(model["reconstruction_module_params"])
    common = {k: seg.pop(k) for k in ("num_segments", "num_channels", "estimate_affine_part")}
    for key in ("num_segments", "num_channels"):
        gen.pop(key)
    optimiser = manifest["optimiser"]
    given = {
        "dataset_params": {"frame_shape": [256, 256, 3]},
        "model_params": {
            "common_params": common,
            "segmentation_module_params": seg,
            "reconstruction_module_params": gen,
        },
        "train_params": {
            "batch_size": 4,
            "scales": train["scales"],
            "loss_weights": train["loss_weights"],
            "transform_params": train["transform_params"],
            "lr_segmentation": optimiser["lr"],
            "lr_reconstruction": optimiser["lr"],
            "adam_betas": optimiser["betas"],
            "vgg_weights": str(REFERENCE / "vgg19_features_float16.npz"),
        },
    }
    return config_lib.build_config(given, list(overrides))


def _trainer(manifest: dict, tmp_path: pathlib.Path, overrides: list[str] = ()) -> Trainer:
    def no_data(context, epoch):
        raise AssertionError("the parity steps are fed by hand")

    options = TrainOptions(model_dir=str(tmp_path / "run"), mixed_precision="off", progress=False)
    trainer = Trainer(_config(manifest, overrides), options, dataset_fn=no_data, steps_per_epoch=1)
    report = weights.load_original_weights(
        trainer.task.model.segmenter, trainer.task.model.generator, str(REFERENCE / "train_step_weights.npz")
    )
    assert not report.missing and not report.ignored, report.summary()
    return trainer


def _variables(trainer: Trainer, manifest: dict) -> dict[str, dict[str, tuple]]:
    keys = {module: [] for module in MODULES}
    for name in manifest["weight_keys"]:
        module, _, key = name.partition("/")
        keys[module].append(key)
    return {
        module: weights.state_dict_variables(keras_module, keys[module])
        for module, keras_module in zip(MODULES, trainer.task.modules, strict=True)
    }


def _first_moments(trainer: Trainer, variables: dict) -> dict[str, np.ndarray]:
    """Adam's first moment of every trainable parameter, in PyTorch layout, keyed module/key."""
    out = {}
    for module, optimizer in zip(MODULES, trainer.task.optimizers, strict=True):
        for key, (variable, is_kernel) in variables[module].items():
            if not variable.trainable:
                continue
            moment = optimizer._momentums[optimizer._get_variable_index(variable)]
            out[f"{module}/{key}"] = weights.to_torch_layout(moment.numpy(), is_kernel)
    return out


def _values(variables: dict) -> dict[str, np.ndarray]:
    return {
        f"{module}/{key}": weights.to_torch_layout(variable.numpy(), is_kernel)
        for module in MODULES
        for key, (variable, is_kernel) in variables[module].items()
    }


def run_and_compare(tmp_path: pathlib.Path, overrides: list[str] = ()) -> tuple[list[str], Differences]:
    """Runs the two recorded steps through the trainer; returns what failed and the differences."""
    manifest, io = _reference()
    trainer = _trainer(manifest, tmp_path, overrides)
    np.testing.assert_allclose(
        geometry.make_coordinate_grid(5, 5).numpy().reshape(1, 5, 5, 2), io["control_points"], atol=1e-7
    )
    variables = _variables(trainer, manifest)
    beta_1 = float(manifest["optimiser"]["betas"][0])
    batch = {"source": io["input/source"], "target": io["input/target"]}
    failures: list[str] = []
    diffs = Differences()
    before, previous_moments, reference_moments = _values(variables), None, None
    gradient_errors: list[float] = []
    for step in (1, 2):
        got_losses, applied = trainer.task.run_step(
            batch, transform=(io[f"step{step}/theta"], io[f"step{step}/control_params"])
        )
        assert applied, f"step {step} was skipped"
        for term in ("perceptual", "equivariance_shift", "equivariance_affine"):
            expected = float(io[f"step{step}/loss/{term}"])
            error = abs(got_losses[term] - expected) / abs(expected)
            diffs.add("loss", error, f"step{step}/{term}")
            if error > LOSS_RTOL:
                failures.append(f"loss step{step}/{term}: {got_losses[term]!r} vs {expected!r}")
        moments = _first_moments(trainer, variables)
        after = _values(variables)
        module_scale = {
            module: max(np.abs(io[f"step{step}/grad/{k}"]).max() for k in moments if k.startswith(module))
            for module in MODULES
        }
        reference_moments = {
            key: (0.0 if reference_moments is None else beta_1 * reference_moments[key])
            + (1.0 - beta_1) * io[f"step{step}/grad/{key}"]
            for key in moments
        }
        for key, moment in moments.items():
            start = np.zeros_like(moment) if previous_moments is None else beta_1 * previous_moments[key]
            gradient = (moment - start) / (1.0 - beta_1)
            expected = io[f"step{step}/grad/{key}"]
            module = key.split("/")[0]
            if key.endswith(NO_TRUE_GRADIENT):
                error = np.abs(gradient).max() / module_scale[module]
                diffs.add("near-zero gradient", error, f"step{step}/{key}")
                if error > NEAR_ZERO:
                    failures.append(
                        f"gradient step{step}/{key} should be ~0: |g| {np.abs(gradient).max():.3g}"
                    )
                continue
            error = np.abs(gradient - expected).max() / np.abs(expected).max()
            diffs.add("gradient", error, f"step{step}/{key}")
            gradient_errors.append(error)
            if error > ROUGH_GRADIENT_TOL.get(key, GRADIENT_TOL):
                failures.append(f"gradient step{step}/{key}: {error:.3g} of its largest value")
            resolved = np.abs(reference_moments[key]) > GRADIENT_TOL * np.abs(reference_moments[key]).max()
            update = (after[key] - before[key])[resolved]
            expected_update = (io[f"step{step}/after/{key}"] - io_before(io, key, step))[resolved]
            error = np.linalg.norm(update - expected_update) / np.linalg.norm(expected_update)
            diffs.add("adam update", error, f"step{step}/{key}")
            if error > max(UPDATE_TOL, ROUGH_GRADIENT_TOL.get(key, 0.0)):
                failures.append(f"adam update step{step}/{key}: {error:.3g} of its norm")
        for key, value in after.items():
            if key.endswith(("running_mean", "running_var")):
                expected = io[f"step{step}/after/{key}"]
                error = np.abs(value - expected).max() / np.abs(expected).max()
                diffs.add("running statistics", error, f"step{step}/{key}")
                if error > STATISTICS_RTOL:
                    failures.append(f"running statistic step{step}/{key}: {error:.3g} relative")
        # Step 2 from the original's state after step 1 (see the module docstring).
        for module in MODULES:
            for key, (variable, is_kernel) in variables[module].items():
                value = io[f"step{step}/after/{module}/{key}"]
                variable.assign(np.transpose(value, (2, 3, 1, 0)) if is_kernel else value)
        before, previous_moments = _values(variables), moments
    diffs.values["median gradient"] = (float(np.median(gradient_errors)), "all tensors, both steps")
    return failures, diffs


def io_before(io: dict, key: str, step: int) -> np.ndarray:
    """The recorded value of a parameter before `step`: the start weights or the previous step's."""
    if step == 1:
        return np.load(REFERENCE / "train_step_weights.npz")[key]
    return io[f"step{step - 1}/after/{key}"]


def test_two_training_steps_match_the_original(tmp_path):
    failures, diffs = run_and_compare(tmp_path)
    for kind, (value, key) in sorted(diffs.values.items()):
        # Printed so that `pytest -s` shows the figures the README quotes.
        print(f"{kind} difference: {value:.3g} ({key})")
    kinds = {"loss", "gradient", "median gradient", "near-zero gradient", "adam update", "running statistics"}
    assert set(diffs.values) == kinds  # every kind of recorded quantity was compared
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------- mutations


def _mutate_source_transformed(monkeypatch):
    """The equivariance transform warps the source frame instead of the target."""
    _, io = _reference()
    source = tf.constant(io["input/source"])
    warp = losses.EquivarianceTransform.transform_frame
    monkeypatch.setattr(
        losses.EquivarianceTransform, "transform_frame", lambda self, frame: warp(self, source)
    )


def _mutate_jacobian_stop_gradient(monkeypatch):
    """A stop-gradient on the equivariance jacobian J_W(p_W) A_W of the affine term."""
    matmul = tf.matmul

    def equivariance_losses(seg_target, transformed_seg, transform, weight, with_affine):
        out = original(seg_target, transformed_seg, transform, weight, with_affine)
        jacobian = tf.stop_gradient(
            matmul(transform.jacobian(transformed_seg["shift"]), transformed_seg["affine"])
        )
        value = matmul(geometry.inverse_2x2(seg_target["affine"]), jacobian)
        out["equivariance_affine"] = weight * tf.reduce_mean(tf.abs(tf.eye(2) - value))
        return out

    from coseg_tf import model

    original = model.equivariance_losses
    monkeypatch.setattr(model, "equivariance_losses", equivariance_losses)


def _mutate_torch_momentum(monkeypatch):
    """Keras batch-norm momentum set to PyTorch's number as is (0.1)."""
    monkeypatch.setattr(layers, "TORCH_BATCH_NORM_MOMENTUM", 0.1)


def _mutate_biased_running_variance(monkeypatch):
    """Keras' own batch-norm update: the biased batch variance into the running variance."""
    monkeypatch.setattr(layers.TorchBatchNorm, "call", tf.keras.layers.BatchNormalization.call)


MUTATIONS = {
    # name: (how to mutate: a monkeypatch function or config overrides, the check that must fail)
    "visibility stop-gradient removed": (
        ["model_params.reconstruction_module_params.visibility_stop_gradient=false"],
        "gradient",
    ),
    "stop-gradient on the equivariance jacobian": (_mutate_jacobian_stop_gradient, "gradient"),
    "equivariance transform on the source": (_mutate_source_transformed, "loss"),
    "batch-norm momentum 0.1": (_mutate_torch_momentum, "running statistic"),
    "biased running variance": (_mutate_biased_running_variance, "running statistic"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_mutation_fails_the_parity_check(tmp_path, monkeypatch, mutation):
    mutate, caught_by = MUTATIONS[mutation]
    overrides = mutate if isinstance(mutate, list) else []
    if callable(mutate):
        mutate(monkeypatch)
    failures, _ = run_and_compare(tmp_path, overrides)
    print(f"{mutation}: {len(failures)} failed checks, first: {failures[:2]}")
    assert any(f.startswith(caught_by) for f in failures), failures
