"""Shared test set-up: quiet TensorFlow, CPU only, and the path of the shared fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pathlib

import pytest

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
PARITY = SHARED / "fixtures" / "reference_parity"


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    if not PARITY.is_dir():
        pytest.fail(f"reference parity fixtures not found at {PARITY}")
    return PARITY


@pytest.fixture(scope="session")
def export_session(tmp_path_factory) -> str:
    """Folder of the fitted tiny run and its full export (export/testing.py), built once.

    pytest-xdist workers each have a base temp folder under one common folder of the run;
    the fixture points them all at that common folder, where the first builds and the others read.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return str(base / "export_session")
