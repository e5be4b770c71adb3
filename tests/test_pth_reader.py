"""Tests of coseg_tf.pth_reader: torch checkpoints read without torch, and refused when unsafe.

The fixtures in tests/data/pth/ were written by real torch (see make_legacy_fixture.py there);
the reference checkpoints come from the original implementation (shared parity fixtures).
Hostile and malformed files are built here with the `pickle` module alone.
"""

from __future__ import annotations

import collections
import io
import os
import pathlib
import pickle
import struct
import zipfile
from typing import Any

import numpy as np
import pytest

from coseg_tf.pth_reader import (
    CheckpointReadError,
    UnsafeCheckpointError,
    read_state_file,
    read_torch_checkpoint,
)

DATA = pathlib.Path(__file__).resolve().parent / "data" / "pth"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# --------------------------------------------------------------------------------------------
# Helpers that write torch-like pickles without torch.


class _Global:
    """Pickles as the bare global `module.name`, which need not exist here."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> None:  # pickle insists that a reduce function is callable
        raise AssertionError("never called")


class _Reduce:
    """Pickles as the call `func(*args)`."""

    def __init__(self, func: Any, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


class _ReduceBuild(_Reduce):
    """Pickles as `func(*args)` followed by BUILD with `state` (what `__setstate__` would receive)."""

    def __init__(self, func: Any, args: tuple, state: Any) -> None:
        super().__init__(func, args)
        self.state = state

    def __reduce__(self) -> tuple:
        return self.func, self.args, self.state


class _Storage:
    """Pickles as a torch storage persistent id."""

    def __init__(self, pid: tuple) -> None:
        self.pid = pid


class _TorchPickler(pickle._Pickler):
    """Pure-Python pickler that writes `_Global`s as GLOBAL opcodes and `_Storage`s as persistent ids."""

    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, _Storage) else None

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def tensor(
    storage_type: str, key: str, numel: int, offset: int, size: tuple, stride: tuple, view=None, legacy=False
):
    """A `torch._utils._rebuild_tensor_v2` call on storage `key` (legacy: with view metadata)."""
    pid = ("storage", _Global("torch", storage_type), key, "cpu", numel) + ((view,) if legacy else ())
    rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
    return _Reduce(rebuild, (_Storage(pid), offset, size, stride, False, collections.OrderedDict()))


def write_zip(
    path: pathlib.Path, pkl: bytes, records: dict[str, bytes], prefix="archive", byteorder="little"
):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", pkl)
        zf.writestr(f"{prefix}/byteorder", byteorder)
        for key, raw in records.items():
            zf.writestr(f"{prefix}/data/{key}", raw)
        zf.writestr(f"{prefix}/version", "3\n")
    return path


def write_legacy(path: pathlib.Path, pkl: bytes, storages: list[tuple[str, int, bytes]]) -> pathlib.Path:
    """The legacy stream: magic, protocol, sys info, object, key list, then <count><bytes> per key."""
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    parts = [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(1001, 2), pickle.dumps(sys_info, 2), pkl]
    parts.append(pickle.dumps([key for key, _, _ in storages], 2))
    for _, count, raw in storages:
        parts += [struct.pack("<q", count), raw]
    path.write_bytes(b"".join(parts))
    return path


def flatten(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Every numpy array in a nested structure, keyed by its '/'-joined path."""
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}/{i}"))
    return out


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key, expected in want.items():
        actual = got[key]
        assert actual.dtype == expected.dtype, key
        assert actual.shape == expected.shape, key
        np.testing.assert_array_equal(actual, expected, err_msg=key, strict=True)


# --------------------------------------------------------------------------------------------
# Files written by real torch.


