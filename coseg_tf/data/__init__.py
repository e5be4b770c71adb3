"""Data: the frame-pair pipeline, whole-video reading, TFRecords and the synthetic sets (puppets, heads).

Names are imported lazily so that `coseg_tf.data.synthetic` (and the `coseg-synth` command)
work without importing TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_pair_dataset": "pipeline",
    "make_video_dataset": "pipeline",
    "iterate_videos": "pipeline",
    "epoch_size": "pipeline",
    "DatasetStats": "catalog",
    "dataset_stats": "catalog",
    "DatasetError": "video_io",
    "VideoReadError": "video_io",
    "read_video": "video_io",
    "list_videos": "video_io",
    "convert_to_tfrecords": "tfrecords",
    "is_tfrecord_dataset": "tfrecords",
    "generate_synthetic_dataset": "synthetic",
    "render_puppet_video": "synthetic",
    "render_head_video": "heads",
    "load_ground_truth": "synthetic",
    "PART_NAMES": "synthetic",
    "JOINT_NAMES": "synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
