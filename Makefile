# Everything installs into a local virtualenv (.venv) from the package registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BAZEL ?= bazel
# What `make bazel-test` runs: every fast target. If it outgrows CI, narrow it, e.g.
# BAZEL_TARGETS="//tests:test_config //tests/bazel:layout_check".
BAZEL_TARGETS ?= //...
NPM ?= npm
BUILDIFIER := tools/buildifier/node_modules/.bin/buildifier
# The Starlark files buildifier checks: all but the stub repositories in third_party/.
BAZEL_FILES = $(shell find . \( -path ./.git -o -path './.venv*' -o -path './bazel-*' \
	-o -path ./third_party -o -name node_modules \) -prune -o \
	\( -name BUILD -o -name BUILD.bazel -o -name WORKSPACE -o -name '*.bzl' \) -print | sort)
# native-py / native-sh-binary ask for loads from rules_python / rules_shell, which are
# downloads; Bazel 4.2.3 has these rules built in.
BUILDIFIER_WARNINGS := -native-py,-native-sh-binary

.PHONY: install demo test test-all clean lint bazel-tools bazel-test bazel-test-all wheel-check

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,test]"
	touch $(STAMP)

install: $(STAMP)

# The main job: synthetic data, training, held-out evaluation and a picture (README, "Quick start: the main job").
demo: $(STAMP)
	$(PY) -m coseg_tf.demo --output_dir runs/demo

# The fast suite (what CI runs), in two processes (pytest-xdist); an idle one takes queued tests of the other.
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n 2 --dist worksteal tests

# Everything, including the slow tests (long training, multi-process runs).
test-all: $(STAMP)
	$(PY) -m pytest -q tests

# ruff (lint and format) over the Python files, the import contracts of .importlinter
# (lint-imports, on the package as installed), buildifier over the Bazel files.
# Markdown is left out of the format check: ruff 0.17 would also reformat the README's code.
lint: $(STAMP) $(BUILDIFIER)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --extend-exclude '*.md' .
	$(PY) tools/lint_imports.py
	$(BUILDIFIER) -mode=check -lint=warn -warnings=$(BUILDIFIER_WARNINGS) $(BAZEL_FILES)
	@echo "lint: ruff, import contracts and buildifier clean"

# buildifier comes from npm (the package ships the binary), pinned by package-lock.json.
$(BUILDIFIER): tools/buildifier/package.json tools/buildifier/package-lock.json
	command -v $(NPM) >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm)
	cd tools/buildifier && $(NPM) ci --no-audit --no-fund
	touch $@

# Debian's Bazel 4.2.3; everything it needs is in the repo (see WORKSPACE and .bazelrc).
bazel-tools:
	@command -v $(BAZEL) >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bazel-bootstrap)

# The fast Bazel tests (slow-tagged modules and slow-marked tests left out), offline, and the
# proof that a test missing a declared dependency fails.
bazel-test: $(STAMP) bazel-tools
	$(BAZEL) test $(BAZEL_TARGETS)
	tests/bazel/check_missing_dep.sh

# Every Bazel test, slow ones included.
bazel-test-all: $(STAMP) bazel-tools
	$(BAZEL) test --config=all //...

# Build the wheel, install it into a fresh virtualenv, import and run the commands from it.
wheel-check: $(STAMP)
	tests/packaging/check_wheel.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
	-command -v $(BAZEL) >/dev/null && $(BAZEL) clean
