"""Shared test set-up: quiet TensorFlow, CPU only, and the path of the shared fixtures."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pathlib

import pytest

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
PARITY = SHARED / "fixtures" / "reference_parity"
# Modules with tests of 30 s or more, run first: one of them started last would end the run
# alone on one process while the other has nothing left (about 40 s of an idle core, measured).
LONG_MODULES = ("test_training_parity.py", "test_demo.py", "test_trainer.py", "test_quality_benchmark.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Puts the modules of LONG_MODULES first, each in its own order, then the rest as collected."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # stable: the order within each module stays


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    if not PARITY.is_dir():
        pytest.fail(f"reference parity fixtures not found at {PARITY}")
    return PARITY


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> pathlib.Path:
    """A temp folder common to every test process of the run, for what is built once for all.

    pytest-xdist workers each have a base temp folder under one common folder of the run; what
    goes here is built by the first process under `coseg_tf.testing.built_once` and read by the others.
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def export_session(shared_tmp) -> str:
    """Folder of the fitted tiny run and its full export (export/testing.py), built once."""
    return str(shared_tmp / "export_session")


@pytest.fixture
def parity_config(parity_dir, tmp_path):
    """Writes the parity checkpoint's model (`full`) as a config YAML; returns a writer.

    The writer takes an optional `num_segments` that replaces the checkpoint's K (for the
    mismatch checks) and returns the YAML's path.
    """
    from coseg_tf import config as config_lib

    def write(num_segments: int | None = None) -> str:
        params = json.loads((parity_dir / "manifest.json").read_text())["full"]["model_params"]
        seg = dict(params["segmentation_module_params"])
        gen = dict(params["reconstruction_module_params"])
        common = {key: seg.pop(key) for key in ("num_segments", "num_channels", "estimate_affine_part")}
        for key in ("num_segments", "num_channels"):
            gen.pop(key)
        if num_segments is not None:
            common["num_segments"] = num_segments
        config = {
            "dataset_params": {"frame_shape": [256, 256, 3]},
            "model_params": {
                "common_params": {**common, "sync_batch_norm": False},
                "segmentation_module_params": seg,
                "reconstruction_module_params": gen,
            },
        }
        path = tmp_path / f"parity_k{common['num_segments']}.yaml"
        config_lib.save_config(config_lib.build_config(config), str(path))
        return str(path)

    return write
