"""Compatibility facade over the dataset storage modules; new code should import from them.

The on-disk format (one TFDS `array_record` layout for every dataset) is split by job:

- `storage_format`: the layout, constants, manifest look-ups and errors both sides share;
- `storage_writer`: `write_dataset`, used by dataset handlers and the preparation pipeline;
- `storage_reader`: `open_split` and `SplitSource`, used by the loader and training.

This module only re-exports their public names so that `storage.open_split`,
`storage.write_dataset`, etc. keep working for tests, benchmarks and users. Patching a name here
does not reach the modules that use it: patch it in the module that defines it.
"""

from nevis.data.storage_format import (
    DEFAULT_VERSION,
    FORMAT_VERSION,
    MANIFEST,
    STORED_SPLITS,
    DatasetError,
    DatasetNotPreparedError,
    default_data_dir,
    is_prepared,
    resolve_data_dir,
    stored_manifest,
)
from nevis.data.storage_reader import AUTO_CHECKSUM_MAX_BYTES, SplitSource, open_split
from nevis.data.storage_writer import Example, write_dataset

__all__ = [
    "AUTO_CHECKSUM_MAX_BYTES",
    "DEFAULT_VERSION",
    "FORMAT_VERSION",
    "MANIFEST",
    "STORED_SPLITS",
    "DatasetError",
    "DatasetNotPreparedError",
    "Example",
    "SplitSource",
    "default_data_dir",
    "is_prepared",
    "open_split",
    "resolve_data_dir",
    "stored_manifest",
    "write_dataset",
]
