"""The one entry point of every command: flags, deprecated spellings, and bad input in one line.

Every command is a module with `_define_flags()` and `_run(argv) -> int | None` and a
`main()` that calls `cli.run(_run, _define_flags, "coseg-<name>")`. The wrapper turns bad
input into one line on stderr, `coseg-<name>: error: <message>`, and exit status 2:
flag values absl refuses, `app.UsageError`, every `coseg_tf.errors.CosegError`, and the
file-system errors that mean a path given by the user is wrong (`OSError` and TensorFlow's
not-found, permission and data-loss errors). Anything else is a bug and keeps its traceback.
`resolve_config` reads the config that a training command's flags name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags, logging

from coseg_tf import config as config_lib
from coseg_tf import fileio, pth_reader
from coseg_tf.errors import CosegError

# Exit statuses shared by the commands (beyond 0): the work ran but did not pass (an export
# below its agreement threshold, a model that would not convert); bad input (a flag value,
# a file, a config, a checkpoint), reported in one line that names it.
CHECK_FAILED = 1
BAD_INPUT = 2

# Deprecated flag spellings defined by the running command: old name -> current name.
_DEPRECATED: dict[str, str] = {}


def report_error(command: str, error: BaseException | str, status: int = BAD_INPUT) -> int:
    """Prints `<command>: error: <error>` to stderr on one line.

    Args:
      command: The command's name, e.g. `coseg-train`.
      error: The exception (or message) to report; line breaks in it are folded.
      status: The exit status to return.

    Returns:
      `status`, for `sys.exit`.
    """
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{command}: error: {message}", file=sys.stderr)
    return status


def deprecated_alias(old: str, new: str) -> None:
    """Defines `--old` as a deprecated spelling of the already defined `--new`.

    The value goes to `--new`; `run` logs a warning naming both when `--old` is given.

    Args:
      old: The deprecated flag name.
      new: The current flag name (defined before this call).
    """
    flags.DEFINE_alias(old, new)
    _DEPRECATED[old] = new


def check_output_dir(path: str, flag: str) -> None:
    """Refuses an output directory that cannot be one, before any work is done.

    A local path that exists but is not a directory, or whose nearest existing ancestor is
    not writable, is refused. Remote (`scheme://`) paths are left to the writer.

    Args:
      path: The directory the command will create or write into.
      flag: The flag that named it, for the message (e.g. `--output_dir`).

    Raises:
      CosegError: If `path` cannot be used as an output directory.
    """
    if fileio.is_remote(path):
        return
    path = fileio.local_path(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise CosegError(f"{flag}={path} is a file, not a directory")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CosegError(f"{flag}={path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CosegError(f"{flag}={path}: {existing} is not writable")


def check_weights_file(path: str | None) -> None:
    """Reads an original weights file (`.pth.tar`, `.pth`, `.tar`, `.npz`) before TensorFlow loads.

    A damaged or foreign file is then refused in a fraction of a second instead of after the
    import and the model's build (about 8 s); the loader reads the file again, which costs far
    less than that build.

    Args:
      path: A `--model` or `--init_weights` value. Anything but a local original weights file
        (a run folder, a `.keras` file, a checkpoint, a cloud URL, a missing path) is left to
        the loader.

    Raises:
      CheckpointReadError: The file is not a readable torch checkpoint or `.npz`.
      UnsafeCheckpointError: The checkpoint's pickle names a global outside the allow-list.
    """
    if not path or fileio.is_remote(path) or not path.endswith(pth_reader.ORIGINAL_SUFFIXES):
        return
    if fileio.exists(path) and not fileio.isdir(path):
        pth_reader.read_state_file(path)


def define_model_flags(model_help: str, required: bool = True) -> None:
    """`--model` and `--config`, spelled and explained alike by every command that reads a model.

    Args:
      model_help: What this command's `--model` may name (the kinds of model file it reads).
      required: Whether `--model` must be given.
    """
    flags.DEFINE_string("model", None, model_help, required=required)
    flags.DEFINE_string(
        "config",
        None,
        "Config YAML path or packaged config name (e.g. vox-256-sem-10segments); default: the "
        "config.yaml beside the model (trainer layout).",
    )


def resolve_config(
    name_or_path: str, overrides: list[str], data_dir: str | None, variant: str | None
) -> dict[str, Any]:
    """The config of a training command: `--config`, then `--set`, `--data_dir`, `--variant`.

    `data_dir` is a path and is set as given: a `--set` value is parsed as YAML, which would
    cut a folder named `my data #1` at the `#` or read `a: b` as a mapping.

    Args:
      name_or_path: `--config`: a YAML path or a packaged config's name.
      overrides: `--set` values, `key.path=value`.
      data_dir: `--data_dir`, the data set's root (None: the config's).
      variant: `--variant`, the model variant (None: the config's).

    Returns:
      The validated config.

    Raises:
      ConfigError: If the config or an override is invalid.
      FileNotFoundError: If `name_or_path` is neither a file nor a packaged config.
    """
    path = config_lib.config_path(name_or_path)
    extra = list(overrides)
    if variant:
        extra.append(f"model_params.variant={variant}")
    config = config_lib.load_config(path, extra)
    if data_dir:
        config["dataset_params"]["root_dir"] = data_dir
    return config


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """The exception classes that mean bad input (TensorFlow's only if it was imported)."""
    errors: tuple[type[BaseException], ...] = (CosegError, OSError, app.UsageError)
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "errors"):
        errors += (tf.errors.NotFoundError, tf.errors.PermissionDeniedError, tf.errors.DataLossError)
    return errors


def run(main: Callable[[list[str]], int | None], define_flags: Callable[[], None], command: str) -> None:
    """Defines the command's flags, parses them and runs `main`; exits with its status.

    absl's `--help` lists the key flags of the program (`sys.argv[0]`), which for a console
    script is the generated wrapper, not the module that defines the flags; they are made
    key flags here. Defining them here rather than on import also lets one process import
    several commands.

    Args:
      main: The command: takes the leftover arguments, returns the exit status (None: 0).
      define_flags: Defines the command's flags.
      command: The command's name in messages, e.g. `coseg-train`.
    """
    before = set(flags.FLAGS)
    define_flags()
    names = set(flags.FLAGS) - before
    for name in sorted(names):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            sys.exit(report_error(command, e))

    def wrapped(argv: list[str]) -> Any:
        for old, new in _DEPRECATED.items():
            if flags.FLAGS[old].present:
                logging.warning("--%s is deprecated: use --%s", old, new)
        try:
            return main(argv)
        except _bad_input_errors() as e:
            return report_error(command, e)

    app.run(wrapped, flags_parser=parse)
