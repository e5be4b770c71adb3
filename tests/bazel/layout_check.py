"""Under Bazel: the package layout of setup.py, from the runfiles alone (//tests/bazel:layout_check).

Not collected by plain pytest (no `test_` prefix): it checks Bazel's runfiles, not a checkout.
"""

import importlib.util
import os
import pathlib
import sys

import pytest

if "TEST_SRCDIR" not in os.environ:  # pragma: no cover - only meaningful under `bazel test`
    pytest.skip("runs under `bazel test` only", allow_module_level=True)

RUNFILES = pathlib.Path(os.environ["TEST_SRCDIR"]).absolute()


def _inside_runfiles(path: str) -> bool:
    # Not resolved: runfiles are symlinks into the source tree, and following them would
    # hide where Python actually found the file.
    return pathlib.Path(path).absolute().is_relative_to(RUNFILES)


def test_project_imports_from_runfiles_only():
    import coseg_tf

    assert _inside_runfiles(coseg_tf.__file__), coseg_tf.__file__
    for entry in sys.path:
        if entry and not _inside_runfiles(entry):
            # Outside the runfiles only the interpreter's own and third-party directories.
            assert not (pathlib.Path(entry) / "coseg_tf").exists(), f"project source on sys.path: {entry}"
    finders = [type(f).__module__ for f in sys.meta_path]
    assert not any("editable" in name for name in finders), finders


def test_export_and_configs_are_sub_packages_as_installed():
    import coseg_tf.configs
    import coseg_tf.export
    from coseg_tf import config

    assert pathlib.Path(coseg_tf.export.__file__).parent.name == "export"
    assert pathlib.Path(coseg_tf.export.__file__).parent.parent.name == "coseg_tf"
    path = config.packaged_config_path("vox-256-sem-10segments")
    assert _inside_runfiles(path), path
    assert config.load_config(path)["model_params"]["common_params"]["num_segments"] == 10


def test_third_party_packages_come_from_the_venv():
    spec = importlib.util.find_spec("yaml")
    assert spec is not None and spec.origin is not None
    assert "site-packages" in spec.origin