@pytest.mark.parametrize("name", ["legacy.pth.tar", "zip.pth.tar"])
def test_torch_written_fixture_matches_expected(name: str) -> None:
    got = read_torch_checkpoint(str(DATA / name))
    with np.load(DATA / "expected.npz") as npz:
        want = {k: npz[k] for k in npz.files}
    arrays = flatten(got)
    assert_same_arrays(arrays, want)
    for key, array in arrays.items():
        assert array.flags.c_contiguous and array.flags.owndata, key
    # Every dtype of the fixture, bfloat16 widened bit-exactly to float32.
    model = got["model"]
    assert {str(model[k].dtype) for k in model} == {
        "float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
    }  # fmt: skip
    bits = [0x3FC00000, 0xC0100000, 0x7F620000, 0x3A830000, 0x80000000]  # 1.5, -2.25, ~3e38, ~1e-3, -0.0
    assert model["bfloat16"].view(np.uint32).tolist() == bits
    assert model["int64"].tolist() == [-(2**40), 0, 7, 2**62]
    # The two views share one storage in the file (offsets 2 and 10, stride 3) but not in memory.
    assert model["view_offset"].tolist() == [[-2.0, -1.5, -1.0], [-0.5, 0.0, 0.5]]
    assert model["view_strided"].tolist() == [2.0, 3.5, 5.0, 6.5]
    assert not np.shares_memory(model["view_offset"], model["view_strided"])
    assert (
        model["transposed"].shape == (4, 3) and model["scalar"].shape == () and model["empty"].shape == (0, 3)
    )
    # Containers are plain, other values as they were.
    assert type(got) is dict and type(got["state_dict"]) is dict and type(got["nested"]["inner"]) is dict
    assert got["epoch"] == 7 and type(got["epoch"]) is int
    assert got["name"] == "fixture"
    assert isinstance(got["tuple"], tuple) and got["tuple"][0] == 1.5
    assert got["nested"]["inner"]["list"][1:] == [1, "s"]
    assert got["state_dict"]["1.num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize("case", ["full", "shift_only"])
def test_reference_checkpoint_matches_weights_npz(parity_dir: pathlib.Path, case: str) -> None:
    got = read_torch_checkpoint(str(parity_dir / f"{case}.pth.tar"))
    assert sorted(got) == ["epoch", "reconstruction_module", "segmentation_module"]
    assert got["epoch"] == 0
    arrays = flatten(got)
    # The npz leaves out batch norm's step counters; they are int64 scalars, all 0.
    counters = {k: v for k, v in arrays.items() if k.endswith(".num_batches_tracked")}
    assert len(counters) >= 10
    for key, value in counters.items():
        assert value.dtype == np.int64 and value.shape == () and value == 0, key
    with np.load(parity_dir / f"{case}_weights.npz") as npz:
        want = {k: npz[k] for k in npz.files}
    assert_same_arrays({k: v for k, v in arrays.items() if k not in counters}, want)


def test_fomm_layout_checkpoint_matches_weights_npz(parity_dir: pathlib.Path) -> None:
    got = read_torch_checkpoint(str(parity_dir / "full_fomm_layout.pth.tar"))
    assert sorted(got) == ["generator", "kp_detector"]
    heads = {k.split(".")[0] for k in got["kp_detector"] if not k.startswith("predictor.")}
    assert heads == {"kp", "jacobian", "semantic_seg", "down"}
    renames = {"kp.": "shift.", "jacobian.": "affine.", "semantic_seg.": "segmentation."}
    modules = {"kp_detector": "segmentation_module", "generator": "reconstruction_module"}
    renamed = {}
    for key, value in flatten(got).items():
        if key.endswith(".num_batches_tracked"):
            continue
        module, name = key.split("/", 1)
        for old, new in renames.items():
            if module == "kp_detector" and name.startswith(old):
                name = new + name[len(old) :]
        renamed[f"{modules[module]}/{name}"] = value
    with np.load(parity_dir / "full_weights.npz") as npz:
        want = {k: npz[k] for k in npz.files}
    assert_same_arrays(renamed, want)


# --------------------------------------------------------------------------------------------
# Layouts that torch >= 1.6 does not write, built by hand.


def test_zip_big_endian_and_any_prefix(tmp_path: pathlib.Path) -> None:
    values = {
        "FloatStorage": np.array([1.5, -2.0, 3.25], ">f4"),
        "LongStorage": np.array([-(2**40), 5, 6], ">i8"),
        "HalfStorage": np.array([0.5, -1.0, 2.0], ">f2"),
        "BFloat16Storage": (np.array([1.5, -2.25, 4.0], ">f4").view(">u4") >> 16).astype(">u2"),
    }
    obj = {name: tensor(name, str(i), 3, 0, (3,), (1,)) for i, name in enumerate(values)}
    records = {str(i): v.tobytes() for i, v in enumerate(values.values())}
    for byteorder in ("big", "little"):
        if byteorder == "little":
            records = {
                str(i): v.astype(v.dtype.newbyteorder("<")).tobytes() for i, v in enumerate(values.values())
            }
        path = write_zip(
            tmp_path / f"{byteorder}.pth", dumps(obj), records, prefix="any_name", byteorder=byteorder
        )
        got = read_torch_checkpoint(str(path))
        assert got["FloatStorage"].tolist() == [1.5, -2.0, 3.25] and got["FloatStorage"].dtype == np.float32
        assert got["LongStorage"].tolist() == [-(2**40), 5, 6] and got["LongStorage"].dtype == np.int64
        assert got["HalfStorage"].tolist() == [0.5, -1.0, 2.0] and got["HalfStorage"].dtype == np.float16
        assert (
            got["BFloat16Storage"].tolist() == [1.5, -2.25, 4.0]
            and got["BFloat16Storage"].dtype == np.float32
        )
        assert all(a.dtype.isnative for a in got.values())


def test_legacy_storage_view_metadata(tmp_path: pathlib.Path) -> None:
    # torch < 1.6 could pickle a view of a storage: (view key, element offset, element count).
    root = np.arange(10, dtype="<f4")
    view = ("view-key", 4, 5)
    obj = {
        "in_view": tensor("FloatStorage", "root", 10, 1, (3,), (1,), view=view, legacy=True),
        "whole": tensor("FloatStorage", "root", 10, 0, (2, 5), (5, 1), view=None, legacy=True),
    }
    path = write_legacy(tmp_path / "old.pth", dumps(obj), [("root", 10, root.tobytes())])
    got = read_torch_checkpoint(str(path))
    assert got["in_view"].tolist() == [5.0, 6.0, 7.0]
    assert got["whole"].tolist() == [list(range(5)), list(range(5, 10))]


# --------------------------------------------------------------------------------------------
# Hostile files: nothing runs, the refused global is named.


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def test_payload_is_live_under_plain_pickle(tmp_path: pathlib.Path) -> None:
    # Control: the payload used below does run under an unrestricted unpickler.
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_RunsShell(f"touch {marker}"), protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("layout", ["zip", "legacy", "legacy_header"])
def test_os_system_payload_is_refused(tmp_path: pathlib.Path, layout: str) -> None:
    marker = tmp_path / "pwned"
    payload = _RunsShell(f"touch {marker}")
    obj = {"weight": tensor("FloatStorage", "0", 1, 0, (1,), (1,), legacy=layout != "zip"), "evil": payload}
    raw = np.zeros(1, "<f4").tobytes()
    path = tmp_path / "checkpoint.pth.tar"
    if layout == "zip":
        write_zip(path, dumps(obj), {"0": raw})
    elif layout == "legacy":
        write_legacy(path, dumps(obj), [("0", 1, raw)])
    else:  # the payload in the first pickle of the stream, where the magic number belongs
        path.write_bytes(pickle.dumps(payload, 2) + pickle.dumps(1001, 2))
    with pytest.raises(UnsafeCheckpointError) as info:
        read_torch_checkpoint(str(path))
    message = str(info.value)
    assert "os.system" in message and str(path) in message and "refusing" in message
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy", "dtype"),
        ("torch", "UntypedStorage"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.nn.modules.conv", "Conv2d"),
        ("collections", "defaultdict"),
    ],
)
def test_any_other_global_is_refused(tmp_path: pathlib.Path, module: str, name: str) -> None:
    pkl = pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + b")R."
    path = write_zip(tmp_path / "m.pth", pkl, {})
    with pytest.raises(UnsafeCheckpointError, match=rf"references {module}\.{name}\b"):
        read_torch_checkpoint(str(path))


