"""The package's one error base class: bad input that a command reports in one line.

Every error that means "the user gave something that does not fit" (a config value, a file,
a checkpoint, a data set, ground truth) subclasses `CosegError`, so that the commands' shared
wrapper (`coseg_tf.cli.run`) catches one class instead of each command keeping its own list.
It subclasses `ValueError` so that callers that caught `ValueError` before still do.

This module imports nothing from the package: every layer may import it.
"""

from __future__ import annotations


class CosegError(ValueError):
    """Bad input, with a message that names the thing at fault (a flag, a key, a file)."""


__all__ = ["CosegError"]
