"""Reads pandas DataFrame pickles (`DataFrame.to_pickle`) without pandas and without running code.

The original evaluation ships its ground-truth landmarks as pandas pickles (`file_name`,
`value` columns). Unpickling calls whatever callables a file names, so `pandas.read_pickle`
on a downloaded file runs the file's code. This reader needs an explicit `trust=True` and
even then resolves only the globals that a plain DataFrame pickle names, each either to a
stand-in written here that only records data, or to a numpy/builtin constructor that only
builds data (`numpy.ndarray` reconstruction, `numpy.dtype`, `slice`). Anything else (e.g.
`os.system`, `builtins.eval`, a pandas type not emulated here) stops the load with
`UnsafePickleError` before it is called.

Layouts read (pandas writes the frame as `DataFrame.__new__` + a state dict whose `_mgr`,
or `_data` before pandas 1.1, is the block manager):

- pandas >= 1.1: `BlockManager(blocks, axes)` with blocks from `_unpickle_block(values,
  placement, ndim)`;
- pandas < 1.1: `BlockManager.__new__` + its `__getstate__` tuple (the "0.14.1" block dicts);
- columns of numpy dtypes (object, bool, int, float, str) and pandas 3's python-backed
  `StringArray`; the arrow-backed string arrays (pyarrow) are not read.

numpy arrays are rebuilt by numpy's own helpers under both module paths (`numpy.core` for
numpy 1, `numpy._core` for numpy 2), for pickle protocols 2 to 5.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Any

import numpy as np
from numpy._core import multiarray as _np_multiarray
from numpy._core import numeric as _np_numeric

from coseg_tf import fileio, safe_pickle
from coseg_tf.errors import CosegError

__all__ = ["PickleTableError", "UnsafePickleError", "read_dataframe_pickle"]


class UnsafePickleError(CosegError):
    """The pickle was not read: no trust given, or it names a global outside the allow-list."""


class PickleTableError(CosegError):
    """A pickle that is not a DataFrame this reader understands (nothing from it was run)."""


class _StandIn:
    """Base of the objects a pickle can build here: no `__dict__`, and `BUILD` refused by default."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise PickleTableError(f"unexpected state for {type(self).__name__}")


class _IndexClass(_StandIn):
    """What an index class global (`Index`, `RangeIndex`, ...) resolves to: just its name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Index(_StandIn):
    """An index rebuilt by `_new_Index(cls, attributes)`: its labels as a list."""

    __slots__ = ("labels",)

    def __init__(self, labels: list[Any]) -> None:
        self.labels = labels


def _new_index(cls: Any, attributes: Any) -> _Index:
    if not isinstance(cls, _IndexClass) or not isinstance(attributes, dict):
        raise PickleTableError("_new_Index called with something other than an index class and a dict")
    if cls.name == "RangeIndex":
        start, stop, step = (attributes.get(key) for key in ("start", "stop", "step"))
        if any(type(v) is not int for v in (start, stop, step)) or step == 0:
            raise PickleTableError(f"RangeIndex with non-integer bounds {start!r}, {stop!r}, {step!r}")
        return _Index(list(range(start, stop, step)))
    return _Index(_column_values(attributes.get("data"), "index"))


class _StringDtype(_StandIn):
    """pandas 3's `StringDtype(storage, na_value)`; only the python storage holds plain objects."""

    __slots__ = ("storage",)

    def __init__(self, storage: Any = "python", na_value: Any = None) -> None:
        if storage != "python":
            raise PickleTableError(
                f"a string column stored as {storage!r} (arrow) cannot be read without pandas and "
                "pyarrow; re-save the table with object columns (df.astype(object).to_pickle(...))"
            )
        self.storage = storage


class _ArrayClass(_StandIn):
    """An extension-array class global (only `StringArray`)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _BackedArray(_StandIn):
    """A pandas extension array rebuilt by Cython's `__pyx_unpickle_NDArrayBacked` + `BUILD`."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.values is not None or not isinstance(state, tuple) or len(state) < 2:
            raise PickleTableError("unexpected state for a pandas extension array")
        dtype, values = state[0], state[1]
        if not isinstance(dtype, _StringDtype) or not isinstance(values, np.ndarray):
            raise PickleTableError("a pandas extension array other than a python-backed StringArray")
        self.values = values


def _unpickle_backed(cls: Any, checksum: Any, state: Any) -> _BackedArray:
    if not isinstance(cls, _ArrayClass) or state is not None:
        raise PickleTableError("unexpected arguments to __pyx_unpickle_NDArrayBacked")
    return _BackedArray()


