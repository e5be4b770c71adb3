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
