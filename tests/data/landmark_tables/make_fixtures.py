"""Writes the landmark-table pickles that tests/test_evaluate.py reads (run by hand, needs pandas).

The evaluation reads pandas pickles without pandas (coseg_tf/pickle_tables.py), so its tests
need pickles written by real pandas versions: run this once under each pandas below and
commit the files. `--legacy` writes, without pandas, the layout of pandas < 1.1
(`BlockManager` pickled by its `__getstate__`, `numpy.core` module paths, the frame's
manager under `_data`), which is what the original repository's 2020 tables hold; the
classes are stand-ins registered under pandas' module paths, so the stream names exactly
the globals old pandas wrote.

    python make_fixtures.py OUT_DIR           # under pandas 1.5, 2.2 and 3.0
    python make_fixtures.py OUT_DIR --legacy  # any Python with numpy
"""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np

NAMES = ["b.png", "a.png", "c.png"]


def values() -> list[np.ndarray]:
    """Three rows of 3 landmarks (x, y); row 0 has a missing x (-1), row 2 a missing point."""
    rows = [
        np.array([[10.5, 20.0], [-1.0, 40.0], [50.0, 60.25]]),
        np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        np.array([[7.0, 8.0], [9.0, 10.0], [-1.0, -1.0]]),
    ]
    return rows


def modern(out_dir: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"file_name": NAMES, "value": values()})
    major_minor = "".join(pd.__version__.split(".")[:2])
    frame.to_pickle(os.path.join(out_dir, f"pandas{major_minor}.pkl"))  # the default protocol
    # Protocol 2 stores bytes through `_codecs.encode`.
    frame.to_pickle(os.path.join(out_dir, f"pandas{major_minor}_protocol2.pkl"), protocol=2)


def _module(name: str) -> types.ModuleType:
    """A stand-in module at `name` (replacing a real one while pickling), parents made if missing."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        sys.modules.setdefault(".".join(parts[:i]), _Fake(".".join(parts[:i])))
    if not isinstance(sys.modules.get(name), _Fake):
        sys.modules[name] = _Fake(name)
    return sys.modules[name]


class _Fake(types.ModuleType):
    """A module created here (never a real one)."""


def legacy(out_dir: str) -> None:
    """A pandas 0.25-style pickle: DataFrame(_data=BlockManager state tuple), numpy.core paths."""

    class Index:
        def __init__(self, data):
            self.data = data

        def __reduce__(self):
            return (_new_Index, (Index, {"data": self.data, "name": None}))

    class RangeIndex:
        def __init__(self, n):
            self.n = n

        def __reduce__(self):
            return (_new_Index, (RangeIndex, {"name": None, "start": 0, "stop": self.n, "step": 1}))

    def _new_Index(cls, d):  # noqa: N802 - pandas' name
        raise AssertionError("only pickled here")

    class BlockManager:
        def __init__(self, state):
            self.state = state

        def __reduce__(self):
            return (_new_object, (BlockManager,), self.state)

    class DataFrame:
        def __init__(self, state):
            self.state = state

        def __reduce__(self):
            return (_new_object, (DataFrame,), self.state)

    import copyreg

    _new_object = copyreg.__newobj__

    def _reconstruct(*args):
        raise AssertionError("only pickled here")

    def reduce_array(array: np.ndarray):
        # numpy 1.x pickled arrays as _reconstruct(ndarray, (0,), b"b") + __setstate__.
        return (_reconstruct, (np.ndarray, (0,), b"b"), array.__reduce__()[2])

    for cls, module in (
        (Index, "pandas.core.indexes.base"),
        (_new_Index, "pandas.core.indexes.base"),
        (RangeIndex, "pandas.core.indexes.range"),
        (BlockManager, "pandas.core.internals.managers"),
        (DataFrame, "pandas.core.frame"),
        (_reconstruct, "numpy.core.multiarray"),
    ):
        cls.__module__ = module
        cls.__qualname__ = cls.__name__
        setattr(_module(module), cls.__name__, cls)
    block = np.empty((2, len(NAMES)), object)
    block[0] = NAMES
    for i, v in enumerate(values()):
        block[1, i] = v
    columns = Index(np.array(["file_name", "value"], object))
    rows = RangeIndex(len(NAMES))
    axes = [columns, rows]
    state = (
        axes,
        [block],
        [Index(np.array(["file_name", "value"], object))],
        {"0.14.1": {"axes": axes, "blocks": [{"values": block, "mgr_locs": slice(0, 2, 1)}]}},
    )
    frame = DataFrame({"_data": BlockManager(state), "_typ": "dataframe", "_metadata": []})
    saved = {name: module for name, module in sys.modules.items() if name.startswith("numpy.core")}
    try:
        with open(os.path.join(out_dir, "pandas025_legacy.pkl"), "wb") as f:
            pickler = pickle.Pickler(f, protocol=4)
            pickler.dispatch_table = {**copyreg.dispatch_table, np.ndarray: reduce_array}
            pickler.dump(frame)
    finally:
        sys.modules.update(saved)


if __name__ == "__main__":
    target = sys.argv[1]
    os.makedirs(target, exist_ok=True)
    legacy(target) if "--legacy" in sys.argv[2:] else modern(target)