# --------------------------------------------------------------------------------------------
# Malformed files: clear ValueErrors that name the file.


def _read_error(path: pathlib.Path) -> str:
    with pytest.raises(ValueError) as info:
        read_torch_checkpoint(str(path))
    assert not isinstance(info.value, UnsafeCheckpointError)
    message = str(info.value)
    assert str(path) in message
    return message


def test_truncated_zip(tmp_path: pathlib.Path) -> None:
    data = (DATA / "zip.pth.tar").read_bytes()
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _read_error(path)


def test_truncated_legacy(tmp_path: pathlib.Path) -> None:
    data = (DATA / "legacy.pth.tar").read_bytes()
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(data[:-10])
    assert "truncated" in _read_error(path)
    path.write_bytes(data[:300])  # inside the main pickle
    assert "not a valid pickle" in _read_error(path)


@pytest.mark.parametrize("content", [np.random.default_rng(0).bytes(4096), b"", b"\x80\x02K\x07."])
def test_not_a_checkpoint(tmp_path: pathlib.Path, content: bytes) -> None:
    path = tmp_path / "random.pth"
    path.write_bytes(content)
    assert "neither a zip archive" in _read_error(path)


def test_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "absent.pth.tar"
    with pytest.raises(FileNotFoundError, match="absent.pth.tar"):
        read_torch_checkpoint(str(path))


