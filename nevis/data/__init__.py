"""Data layer: one on-disk format (storage), the embedded stream, and fast JAX-ready batches.

Nothing here imports TensorFlow; TFDS is imported lazily, only to write and open datasets.
"""

from nevis.data.augment import Augment
from nevis.data.embedded import EMBEDDED_TASKS, prepare_embedded
from nevis.data.loader import batches, num_batches
from nevis.data.storage import (
    DatasetError,
    DatasetNotPreparedError,
    SplitSource,
    default_data_dir,
    is_prepared,
    open_split,
    write_dataset,
)

__all__ = [
    "EMBEDDED_TASKS",
    "Augment",
    "DatasetError",
    "DatasetNotPreparedError",
    "SplitSource",
    "batches",
    "default_data_dir",
    "is_prepared",
    "num_batches",
    "open_split",
    "prepare_embedded",
    "write_dataset",
]
