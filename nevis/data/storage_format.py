"""The on-disk dataset format shared by the writer and the reader: layout, names, manifest, errors.

Every dataset is stored as TFDS `array_record`, written and read without TensorFlow.
Layout (`data_dir` defaults to `$NEVIS_DATA_DIR`, else `~/.nevis/data`)::

    <data_dir>/<key>/<version>/              one ready dataset, e.g. digits/1.0.0/
        dataset_info.json, features.json     TFDS metadata (builder_from_directory reads them)
        <key>-<split>.array_record-NNNNN-of-MMMMM
        nevis_manifest.json                  kind, classes, split sizes, file sizes + sha256
    <data_dir>/.tmp/<key>-<random>/          builds in progress; renamed into place when done

Stored splits are train, dev, dev_test and test; `train_and_dev` is read as TFDS "train+dev", so
no example is stored twice; empty splits are not stored (TFDS cannot). Records keep generation
order (`disable_shuffling`).

Features: `image` (PNG, 1 or 3 channels, any size), `label` (ClassLabel; -1 for multi-label
tasks), `labels` (int32 class indices, variable length: the multi-label truth, empty for
single-label tasks; index lists, unlike fixed multi-hot tensors, stay small for many classes and
decode without TensorFlow) and `index` (position within the stored split).

A dataset directory only appears, by rename, once complete; its manifest is written last, so a
manifest on disk means a complete build. `is_prepared` and `stored_manifest` live here, not in
the reader, because preparation asks them too (to skip datasets already built) and they need no
TFDS. Writing is `storage_writer`, opening for training is `storage_reader`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

STORED_SPLITS = ("train", "dev", "dev_test", "test")
MANIFEST = "nevis_manifest.json"
FORMAT_VERSION = 1
DEFAULT_VERSION = "1.0.0"


class DatasetError(Exception):
    """A dataset on disk is unusable; the message says how to rebuild it."""

    def __init__(self, dataset: str, reason: str):
        self.dataset = dataset
        self.rebuild_command = f"python -m nevis.prepare --dataset={dataset} --force"
        super().__init__(f"Dataset '{dataset}': {reason}. Rebuild it with: {self.rebuild_command}")


class DatasetNotPreparedError(DatasetError):
    """The dataset has not been built in this data directory."""


def default_data_dir() -> Path:
    """`$NEVIS_DATA_DIR`, else `~/.nevis/data`, as an absolute path."""
    return Path(os.environ.get("NEVIS_DATA_DIR") or "~/.nevis/data").expanduser().absolute()


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """`data_dir` as an absolute path; None means `default_data_dir()`."""
    return default_data_dir() if data_dir is None else Path(data_dir).expanduser().absolute()


def import_tfds():
    """Imported lazily: importing `nevis.data` should not cost the TFDS import."""
    import tensorflow_datasets as tfds

    return tfds


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file: the writer records it in the manifest, the reader checks it."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in name.split("."))
    except ValueError:
        return (-1,)


def version_dirs(key: str, data_dir: Path) -> list[Path]:
    """The version directories of `key` in `data_dir`, oldest first (complete or not)."""
    directory = data_dir / key
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and _version_key(p.name) != (-1,)]
    return sorted(found, key=lambda p: _version_key(p.name))


def is_prepared(
    key: str, data_dir: str | os.PathLike | None = None, *, version: str | None = None
) -> bool:
    """Whether a complete build of `key` (any version, or `version`) exists in `data_dir`."""
    dirs = version_dirs(key, resolve_data_dir(data_dir))
    return any((p / MANIFEST).is_file() for p in dirs if version in (None, p.name))


def stored_manifest(
    key: str, data_dir: str | os.PathLike | None = None, *, version: str | None = None
) -> dict[str, Any] | None:
    """The manifest of the newest complete build of `key` (or of `version`), or None."""
    dirs = [p for p in version_dirs(key, resolve_data_dir(data_dir)) if version in (None, p.name)]
    for path in reversed(dirs):
        try:
            return json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
    return None
