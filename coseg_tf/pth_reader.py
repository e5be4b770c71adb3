"""Reads PyTorch checkpoints (`.pth`, `.pth.tar`) into numpy, without PyTorch and without running code.

A torch checkpoint is a pickle, and unpickling calls whatever callables the file names: `torch.load`
on a downloaded file (without `weights_only=True`) runs the file's code. This reader resolves only
an allow-list of globals (the tensor-rebuild functions, the storage types and `OrderedDict`), each
to a stand-in written here that builds numpy data and nothing else; any other global stops the
load with `UnsafeCheckpointError` before anything is called. The tensor sizes and strides in the
file are checked against the storage they index, so a crafted file cannot read outside it.

Two container formats are read:

- the zip format (torch >= 1.6): `<prefix>/data.pkl` plus one raw record `<prefix>/data/<key>` per
  storage, in the byte order of `<prefix>/byteorder` (little-endian when absent);
- the legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`): one stream of
  pickles (magic number, protocol version, system info, the object, the list of storage keys)
  followed by each storage as an 8-byte little-endian element count and its little-endian bytes.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import zipfile
from typing import Any

import numpy as np

from coseg_tf import fileio, safe_pickle
from coseg_tf.errors import CosegError

__all__ = ["CheckpointReadError", "UnsafeCheckpointError", "read_state_file", "read_torch_checkpoint"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# A tensor with zero strides (an expanded tensor) may hold more elements than its storage; past
# this many, a file could make the reader allocate without bound, so it is refused.
_MAX_EXPANDED_ELEMENTS = 1 << 28


# The original implementation's weight files, and their `.npz` conversion: what this module reads.
ORIGINAL_SUFFIXES = (".pth.tar", ".pth", ".tar", ".npz")


class UnsafeCheckpointError(CosegError):
    """The checkpoint's pickle names a global outside the allow-list; nothing from it was run."""


class CheckpointReadError(CosegError):
    """A file that is not a readable torch checkpoint (truncated, damaged or another format)."""


class _Malformed(ValueError):
    """Internal: what is wrong with the file, before the file name is added."""


class _Frozen:
    """Base of every object a pickle can reach: no `__dict__`, no setattr, no `__setstate__`.

    The BUILD opcode sets state on any object on the unpickler's stack; these refuse it, so a file
    cannot resize a tensor after its bounds were checked, nor alter the shared stand-ins.
    (A frozen slotted dataclass would not do: it gets a `__setstate__` that sets every field.)
    """

    __slots__ = ()

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __setstate__(self, state: Any) -> None:
        raise _Malformed(f"the pickle tries to set the state of {self!r}")


class _StorageType(_Frozen):
    """Stand-in for `torch.<X>Storage`: only says how to decode the storage's raw bytes."""

    __slots__ = ("name", "code")  # code: numpy type code of one element on disk, without byte order

    def __init__(self, name: str, code: str) -> None:
        super().__init__(name=name, code=code)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


# bfloat16 is read as its 16 raw bits and widened to float32, since numpy has no bfloat16.
_STORAGE_TYPES = {
    name: _StorageType(name, code)
    for name, code in {
        "FloatStorage": "f4",
        "DoubleStorage": "f8",
        "HalfStorage": "f2",
        "BFloat16Storage": "u2",
        "LongStorage": "i8",
        "IntStorage": "i4",
        "ShortStorage": "i2",
        "CharStorage": "i1",
        "ByteStorage": "u1",
        "BoolStorage": "u1",
    }.items()
}


