"""Unpickling with an allow-list of globals: the one safe unpickler under the file readers.

A pickle names the callables that rebuild its objects, and `pickle.load` imports and calls
them: loading a file runs its code. `AllowListUnpickler` resolves a global only through the
reader's allow-list, to the stand-in the reader wrote for it, and refuses every other one
before anything is called. `pth_reader` (PyTorch checkpoints) and `pickle_tables` (pandas
DataFrames of landmarks) are built on it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals and no persistent ids."""

    def __init__(
        self,
        file: BinaryIO,
        allowed: Mapping[tuple[str, str], Any],
        refuse: Callable[[str, str], Exception],
        *,
        encoding: str = "ASCII",
    ) -> None:
        """Reads a pickle stream.

        Args:
            file: the stream.
            allowed: (module, name) of each global the file may reference -> what it resolves to.
            refuse: the error to raise for a global outside `allowed`, from its module and name.
            encoding: how protocol-2 pickles' Python 2 strings are decoded.
        """
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._refuse = refuse

    def find_class(self, module: str, name: str) -> Any:
        """Resolves a global the pickle references, only if it is allowed.

        Args:
          module: The global's module.
          name: The global's name.

        Returns:
          What `allowed` maps (module, name) to.

        Raises:
          Exception: The error `refuse(module, name)` builds, for a global outside `allowed`.
        """
        found = self._allowed.get((module, name))
        if found is None:
            raise self._refuse(module, name)
        return found

    def persistent_load(self, pid: Any) -> Any:
        """Refuses persistent ids: the pickles read here have none.

        Args:
          pid: The persistent id found in the stream.

        Raises:
          pickle.UnpicklingError: Always.
        """
        raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


def load(
    unpickler: pickle.Unpickler,
    keep: tuple[type[Exception], ...],
    wrap: Callable[[Exception], Exception],
) -> Any:
    """Runs an unpickler, turning the many error types of corrupt input into the reader's own.

    Args:
        unpickler: e.g. an `AllowListUnpickler`.
        keep: the reader's own errors (a refused global among them), raised as they are.
        wrap: makes the reader's error for any other failure.

    Returns:
        The unpickled object.

    Raises:
        Exception: one of `keep`, or what `wrap` makes.
    """
    try:
        return unpickler.load()
    except keep:
        raise
    except Exception as e:  # the unpickler raises many types on corrupt input
        raise wrap(e) from e


__all__ = ["AllowListUnpickler", "load"]
