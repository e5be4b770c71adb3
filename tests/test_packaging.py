"""setup.py's requirements: one TensorFlow distribution per environment, TensorBoard included."""

import pathlib
import runpy
import types
from unittest import mock

import pytest
from packaging.requirements import Requirement

REPO = pathlib.Path(__file__).resolve().parents[1]
# The distributions that install the `tensorflow` import package.
TENSORFLOW_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos"}


@pytest.fixture(scope="module")
def distribution():
    """setup()'s arguments, as setup.py passes them (setup itself is not run)."""
    import setuptools

    arguments = {}
    with mock.patch.object(setuptools, "setup", lambda **kwargs: arguments.update(kwargs)):
        runpy.run_path(str(REPO / "setup.py"))
    return types.SimpleNamespace(**arguments)


def _names(requirements):
    return [Requirement(r).name.lower() for r in requirements]


def test_the_base_requirements_name_no_tensorflow_build(distribution):
    assert not set(_names(distribution.install_requires)) & TENSORFLOW_DISTRIBUTIONS


def test_the_cpu_and_gpu_extras_each_bring_one_tensorflow_build(distribution):
    extras = distribution.extras_require
    assert [n for n in _names(extras["cpu"]) if n in TENSORFLOW_DISTRIBUTIONS] == ["tensorflow-cpu"]
    gpu = [Requirement(r) for r in extras["gpu"] if Requirement(r).name in TENSORFLOW_DISTRIBUTIONS]
    assert [(r.name, r.extras) for r in gpu] == [("tensorflow", {"and-cuda"})]
    # Same version, so that code and tests see the same TensorFlow on either build.
    assert {str(r.specifier) for r in map(Requirement, extras["cpu"] + extras["gpu"])} == {"==2.21.0"}


def test_tensorboard_installs_with_the_package(distribution):
    assert "tensorboard" in _names(distribution.install_requires)
