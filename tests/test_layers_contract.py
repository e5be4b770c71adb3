"""The import contracts (.importlinter): kept by the package, broken by a planted import.

`tools/lint_imports.py` runs lint-imports on a checkout; here it runs on copies of the
package as imported (the source tree, or Bazel's runfiles), once as they are and once with
one import planted that breaks the layers.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import coseg_tf
import coseg_tf.export

REPO = pathlib.Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "lint_imports.py"


@pytest.fixture
def checkout(tmp_path):
    """A copy of the package's Python files and contracts in the source tree's layout."""
    library = pathlib.Path(coseg_tf.__file__).parent
    export = pathlib.Path(coseg_tf.export.__file__).parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    # Under Bazel the export package is placed inside coseg_tf/; the checkout has it beside.
    shutil.copytree(library, tmp_path / "coseg_tf", ignore=shutil.ignore_patterns("export", "__pycache__"))
    shutil.copytree(export, tmp_path / "export", ignore=ignore)
    shutil.copyfile(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def _lint(root: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def _plant(path: pathlib.Path, anchor: str, line: str) -> None:
    source = path.read_text()
    assert anchor in source, f"{path} no longer has {anchor!r}; plant the import elsewhere"
    path.write_text(source.replace(anchor, f"{anchor}\n{line}", 1))


def test_the_package_keeps_every_contract(checkout):
    result = _lint(checkout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_model_importing_the_export_package_breaks_the_layers(checkout):
    _plant(
        checkout / "coseg_tf" / "model.py",
        "from coseg_tf import config as config_lib",
        "from coseg_tf.export import saved_model  # noqa: F401",
    )
    result = _lint(checkout)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "coseg_tf.model is not allowed to import coseg_tf.export.saved_model" in result.stdout
    assert "coseg_tf.model is not allowed to import coseg_tf.export:" in result.stdout


def test_a_cycle_between_the_data_readers_is_found(checkout):
    # tfrecords.py and pipeline.py share catalog.py; importing one from the other is a cycle.
    _plant(
        checkout / "coseg_tf" / "data" / "tfrecords.py",
        "from coseg_tf.data import catalog, video_io",
        "from coseg_tf.data import pipeline  # noqa: F401",
    )
    result = _lint(checkout)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No import cycles" in result.stdout and "BROKEN" in result.stdout
    assert "- .tfrecords -> .pipeline (1 import)" in result.stdout.split("Broken contracts")[-1]


def test_a_checkout_without_contracts_is_named_in_one_line(checkout):
    (checkout / ".importlinter").unlink()
    result = _lint(checkout)
    assert result.returncode == 2
    assert result.stderr.strip() == f"lint_imports: error: {checkout / '.importlinter'}: not found " + (
        f"(is {checkout} a coseg-tf checkout?)"
    )
