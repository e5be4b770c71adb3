#!/usr/bin/env bash
# Builds the wheel (and sdist) with `python -m build`, installs the wheel into a fresh
# virtualenv, and runs it from there, away from the checkout:
#   - the wheel holds every module of coseg_tf/ and export/ and every config of configs/;
#   - installed with its cpu extra it brings one TensorFlow distribution and TensorBoard;
#   - `import coseg_tf, coseg_tf.export, coseg_tf.configs` comes from the new venv's
#     site-packages, and the packaged config `vox-256-sem-10segments` loads;
#   - every console script of the installed distribution runs `--help`.
#
# Usage: tests/packaging/check_wheel.sh   (needs `make install`: python -m build from .venv)
# The dependencies come from PyPI through pip's cache, so after `make install` the reinstall
# downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PY=${PY:-$REPO/.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coseg-wheel-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
checks=0

step() { echo "== wheel-check: $*"; }

step "python -m build -> $WORK/dist"
start=$SECONDS
"$PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || {
  cat "$WORK/build.log" >&2
  exit 1
}
wheel=$(ls "$WORK"/dist/coseg_tf-*.whl)
sdist=$(ls "$WORK"/dist/coseg_tf-*.tar.gz)
echo "built $(basename "$wheel") and $(basename "$sdist") in $((SECONDS - start)) s"

step "wheel contents match the source tree"
"$PY" - "$wheel" <<'EOF'
import pathlib
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
expected = set()
for src, dest in (("coseg_tf", "coseg_tf"), ("export", "coseg_tf/export"), ("configs", "coseg_tf/configs")):
    for path in pathlib.Path(src).rglob("*"):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            expected.add(f"{dest}/{path.relative_to(src).as_posix()}")
missing = sorted(expected - names)
if missing:
    sys.exit(
        "missing from the wheel (a directory without __init__.py is not a package for setup.py): "
        + ", ".join(missing)
    )
print(f"{len(expected)} modules and configs present")
EOF
checks=$((checks + 1))

step "install into a fresh virtualenv"
start=$SECONDS
"$PY" -m venv "$WORK/venv"
{
  "$WORK/venv/bin/python" -m pip install --upgrade pip &&
    "$WORK/venv/bin/python" -m pip install "$wheel[cpu]"
} >"$WORK/pip.log" 2>&1 || {
  cat "$WORK/pip.log" >&2
  exit 1
}
echo "installed in $((SECONDS - start)) s"
checks=$((checks + 1))

# Run from an empty directory so that nothing of the checkout is importable.
cd "$WORK"
step "one TensorFlow distribution, and TensorBoard, installed with the cpu extra"
"$WORK/venv/bin/python" - <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

installed = {}
for name in ("tensorflow-cpu", "tensorflow", "tensorboard"):
    try:
        installed[name] = version(name)
    except PackageNotFoundError:
        pass
if "tensorflow" in installed or "tensorflow-cpu" not in installed or "tensorboard" not in installed:
    sys.exit(f"expected tensorflow-cpu and tensorboard without tensorflow, got {installed}")
print(", ".join(f"{name} {v}" for name, v in installed.items()))
EOF
checks=$((checks + 1))

step "import from the installed wheel"
"$WORK/venv/bin/python" - <<'EOF'
import pathlib
import sys
import sysconfig

import coseg_tf
import coseg_tf.configs
import coseg_tf.export
from coseg_tf import config

site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
for module in (coseg_tf, coseg_tf.configs, coseg_tf.export):
    where = pathlib.Path(module.__file__).resolve()
    if not where.is_relative_to(site):
        sys.exit(f"{module.__name__} imported from {where}, not from the venv's {site}")
path = config.packaged_config_path("vox-256-sem-10segments")
k = config.load_config(path)["model_params"]["common_params"]["num_segments"]
assert k == 10, k
print(f"coseg_tf {coseg_tf.__version__} from {site}; packaged config read ({path})")
EOF
checks=$((checks + 1))

step "console scripts"
scripts=$("$WORK/venv/bin/python" -c '
from importlib.metadata import distribution
print(" ".join(ep.name for ep in distribution("coseg-tf").entry_points if ep.group == "console_scripts"))')
if [[ -z "$scripts" ]]; then
  echo "no console scripts declared yet"
fi
for script in $scripts; do
  # absl's --help prints the usage and exits 1; anything else non-zero is a failure.
  rc=0
  "$WORK/venv/bin/$script" --help >"$WORK/help.txt" 2>&1 || rc=$?
  if ! { [[ $rc -eq 0 ]] || { [[ $rc -eq 1 ]] && grep -q -- "Try --helpfull" "$WORK/help.txt"; }; }; then
    cat "$WORK/help.txt" >&2
    echo "$script --help failed (exit $rc)" >&2
    exit 1
  fi
  echo "$script --help: ok ($(wc -l <"$WORK/help.txt") lines)"
  # The same command under Bazel: a py_binary from COMMANDS in a BUILD file.
  if ! grep -q "\"$script\"" "$REPO/coseg_tf/BUILD" "$REPO/export/BUILD"; then
    echo "$script has no py_binary: add it to COMMANDS in coseg_tf/BUILD (or export/BUILD)" >&2
    exit 1
  fi
  checks=$((checks + 1))
done

echo "wheel-check: $checks passed, 0 failed"
