"""Running a command as a user does, for tests: `python -m <module> ARGS` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment of a command under test: TF logging quiet, no GPU, plus `extra`."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra}


def run_module(module: str, args: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` with TF logging quiet and no GPU; output captured as text.

    A fresh process sees the command exactly as the console script runs it: its own absl
    flags, its own exit code, nothing left over from the test process.
    """
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=quiet_env())
