"""The one entry point of every absl command, so that `--help` lists the command's flags."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags

# Exit statuses shared by the commands (beyond 0): the work ran but did not pass (an export
# below its agreement threshold, a model that would not convert); bad input (a flag value,
# a file, a config, a checkpoint), reported in one line that names it.
CHECK_FAILED = 1
BAD_INPUT = 2


def report_error(command: str, error: BaseException, status: int = BAD_INPUT) -> int:
    """Prints `<command>: error: <error>` to stderr; returns `status` for `sys.exit`."""
    print(f"{command}: error: {error}", file=sys.stderr)
    return status


def run(main: Callable[[list[str]], Any], define_flags: Callable[[], None]) -> None:
    """Defines the command's flags, makes them the program's key flags, and runs `main`.

    absl's `--help` lists the key flags of the program (`sys.argv[0]`), which for a console
    script is the generated wrapper, not the module that defines the flags. Defining them
    here rather than on import also lets one process import several commands.
    """
    before = set(flags.FLAGS)
    define_flags()
    names = set(flags.FLAGS) - before
    for name in sorted(names):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    app.run(main)
