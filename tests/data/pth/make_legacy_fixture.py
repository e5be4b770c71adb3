"""Writes the small torch checkpoints that tests/test_pth_reader.py reads.

NOT run by the tests, and NOT a dependency of the package: it needs PyTorch, which coseg-tf
never imports. It was run once, in a throwaway environment outside the repository:

    python3 -m venv ../torchenv && ../torchenv/bin/pip install torch==2.13.0 numpy
    ../torchenv/bin/python tests/data/pth/make_legacy_fixture.py

It saves the same object twice, in the legacy format (`_use_new_zipfile_serialization=False`,
what torch < 1.6 wrote) and in the zip format (the default since torch 1.6), plus the values
that the reader must return, as `expected.npz` keyed by '/'-joined paths (bfloat16 as float32,
since numpy has no bfloat16).
"""

import pathlib

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parent


def build() -> dict:
    torch.manual_seed(0)
    # One storage shared by two views with non-zero storage offsets, one of them strided.
    shared = torch.arange(24, dtype=torch.float32) * 0.5 - 3.0
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    return {
        "model": {
            "float32": torch.randn(2, 3, 3),
            "float16": torch.randn(2, 3).half(),
            "float64": torch.randn(3, dtype=torch.float64),
            "int64": torch.tensor([-(2**40), 0, 7, 2**62]),
            "int32": torch.tensor([-(2**31), 5], dtype=torch.int32),
            "int16": torch.tensor([-300, 300], dtype=torch.int16),
            "int8": torch.tensor([-128, 127], dtype=torch.int8),
            "uint8": torch.arange(250, 256, dtype=torch.uint8),
            "bool": torch.tensor([True, False, True]),
            "bfloat16": torch.tensor([1.5, -2.25, 3.0e38, 1.0e-3, -0.0]).bfloat16(),
            "transposed": torch.randn(3, 4).t(),
            "view_offset": shared[2:8].view(2, 3),
            "view_strided": shared[10:22:3],
            "scalar": torch.tensor(3.25),
            "empty": torch.zeros(0, 3),
        },
        "param": torch.nn.Parameter(torch.randn(2, 2)),
        "state_dict": module.state_dict(),
        "nested": {"inner": {"x": torch.ones(2, dtype=torch.float64), "list": [torch.arange(3), 1, "s"]}},
        "tuple": (1.5, torch.tensor([2.5])),
        "epoch": 7,
        "name": "fixture",
    }


def flatten(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        out[prefix] = (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}/{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}/{i}", out)


def main() -> None:
    obj = build()
    assert not obj["model"]["transposed"].is_contiguous()
    assert obj["model"]["view_offset"].storage_offset() == 2
    torch.save(obj, OUT / "legacy.pth.tar", _use_new_zipfile_serialization=False)
    torch.save(obj, OUT / "zip.pth.tar")
    expected: dict = {}
    flatten(obj, "", expected)
    np.savez(OUT / "expected.npz", **expected)
    print({k: (v.dtype, v.shape) for k, v in expected.items()})


if __name__ == "__main__":
    main()