class _Block(_StandIn):
    """One block of a manager: a 2D array (items x rows) or a 1D extension array, and its items."""

    __slots__ = ("values", "placement")

    def __init__(self, values: Any, placement: Any) -> None:
        self.values = values
        self.placement = placement


def _unpickle_block(values: Any, placement: Any, ndim: Any = 2) -> _Block:
    return _Block(values, placement)


class _Manager(_StandIn):
    """A `BlockManager`: called with (blocks, axes) by pandas >= 1.1, `NEWOBJ` + state before."""

    __slots__ = ("blocks", "axes")

    def __new__(cls, *args: Any, **kwargs: Any) -> _Manager:
        manager = super().__new__(cls)
        manager.blocks = manager.axes = None
        return manager

    def __init__(self, blocks: Any, axes: Any, verify_integrity: Any = True) -> None:
        if not isinstance(blocks, (list, tuple)) or not isinstance(axes, (list, tuple)):
            raise PickleTableError("BlockManager called without block and axis lists")
        self.blocks = list(blocks)
        self.axes = list(axes)

    def __setstate__(self, state: Any) -> None:
        if self.blocks is not None:
            raise PickleTableError("a BlockManager given state twice")
        try:
            legacy = state[3]["0.14.1"]
            self.axes = list(legacy["axes"])
            self.blocks = [_Block(b["values"], b["mgr_locs"]) for b in legacy["blocks"]]
        except (TypeError, KeyError, IndexError):
            raise PickleTableError("a BlockManager state without the 0.14.1 block layout") from None