class _Storage:
    """One storage record of the file; its values are filled in once its bytes have been read."""

    __slots__ = ("key", "type", "numel", "values")

    def __init__(self, key: str, storage_type: _StorageType, numel: int) -> None:
        self.key = key
        self.type = storage_type
        self.numel = numel
        self.values: np.ndarray | None = None

    @property
    def itemsize(self) -> int:
        return np.dtype(self.type.code).itemsize

    def decode(self, raw: bytes, byteorder: str) -> None:
        """Turns the raw record into a 1-D native numpy array (bfloat16 -> float32, bool from bytes)."""
        nbytes = self.numel * self.itemsize
        if len(raw) < nbytes:
            raise _Malformed(
                f"storage record {self.key!r} is truncated: {len(raw)} bytes for {self.numel} elements "
                f"of {self.type!r} ({nbytes} bytes)"
            )
        disk = np.dtype(self.type.code).newbyteorder("<" if byteorder == "little" else ">")
        values = np.frombuffer(raw, dtype=disk, count=self.numel)
        if self.type.name == "BFloat16Storage":
            values = (values.astype(np.uint32) << 16).view(np.float32)
        elif self.type.name == "BoolStorage":
            values = values != 0
        else:
            values = values.astype(disk.newbyteorder("="), copy=False)
        self.values = values


class _StorageRef(_Frozen):
    """What a persistent id resolves to: a storage, or (legacy) a view of `numel` elements into it."""

    __slots__ = ("storage", "offset", "numel")

    def __init__(self, storage: _Storage, offset: int, numel: int) -> None:
        super().__init__(storage=storage, offset=offset, numel=numel)

    def __repr__(self) -> str:
        return f"storage {self.storage.key!r}"


class _LazyTensor(_Frozen):
    """A tensor whose storage bytes may not have been read yet (legacy files store them last)."""

    __slots__ = ("ref", "offset", "size", "stride")

    def __init__(self, ref: _StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        super().__init__(ref=ref, offset=offset, size=size, stride=stride)

    def __repr__(self) -> str:
        return f"a tensor of size {self.size} in storage {self.ref.storage.key!r}"

    def materialize(self) -> np.ndarray:
        storage = self.ref.storage
        assert storage.values is not None, "storage read before use"
        base = storage.values[self.ref.offset : self.ref.offset + self.ref.numel]
        _check_bounds(base.size, self.offset, self.size, self.stride, storage.key)  # again, before reading
        if 0 in self.size:
            return np.zeros(self.size, dtype=base.dtype)
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :],
            shape=self.size,
            strides=tuple(s * base.itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, order="C", copy=True)


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(type(v) is int for v in value):
        raise _Malformed(f"tensor {what} must be a tuple of ints, got {value!r}")
    return tuple(value)


def _check_bounds(numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...], key: str) -> None:
    """A tensor may only index its own storage (`numel` elements), or numpy would read past it."""
    if 0 in size:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if offset < 0 or min(stride, default=0) < 0 or last >= numel:
        raise _Malformed(
            f"tensor of size {size}, stride {stride} at offset {offset} reaches element {last}, "
            f"past the end of storage {key!r} ({numel} elements)"
        )
    count = math.prod(size)
    if count > max(numel, _MAX_EXPANDED_ELEMENTS):
        raise _Malformed(f"tensor of size {size} expands its storage to {count} elements")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _LazyTensor:
    """Stand-in for `torch._utils._rebuild_tensor`: validates the view and defers reading."""
    if not isinstance(storage, _StorageRef):
        raise _Malformed(f"tensor storage must be a storage record, got {type(storage).__name__}")
    if type(storage_offset) is not int or storage_offset < 0:
        raise _Malformed(f"tensor storage offset must be a non-negative int, got {storage_offset!r}")
    size_t, stride_t = _as_int_tuple(size, "size"), _as_int_tuple(stride, "stride")
    if len(size_t) != len(stride_t):
        raise _Malformed(f"tensor size {size_t} and stride {stride_t} differ in length")
    if any(v < 0 for v in size_t + stride_t):
        raise _Malformed(f"tensor size {size_t} or stride {stride_t} is negative")
    _check_bounds(storage.numel, storage_offset, size_t, stride_t, storage.storage.key)
    return _LazyTensor(storage, storage_offset, size_t, stride_t)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _LazyTensor:
    """Stand-in for `torch._utils._rebuild_tensor_v2`; autograd flags and hooks are dropped."""
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    """Stand-in for `torch._utils._rebuild_parameter`: an `nn.Parameter` is just its data here."""
    if not isinstance(data, _LazyTensor):
        raise _Malformed(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None
) -> Any:
    """Stand-in for `torch._utils._rebuild_parameter_with_state`; the Python state is dropped."""
    return _rebuild_parameter(data)