def test_zip_missing_storage_record(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "holed.pth.tar"
    with zipfile.ZipFile(DATA / "zip.pth.tar") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if info.filename != "zip.pth/data/3":
                dst.writestr(info, src.read(info))
    assert "no record 'zip.pth/data/3'" in _read_error(path)


def test_zip_without_data_pkl(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "data.pkl" in _read_error(path)


def test_zip_with_garbage_pickle(tmp_path: pathlib.Path) -> None:
    path = write_zip(tmp_path / "g.pth", b"\x80\x02}q\x00(X\xff\xff", {})
    assert "archive/data.pkl is not a valid pickle" in _read_error(path)


def test_short_storage_record(tmp_path: pathlib.Path) -> None:
    obj = {"w": tensor("DoubleStorage", "0", 4, 0, (4,), (1,))}
    path = write_zip(tmp_path / "short.pth", dumps(obj), {"0": b"\0" * 31})
    assert "truncated" in _read_error(path)


@pytest.mark.parametrize(
    "offset, size, stride, words",
    [
        (0, (5,), (1,), "past the end"),
        (2, (2, 2), (2, 1), "past the end"),
        (0, (2,), (-1,), "negative"),
        (0, (2, 3), (1,), "differ in length"),
        (0, (1 << 20, 1 << 20), (0, 0), "expands"),
    ],
)
def test_tensor_outside_its_storage(
    tmp_path: pathlib.Path, offset: int, size: tuple, stride: tuple, words: str
):
    obj = {"w": tensor("FloatStorage", "0", 4, offset, size, stride)}
    path = write_zip(tmp_path / "oob.pth", dumps(obj), {"0": np.arange(4, dtype="<f4").tobytes()})
    assert words in _read_error(path)


@pytest.mark.parametrize("state", [{"size": (1 << 16,)}, (None, {"size": (1 << 16,)})])
def test_build_cannot_resize_a_checked_tensor(tmp_path: pathlib.Path, state: Any) -> None:
    # BUILD after the rebuild call: a plain object would take the new size and numpy would read
    # 256 KiB past the 16-byte storage.
    inner = tensor("FloatStorage", "0", 4, 0, (4,), (1,))
    obj = {"w": _ReduceBuild(inner.func, inner.args, state)}
    path = write_zip(tmp_path / "grow.pth", dumps(obj), {"0": np.arange(4, dtype="<f4").tobytes()})
    assert "tries to set the state of a tensor of size (4,)" in _read_error(path)


@pytest.mark.parametrize("target", [("torch", "FloatStorage"), ("torch._utils", "_rebuild_tensor_v2")])
def test_build_cannot_modify_the_stand_ins(tmp_path: pathlib.Path, target: tuple[str, str]) -> None:
    # A pickle may BUILD on the object a global resolves to; it must not change it for later loads.
    for state in ({"code": "u1", "__defaults__": (1,)}, (None, {"code": "u1", "__defaults__": (1,)})):
        # GLOBAL <target>, <state>, BUILD: the state's own pickle without its PROTO header and STOP.
        pkl = pickle.PROTO + b"\x02" + pickle.GLOBAL + "{}\n{}\n".format(*target).encode()
        pkl += pickle.dumps(state, 2)[2:-1] + pickle.BUILD + pickle.STOP
        path = write_zip(tmp_path / "patch.pth", pkl, {})
        assert "tries to set the state of {}.{}".format(*target) in _read_error(path)
    got = read_torch_checkpoint(str(DATA / "zip.pth.tar"))
    assert got["model"]["float32"].dtype == np.float32


def test_persistent_id_that_is_not_a_storage(tmp_path: pathlib.Path) -> None:
    obj = {"w": _Storage(("module", "x"))}
    path = write_zip(tmp_path / "pid.pth", dumps(obj), {})
    assert "not a torch storage record" in _read_error(path)


def test_torchvision_vgg19_state_dict_runs_in_the_torchvision_convention(tmp_path: pathlib.Path) -> None:
    # torchvision's VGG19 `.pth` (here the reference fixture's first conv, as torch would write
    # it) becomes the perceptual network: relu1_1 of RGB in [0, 1] standardised by ImageNet's
    # mean and std, the kernel moved from [out, in, kh, kw] to Keras' layout.
    import tensorflow as tf

    from coseg_tf.losses import PerceptualLoss, VGGWeightsError

    vgg = np.load(DATA.parents[2].parent / "shared/fixtures/reference_training/vgg19_features_float16.npz")

    def strides(array: np.ndarray) -> tuple[int, ...]:
        return tuple(int(s) // array.itemsize for s in array.strides)

    state = {k: vgg[k].astype("<f4") for k in ("features.0.weight", "features.0.bias")}
    records = {str(i): state[k].tobytes() for i, k in enumerate(state)}
    obj = collections.OrderedDict(
        (k, tensor("FloatStorage", str(i), int(v.size), 0, tuple(map(int, v.shape)), strides(v)))
        for i, (k, v) in enumerate(state.items())
    )
    path = write_zip(tmp_path / "vgg19-local.pth", dumps(obj), records)  # plain ints, as torch pickles
    loss = PerceptualLoss(scales=[1], layer_weights=[10, 0, 0, 0, 0], vgg_weights=str(path))
    assert loss.convention == "torchvision"
    image = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    got = loss._features(tf.constant(image))[0].numpy()
    normalised = (image - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    kernel = np.transpose(state["features.0.weight"], (2, 3, 1, 0))
    expected = tf.nn.relu(
        tf.nn.conv2d(normalised.astype(np.float32), kernel, 1, "SAME") + state["features.0.bias"]
    ).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # A state dict without the arrays the loss needs is refused by name, as bad input (exit 2).
    with pytest.raises(VGGWeightsError, match="features.2.weight"):
        PerceptualLoss(scales=[1], layer_weights=[10, 10, 0, 0, 0], vgg_weights=str(path))


def test_read_state_file_reads_an_npz_and_refuses_a_damaged_one(tmp_path: pathlib.Path) -> None:
    arrays = {"features.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.int64(3)}
    good = tmp_path / "state.npz"
    np.savez(good, **arrays)
    read = read_state_file(str(good))
    assert sorted(read) == sorted(arrays)
    np.testing.assert_array_equal(read["features.0.weight"], arrays["features.0.weight"])
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointReadError, match="truncated.npz: not a readable .npz"):
        read_state_file(str(truncated))
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointReadError, match="objects.npz"):
        read_state_file(str(pickled))
