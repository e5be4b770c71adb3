"""Running a command as a user does, for tests: `python -m <module> ARGS` in a fresh process."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence


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


@contextlib.contextmanager
def built_once(marker: str) -> Iterator[bool]:
    """Holds `marker`'s lock; yields whether the file `marker` still has to be written.

    Parallel test processes (pytest-xdist workers) share one folder: the first builds what the
    marker stands for and writes the marker last, the others wait on the lock and then read
    what it built.

    Args:
      marker: Path of the file that says the shared thing is complete.

    Yields:
      True if the caller must build it (and write `marker`), False if it is already built.
    """
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield not os.path.exists(marker)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