class _StateDict(dict):
    """Stand-in for `collections.OrderedDict`; accepts (and drops) a state dict's `_metadata`."""

    def __setstate__(self, state: Any) -> None:
        pass


class _StandIn(_Frozen):
    """What an allowed callable global resolves to: calls one function of this module."""

    __slots__ = ("_name", "_func")

    def __init__(self, name: str, func: Any) -> None:
        super().__init__(_name=name, _func=func)

    def __call__(self, *args: Any) -> Any:
        return self._func(*args)

    def __repr__(self) -> str:
        return self._name


_ALLOWED: dict[tuple[str, str], Any] = {
    (module, name): _StandIn(f"{module}.{name}", func)
    for (module, name), func in {
        ("collections", "OrderedDict"): _StateDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    }.items()
}
_ALLOWED.update({("torch", name): storage_type for name, storage_type in _STORAGE_TYPES.items()})


def _refusal(path: str, module: str, name: str) -> UnsafeCheckpointError:
    shown = f"{module}.{name}"
    if module in ("posix", "nt"):
        shown += f" (os.{name})"
    return UnsafeCheckpointError(
        f"refusing to load {path}: it references {shown}, which is not a tensor or state-dict type; "
        "nothing from the file was run"
    )


class _TorchUnpickler(safe_pickle.AllowListUnpickler):
    """The allow-listed unpickler that also resolves torch storage persistent ids."""

    def __init__(self, file: io.BytesIO, name: str, storages: dict[str, _Storage] | None) -> None:
        super().__init__(file, _ALLOWED, functools.partial(_refusal, name), encoding="utf-8")
        self._storages = storages

    def persistent_load(self, pid: Any) -> _StorageRef:
        if self._storages is None:
            raise _Malformed(f"unexpected persistent id {pid!r} outside the main object")
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise _Malformed(f"persistent id {pid!r} is not a torch storage record")
        _, storage_type, key, location, numel, *view = pid
        if not isinstance(storage_type, _StorageType):
            raise _Malformed(f"persistent id {pid!r} has no storage type")
        if not isinstance(key, str) or not isinstance(location, str):
            raise _Malformed(f"persistent id {pid!r} has a non-string key or location")
        if type(numel) is not int or numel < 0:
            raise _Malformed(f"persistent id {pid!r} has an invalid element count")
        storage = self._storages.setdefault(key, _Storage(key, storage_type, numel))
        if storage.type != storage_type or storage.numel != numel:
            raise _Malformed(f"storage {key!r} is declared twice with different types or sizes")
        if not view or view[0] is None:
            return _StorageRef(storage, 0, numel)
        # torch < 1.6 could save a view of a storage: (view key, element offset, element count).
        view_meta = view[0]
        if (
            not isinstance(view_meta, tuple)
            or len(view_meta) != 3
            or any(type(v) is not int or v < 0 for v in view_meta[1:])
        ):
            raise _Malformed(f"persistent id {pid!r} has invalid view metadata")
        _, offset, view_numel = view_meta
        if offset + view_numel > numel:
            raise _Malformed(f"storage view {view_meta!r} runs past storage {key!r} ({numel} elements)")
        return _StorageRef(storage, offset, view_numel)


def _unpickle(stream: io.BytesIO, name: str, storages: dict[str, _Storage] | None, what: str) -> Any:
    """Runs the restricted unpickler; any failure other than a refused global becomes `_Malformed`."""
    return safe_pickle.load(
        _TorchUnpickler(stream, name, storages),
        keep=(UnsafeCheckpointError, _Malformed),
        wrap=lambda e: _Malformed(f"{what} is not a valid pickle ({type(e).__name__}: {e})"),
    )


