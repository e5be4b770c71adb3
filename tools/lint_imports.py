"""Checks the import contracts of `.importlinter` (import-linter) on the package as installed.

setup.py installs `export/` as `coseg_tf.export` (package_dir), while import-linter finds a
package's modules by walking its directory: on the source tree it would not see
`coseg_tf.export` at all, and an import of it from the library would go unnoticed. So this
lays the Python files out as the wheel does (`coseg_tf/` with `export/` inside it) in a
temporary directory and runs `lint-imports` there, with that directory first on the path.

Usage: python tools/lint_imports.py [--root DIR]   (DIR: the checkout, default this one)
Exit status: lint-imports' own (0 when every contract is kept), 2 for a DIR without the
package or the contracts.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

# Source folder -> where the wheel puts it (setup.py's package_dir); configs/ holds no Python.
LAYOUT = {"coseg_tf": "coseg_tf", "export": "coseg_tf/export"}
CONTRACTS = ".importlinter"
LINT_IMPORTS = "import sys, importlinter.cli as c; sys.exit(c.lint_imports_command())"


def stage(root: pathlib.Path, out: pathlib.Path) -> None:
    """Copies the Python files of `root` into `out` in the installed layout.

    Args:
        root: a checkout (holding `coseg_tf/`, `export/` and `.importlinter`).
        out: an empty directory.
    """
    for source, target in LAYOUT.items():
        for path in (root / source).rglob("*.py"):
            destination = out / target / path.relative_to(root / source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


def lint_imports(root: pathlib.Path) -> int:
    """Runs `lint-imports` with `root`'s contracts on `root`'s package as installed.

    Args:
        root: a checkout.

    Returns:
        lint-imports' exit status: 0 when every contract is kept, 1 when one is broken.

    Raises:
        FileNotFoundError: `root` lacks a package folder or the contracts file.
    """
    for needed in [*LAYOUT, CONTRACTS]:
        if not (root / needed).exists():
            raise FileNotFoundError(f"{root / needed}: not found (is {root} a coseg-tf checkout?)")
    with tempfile.TemporaryDirectory(prefix="coseg_lint_imports_") as workdir:
        stage(root, pathlib.Path(workdir))
        # The staged copy must shadow the editable install; that finder comes after the path's.
        env = {**os.environ, "PYTHONPATH": workdir}
        # lint-imports' own entry point, run by this interpreter (no console script on PATH needed).
        command = [sys.executable, "-c", LINT_IMPORTS, "--no-cache", str(root / CONTRACTS)]
        return subprocess.run(command, cwd=workdir, env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    try:
        return lint_imports(args.root.resolve())
    except FileNotFoundError as e:
        print(f"lint_imports: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
