"""Data layer: one on-disk format (storage), the embedded stream, and fast JAX-ready batches.

Nothing here imports TensorFlow; TFDS is imported lazily, only to write and open datasets.
The names below are imported on first use, so that importing one module of the package (e.g.
the storage writer, for a dataset handler) does not import the others (e.g. the reader).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Augment": "nevis.data.augment",
    "EMBEDDED_TASKS": "nevis.data.embedded",
    "prepare_embedded": "nevis.data.embedded",
    "batches": "nevis.data.loader",
    "num_batches": "nevis.data.loader",
    "DatasetError": "nevis.data.storage_format",
    "DatasetNotPreparedError": "nevis.data.storage_format",
    "default_data_dir": "nevis.data.storage_format",
    "is_prepared": "nevis.data.storage_format",
    "SplitSource": "nevis.data.storage_reader",
    "open_split": "nevis.data.storage_reader",
    "write_dataset": "nevis.data.storage_writer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'nevis.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