def _finalize(obj: Any, memo: dict[int, Any]) -> Any:
    """Replaces tensors by numpy arrays and OrderedDicts by dicts, keeping shared and cyclic references."""
    found = memo.get(id(obj))
    if found is not None:
        return found
    if isinstance(obj, _LazyTensor):
        out: Any = obj.materialize()
    elif isinstance(obj, _StorageRef):
        values = obj.storage.values
        assert values is not None, "storage read before use"
        out = values[obj.offset : obj.offset + obj.numel].copy()
    elif isinstance(obj, _StorageType):
        raise _Malformed(f"the checkpoint holds a bare storage type {obj!r}")
    elif isinstance(obj, dict):
        out = {}
        memo[id(obj)] = out
        for key, value in obj.items():
            try:
                out[_finalize(key, memo)] = _finalize(value, memo)
            except TypeError as exc:  # a tensor inside a dict key
                raise _Malformed(f"unsupported dict key {key!r} ({exc})") from None
    elif isinstance(obj, list):
        out = []
        memo[id(obj)] = out
        out.extend(_finalize(v, memo) for v in obj)
    elif isinstance(obj, tuple):
        out = tuple(_finalize(v, memo) for v in obj)
    else:
        return obj
    memo[id(obj)] = out
    return out


def _load_zip(data: bytes, name: str) -> Any:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _Malformed(f"corrupt zip archive ({exc})") from exc
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise _Malformed("zip archive has no '<folder>/data.pkl' record: not a torch checkpoint")
    first_folder = names[0].split("/", 1)[0]
    prefix = next((p for p in pickles if p.startswith(first_folder + "/")), pickles[0])[: -len("/data.pkl")]

    def record(path: str) -> bytes:
        try:
            return archive.read(path)
        except KeyError:
            raise _Malformed(f"zip archive has no record {path!r}") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise _Malformed(f"zip record {path!r} is corrupt ({exc})") from exc

    byteorder = "little"
    if f"{prefix}/byteorder" in names:
        byteorder = record(f"{prefix}/byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise _Malformed(f"unknown byte order {byteorder!r} in {prefix}/byteorder")
    storages: dict[str, _Storage] = {}
    obj = _unpickle(io.BytesIO(record(f"{prefix}/data.pkl")), name, storages, f"{prefix}/data.pkl")
    for key, storage in storages.items():
        try:
            storage.decode(record(f"{prefix}/data/{key}"), byteorder)
        except _Malformed as exc:
            raise _Malformed(f"{exc} (storage {key!r} of {prefix}/data.pkl)") from None
    return obj


def _load_legacy(data: bytes, name: str) -> Any:
    not_torch = _Malformed("neither a zip archive (torch >= 1.6) nor a legacy torch pickle (torch < 1.6)")
    if not data.startswith(b"\x80"):  # torch writes every legacy pickle with protocol >= 2
        raise not_torch
    stream = io.BytesIO(data)
    try:
        magic = _unpickle(stream, name, None, "the header")
    except _Malformed:
        raise not_torch from None
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise not_torch
    protocol = _unpickle(stream, name, None, "the protocol version")
    if protocol != _LEGACY_PROTOCOL:
        raise _Malformed(f"unsupported legacy protocol version {protocol!r} (expected {_LEGACY_PROTOCOL})")
    _unpickle(stream, name, None, "the system info")
    storages: dict[str, _Storage] = {}
    obj = _unpickle(stream, name, storages, "the main object")
    keys = _unpickle(stream, name, None, "the storage key list")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Malformed(f"the storage key list is not a list of strings: {keys!r}")
    # Storages follow in the order of the key list, each as <int64 LE element count><raw LE bytes>.
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise _Malformed(f"storage {key!r} is listed but no tensor uses it")
        header = stream.read(8)
        if len(header) < 8:
            raise _Malformed(f"file is truncated: storage {key!r} is missing")
        (count,) = struct.unpack("<q", header)
        if count != storage.numel:
            raise _Malformed(f"storage {key!r} holds {count} elements, the pickle declares {storage.numel}")
        storage.decode(stream.read(count * storage.itemsize), "little")
    missing = sorted(set(storages) - set(keys))
    if missing:
        raise _Malformed(f"no storage record for key(s) {missing}")
    return obj


def _load_bytes(data: bytes, name: str) -> Any:
    """Reads a checkpoint held in memory; `name` is only used in error messages."""
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            obj = _load_zip(data, name)
        elif data[:4] == b"PK\x03\x04":
            raise _Malformed("zip archive is truncated or corrupt (no central directory)")
        elif data[257:262] == b"ustar":
            raise _Malformed("tar archive: the torch < 0.4 tar format is not supported")
        else:
            obj = _load_legacy(data, name)
        return _finalize(obj, {})
    except UnsafeCheckpointError:
        raise
    except (_Malformed, RecursionError) as exc:
        raise CheckpointReadError(f"cannot read torch checkpoint {name}: {exc}") from None
    except Exception as exc:  # a hostile pickle can shape objects in ways not foreseen above
        raise CheckpointReadError(
            f"cannot read torch checkpoint {name}: unexpected structure ({type(exc).__name__}: {exc})"
        ) from exc


def read_torch_checkpoint(path: str) -> Any:
    """Loads a torch checkpoint (zip or legacy format) as plain Python data with numpy arrays.

    Every tensor becomes a C-contiguous numpy array of its dtype and shape (bfloat16 -> float32),
    `OrderedDict`s become dicts, other values stay as they are. The file is read through
    `coseg_tf.fileio`, so `gs://` paths work. Raises `UnsafeCheckpointError` if the pickle names any
    global besides tensor/storage rebuilders and `OrderedDict`, `ValueError` if the file is
    malformed, `FileNotFoundError` if it does not exist (`OSError` if it cannot be read).

    Args:
      path: The checkpoint file (local or a `tf.io.gfile` URL).

    Returns:
      The checkpoint's object, tensors as numpy arrays.

    Raises:
      FileNotFoundError: There is no file at `path`.
      OSError: The file cannot be read.
    """
    if not fileio.exists(path):
        raise FileNotFoundError(f"torch checkpoint not found: {path}")
    try:
        data = fileio.read_bytes(path)
    except Exception as exc:  # OSError locally, tf.errors.OpError from a cloud file system
        raise OSError(f"cannot read torch checkpoint {path}: {exc}") from exc
    return _load_bytes(data, path)


def read_state_file(path: str) -> Any:
    """Reads a weights file: a torch checkpoint (`.pth`, `.pth.tar`) or an `.npz` of arrays.

    Both are read through `coseg_tf.fileio`, without PyTorch and without unpickling anything
    beyond what `read_torch_checkpoint` allows.

    Args:
      path: The file; an `.npz` by its extension, else a torch checkpoint.

    Returns:
      For an `.npz`, its arrays by name (a dict); else what `read_torch_checkpoint` returns.

    Raises:
      CheckpointReadError: If the file is not a readable `.npz` or torch checkpoint (empty,
        truncated, another format, or an `.npz` holding pickled objects).
      UnsafeCheckpointError: If a torch checkpoint names a global outside the allow-list.
      FileNotFoundError: If a torch checkpoint does not exist.
    """
    if not path.endswith(".npz"):
        return read_torch_checkpoint(path)
    try:
        with fileio.open_file(path, "rb") as f:
            return dict(np.load(f, allow_pickle=False))
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:  # empty, truncated, foreign
        raise CheckpointReadError(f"{path}: not a readable .npz of weights ({e})") from None