class _Frame(_StandIn):
    """A `DataFrame` made by `NEWOBJ`; its state dict holds the manager (`_mgr` or `_data`)."""

    __slots__ = ("manager",)

    def __new__(cls, *args: Any) -> _Frame:
        if args:
            raise PickleTableError("DataFrame created with arguments")
        frame = super().__new__(cls)
        frame.manager = None
        return frame

    def __setstate__(self, state: Any) -> None:
        if self.manager is not None or not isinstance(state, dict):
            raise PickleTableError("unexpected DataFrame state")
        manager = state.get("_mgr", state.get("_data"))
        if not isinstance(manager, _Manager):
            raise PickleTableError("a DataFrame state without a block manager")
        self.manager = manager


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Protocol 2 stores bytes as `_codecs.encode(latin-1 text, "latin1")`; nothing else is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleTableError(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1")


_INDEX_CLASSES = ("Index", "RangeIndex", "Int64Index", "UInt64Index", "Float64Index")
_ALLOWED: dict[tuple[str, str], Any] = {
    ("pandas.core.frame", "DataFrame"): _Frame,
    ("pandas", "DataFrame"): _Frame,
    ("pandas.core.internals.managers", "BlockManager"): _Manager,
    ("pandas.core.internals", "BlockManager"): _Manager,
    ("pandas._libs.internals", "_unpickle_block"): _unpickle_block,
    ("pandas.core.internals.blocks", "_unpickle_block"): _unpickle_block,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas", "StringDtype"): _StringDtype,
    ("pandas.core.arrays.string_", "StringDtype"): _StringDtype,
    ("pandas.arrays", "StringArray"): _ArrayClass("StringArray"),
    ("pandas.core.arrays.string_", "StringArray"): _ArrayClass("StringArray"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"): _unpickle_backed,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "slice"): slice,
    ("__builtin__", "slice"): slice,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _name in _INDEX_CLASSES:
    for _module in (
        "pandas",
        "pandas.core.indexes.base",
        "pandas.core.indexes.range",
        "pandas.core.indexes.numeric",
    ):
        _ALLOWED[(_module, _name)] = _IndexClass(_name)
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _np_multiarray._reconstruct
    _ALLOWED[(f"{_module}.multiarray", "scalar")] = _np_multiarray.scalar
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _np_numeric._frombuffer


def _refusal(path: str, module: str, name: str) -> UnsafePickleError:
    hint = ""
    if module.split(".")[0] == "pandas":
        hint = (
            " (a pandas type this reader does not emulate: if you trust the file, convert it "
            "with pandas to the plain CSV format, see the README's evaluation section)"
        )
    return UnsafePickleError(
        f"refusing to load {path}: it references {module}.{name}, which is not part of "
        f"a plain DataFrame of landmarks; nothing from the file was run{hint}"
    )


def _column_values(values: Any, what: str) -> list[Any]:
    if isinstance(values, _BackedArray):
        values = values.values
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        raise PickleTableError(f"{what} is not a 1D array")
    if values.dtype.kind not in "OUSbiuf":
        raise PickleTableError(f"{what} has unsupported dtype {values.dtype}")
    return values.tolist() if values.dtype.kind != "O" else list(values)


def _positions(placement: Any, count: int) -> list[int]:
    if isinstance(placement, slice):
        return list(range(count))[placement]
    if isinstance(placement, np.ndarray) and placement.dtype.kind in "iu":
        return [int(i) for i in placement.ravel()]
    if type(placement) is int:
        return [placement]
    raise PickleTableError(f"unsupported block placement {type(placement).__name__}")


def _columns(frame: _Frame) -> dict[str, list[Any]]:
    manager = frame.manager
    if manager is None or manager.axes is None or manager.blocks is None or len(manager.axes) != 2:
        raise PickleTableError("the DataFrame has no two-axis block manager")
    names, rows = manager.axes
    if not isinstance(names, _Index) or not isinstance(rows, _Index):
        raise PickleTableError("the DataFrame's axes are not plain indexes")
    num_rows = len(rows.labels)
    out: dict[str, list[Any]] = {}
    for block in manager.blocks:
        if not isinstance(block, _Block):
            raise PickleTableError("a DataFrame block of unknown type")
        items = _positions(block.placement, len(names.labels))
        values = block.values
        if isinstance(values, _BackedArray):
            stacked = [_column_values(values, "a string column")]
        elif isinstance(values, np.ndarray) and values.ndim == 2:
            stacked = [_column_values(row, "a column") for row in values]
        else:
            raise PickleTableError("a DataFrame block that is not a 2D numpy array or a StringArray")
        if len(stacked) != len(items):
            raise PickleTableError("a block's placement does not match its number of columns")
        for item, column in zip(items, stacked, strict=True):
            if len(column) != num_rows:
                raise PickleTableError("a column's length differs from the number of rows")
            out[str(names.labels[item])] = column
    if len(out) != len(names.labels):
        raise PickleTableError("the blocks do not cover every column")
    return out


def read_dataframe_pickle(path: str, *, trust: bool = False) -> dict[str, list[Any]]:
    """The columns of a pickled DataFrame as {name: list of cells}, rows in stored order.

    `trust` must be True: a pickle is code, and reading one is a decision of the user
    (`--trust_pickles`). Cells are Python scalars, strings or numpy arrays.

    Args:
      path: The pickle file (local or a `tf.io.gfile` URL).
      trust: Whether the user allowed reading pickles (`--trust_pickles`).

    Returns:
      {column name: list of cells}.

    Raises:
      UnsafePickleError: `trust` is False, or the pickle names a type outside the allow-list.
      PickleTableError: The file is not a readable DataFrame pickle.
    """
    if not trust:
        raise UnsafePickleError(
            f"{path} is a pickle, and unpickling can run code; pass --trust_pickles if you trust "
            "this file (it is then read with an allow-list of DataFrame types, never with pickle.load)"
        )
    data = fileio.read_bytes(path)
    unpickler = safe_pickle.AllowListUnpickler(
        io.BytesIO(data), _ALLOWED, functools.partial(_refusal, path), encoding="latin1"
    )
    obj = safe_pickle.load(
        unpickler,
        keep=(UnsafePickleError, PickleTableError),
        wrap=lambda e: PickleTableError(
            f"{path} is not a readable DataFrame pickle ({type(e).__name__}: {e})"
        ),
    )
    if not isinstance(obj, _Frame):
        raise PickleTableError(f"{path} holds a {type(obj).__name__}, not a DataFrame")
    try:
        return _columns(obj)
    except PickleTableError as e:
        raise PickleTableError(f"{path}: {e}") from None


def landmark_table(columns: dict[str, list[Any]], path: str = "table") -> dict[str, np.ndarray]:
    """The original evaluation's table: `file_name` -> float64 [J, 2] landmarks (-1 = missing).

    Args:
      columns: The DataFrame's columns (`read_dataframe_pickle`), with `file_name` and `value`.
      path: Name of the table's file, for messages.

    Returns:
      {file name: float64 [J, 2] landmarks}, J the same for every row.

    Raises:
      PickleTableError: A column is missing, a row's landmarks are not a finite [J, 2] array, or rows differ
        in J.
    """
    for needed in ("file_name", "value"):
        if needed not in columns:
            raise PickleTableError(f"{path}: no {needed!r} column (columns: {sorted(columns)})")
    out: dict[str, np.ndarray] = {}
    for name, value in zip(columns["file_name"], columns["value"], strict=True):
        points = np.asarray(value, np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or not all(math.isfinite(v) for v in points.ravel()):
            raise PickleTableError(f"{path}: landmarks of {name!r} are not a finite [J, 2] array")
        out[str(name)] = points
    shapes = {v.shape for v in out.values()}
    if len(shapes) > 1:
        raise PickleTableError(f"{path}: rows have different landmark counts {sorted(shapes)}")
    return out
