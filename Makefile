# Everything installs into a local virtualenv (.venv) from the package registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The fast suite (what CI runs).
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# Everything, including the slow tests (long training, multi-process runs).
test-all: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build dist *.egg-info
