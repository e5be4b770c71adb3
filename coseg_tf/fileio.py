"""Paths, local or cloud: one rule for every reader and writer of the package.

A path with a scheme other than `file://` (`gs://`, `s3://`, `hdfs://`, ...) goes through
`tf.io.gfile`; anything else is a local file, read with the standard library. TensorFlow is
imported only for cloud paths, so that a command checks (and refuses) local inputs before it
pays for importing TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO


def is_remote(path: str) -> bool:
    """True for paths only `tf.io.gfile` can open (gs://, s3://, ...).

    Args:
      path: A local path, `file://` URL or cloud URL.

    Returns:
      True if `path` has a scheme other than `file://`.
    """
    return is_url(path) and not path.startswith("file://")


def is_url(path: str) -> bool:
    """True for any path with a scheme, `file://` included.

    Args:
      path: A path or URL.

    Returns:
      True if `path` contains `://`.
    """
    return "://" in path


def local_path(path: str) -> str:
    """`path` without a leading `file://`.

    Args:
      path: A local path or `file://` URL.

    Returns:
      The local path.
    """
    return path.removeprefix("file://")


def join(*parts: str) -> str:
    """Joins path parts with '/', which both local and cloud paths accept.

    Args:
      *parts: Path components; the first may be a local path or a cloud URL.

    Returns:
      The parts joined by single '/' separators.
    """
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def exists(path: str) -> bool:
    """Whether a local or cloud path exists.

    Args:
      path: A local path or cloud URL (`tf.io.gfile` opens the latter).

    Returns:
      True if the file or folder exists.
    """
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(local_path(path))


def isdir(path: str) -> bool:
    """Whether a local or cloud path is a folder.

    Args:
      path: A local path or cloud URL (`tf.io.gfile` opens the latter).

    Returns:
      True if `path` is a folder.
    """
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.isdir(path)
    return os.path.isdir(local_path(path))


def listdir(path: str) -> list[str]:
    """Entry names of a folder (folders possibly with a trailing '/' on cloud storage).

    Args:
      path: A local folder or cloud URL of a folder.

    Returns:
      The entry names (not paths), in the order the file system gives them.
    """
    if is_remote(path):
        import tensorflow as tf

        return list(tf.io.gfile.listdir(path))
    return os.listdir(local_path(path))


def read_bytes(path: str) -> bytes:
    """The whole content of a local or cloud file.

    Args:
      path: A local path or cloud URL (`tf.io.gfile` opens the latter).

    Returns:
      The file's bytes.
    """
    with open_file(path, "rb") as f:
        return f.read()


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file path for decoders that need one (FFmpeg); copies cloud files to a temp file.

    Args:
      path: A local path or cloud URL.

    Yields:
      A local path: `path` itself for local files, else a temporary copy deleted on exit.
    """
    if not is_remote(path):
        yield local_path(path)
        return
    fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as out, open_file(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield tmp
    finally:
        os.unlink(tmp)


def open_file(path: str, mode: str = "rb") -> IO:
    """Opens a local or cloud file.

    Args:
      path: A local path, `file://` URL or cloud URL (`tf.io.gfile` opens the latter).
      mode: The open mode, e.g. "rb" or "r".

    Returns:
      A file object, to use in a `with` statement.
    """
    if is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.GFile(path, mode)
    return open(local_path(path), mode)
