"""Main of every Bazel py_test: runs one test module under pytest, inside the runfiles.

Usage (set by `coseg_py_test` in defs.bzl): pytest_runner.py TEST_FILE PYTEST_INI [pytest args].
Bazel starts tests in the runfiles copy of the workspace, so TEST_FILE and PYTEST_INI are
relative to it and `coseg_tf` imports only from what the target's deps put there.

Like `make test`, tests marked `@pytest.mark.slow` are deselected unless COSEG_PYTEST_ALL=1
(`bazel test --config=all //...`). A module whose tests are all deselected passes.
"""

import os
import sys

import pytest


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: pytest_runner.py TEST_FILE PYTEST_INI [pytest args]", file=sys.stderr)
        return 2
    test_file, ini, *extra = argv
    args = [test_file, "-c", ini, "--rootdir", os.getcwd(), "-p", "no:cacheprovider", "-q"]
    if os.environ.get("COSEG_PYTEST_ALL") != "1":
        args += ["-m", "not slow"]
    if os.environ.get("XML_OUTPUT_FILE"):
        args += ["--junitxml", os.environ["XML_OUTPUT_FILE"]]
    if os.environ.get("TEST_TMPDIR"):
        args += ["--basetemp", os.path.join(os.environ["TEST_TMPDIR"], "pytest")]
    code = pytest.main(args + extra)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print(f"{test_file}: every test deselected (slow); set COSEG_PYTEST_ALL=1 to run them")
        return 0
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
