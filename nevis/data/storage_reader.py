"""Opens prepared datasets for training (see `storage_format`): the loader, `nevis.datasets` and
the learners use this; it never writes.

`open_split` checks a build against its manifest (sizes always, sha256 too for small datasets)
so that a truncated or edited file fails before training starts, naming the command that
rebuilds it; `SplitSource` then gives random access to the records.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nevis.data import images
from nevis.data.storage_format import (
    FORMAT_VERSION,
    MANIFEST,
    DatasetError,
    DatasetNotPreparedError,
    file_sha256,
    import_tfds,
    resolve_data_dir,
    version_dirs,
)
from nevis.tasks import SPLITS, TaskKind, TaskSpec

# Full sha256 verification on open below this total size; above it, sizes only (see open_split).
AUTO_CHECKSUM_MAX_BYTES = 256 << 20


@dataclasses.dataclass(frozen=True)
class _Manifest:
    path: Path
    kind: TaskKind
    num_classes: int
    channels: int
    splits: dict[str, int]
    files: dict[str, dict[str, Any]]


_VERIFIED: set[tuple] = set()  # Checksummed (dir, sizes, mtimes) in this process.


def _read_manifest(key: str, path: Path) -> _Manifest:
    try:
        raw = json.loads((path / MANIFEST).read_text())
        if raw["format"] != FORMAT_VERSION or raw["key"] != key:
            raise ValueError(f"format {raw['format']} / key {raw['key']!r}")
        return _Manifest(
            path=path,
            kind=TaskKind(raw["kind"]),
            num_classes=int(raw["num_classes"]),
            channels=int(raw["channels"]),
            splits={str(k): int(v) for k, v in raw["splits"].items()},
            files=dict(raw["files"]),
        )
    except FileNotFoundError as e:
        raise DatasetError(key, f"{path} has no {MANIFEST}: the build is incomplete") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(key, f"unreadable {path / MANIFEST} ({e})") from e


def _verify_files(key: str, manifest: _Manifest, verify: str) -> None:
    stats = {}
    for name, entry in manifest.files.items():
        file = manifest.path / name
        try:
            stat = file.stat()
        except OSError as e:
            raise DatasetError(key, f"file {file} is missing") from e
        if stat.st_size != entry["size"]:
            raise DatasetError(
                key, f"file {file} has {stat.st_size} bytes, expected {entry['size']} (truncated?)"
            )
        stats[name] = (stat.st_size, stat.st_mtime_ns)
    total = sum(size for size, _ in stats.values())
    if verify == "sizes" or (verify == "auto" and total > AUTO_CHECKSUM_MAX_BYTES):
        return
    token = (str(manifest.path), tuple(sorted(stats.items())))
    if token in _VERIFIED:
        return
    for name, entry in manifest.files.items():
        if "sha256" in entry and file_sha256(manifest.path / name) != entry["sha256"]:
            raise DatasetError(key, f"file {manifest.path / name} fails its sha256 check")
    _VERIFIED.add(token)


def open_split(
    spec: TaskSpec,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    version: str | None = None,
    verify: str = "auto",
) -> SplitSource:
    """Opens one split of a prepared dataset for random access, after checking it.

    `version` defaults to the newest one on disk. `verify`: "sizes" compares file sizes with the
    manifest, "full" also sha256 checksums, "auto" (default) checksums datasets up to
    AUTO_CHECKSUM_MAX_BYTES (a few ms for the embedded stream; cached per process).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; valid splits: {', '.join(SPLITS)}.")
    if verify not in ("auto", "sizes", "full"):
        raise ValueError(f"verify must be 'auto', 'sizes' or 'full', got {verify!r}.")
    key, root = spec.key, resolve_data_dir(data_dir)
    dirs = [p for p in version_dirs(key, root) if version in (None, p.name)]
    if not dirs:
        what = f"version {version} of it" if version else "it"
        raise DatasetNotPreparedError(key, f"{what} is not prepared in {root}")
    manifest = _read_manifest(key, dirs[-1])
    if manifest.kind != spec.kind or (
        spec.num_classes is not None and manifest.num_classes != spec.num_classes
    ):
        raise DatasetError(
            key,
            f"stored as {manifest.kind} with {manifest.num_classes} classes but the task spec "
            f"says {spec.kind} with {spec.num_classes} classes",
        )
    parts = ("train", "dev") if split == "train_and_dev" else (split,)
    missing = [p for p in parts if p not in manifest.splits]
    if missing:
        raise DatasetError(key, f"split(s) {missing} are not stored (empty) in {manifest.path}")
    _verify_files(key, manifest, verify)
    tfds = import_tfds()
    try:
        builder = tfds.builder_from_directory(str(manifest.path))
        label_feature = builder.info.features["label"]
        if label_feature.num_classes != manifest.num_classes:
            raise ValueError(f"features.json has {label_feature.num_classes} classes")
        for part in parts:
            if builder.info.splits[part].num_examples != manifest.splits[part]:
                raise ValueError(f"dataset_info.json disagrees on the size of split {part}")
        data_source = builder.as_data_source(
            "+".join(parts), decoders={"image": tfds.decode.SkipDecoding()}
        )
        num_examples = len(data_source)
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 - any TFDS/array_record failure means a broken dataset.
        raise DatasetError(key, f"cannot open {manifest.path} ({type(e).__name__}: {e})") from e
    if num_examples != sum(manifest.splits[p] for p in parts):
        raise DatasetError(key, f"split {split} has {num_examples} records, manifest disagrees")
    return SplitSource(spec, split, manifest, data_source, num_examples)


def _parse_record(raw: bytes) -> dict[str, Any]:
    """Parses one stored tf.train.Example, about 10x faster than TFDS's generic deserializer.

    Our features are flat and fixed (bytes image, int label and labels), so reading the proto
    directly is safe; a test compares it with TFDS's own parsing.
    """
    from tensorflow_datasets.proto import tf_example_pb2

    feature = tf_example_pb2.Example.FromString(raw).features.feature
    return {
        "image": feature["image"].bytes_list.value[0],
        "label": feature["label"].int64_list.value[0],
        "labels": np.asarray(feature["labels"].int64_list.value, np.int64),
        "index": feature["index"].int64_list.value[0],
    }


class SplitSource:
    """Random access to one split: `source[i]` -> {"image", "label" | "labels", "index"}.

    `image` is uint8 HxWxC as stored (C = `channels`); single-label tasks give `label` (int),
    multi-label tasks `labels` (float32 multi-hot [num_classes]). `index` is the position in this
    split (for train_and_dev, dev examples follow the train ones). Read or decode failures raise
    DatasetError, never a raw Pillow/array_record exception.
    """

    def __init__(self, spec: TaskSpec, split: str, manifest: _Manifest, data_source, n: int):
        self.spec = spec
        self.split = split
        self.path = manifest.path
        self.num_classes = manifest.num_classes
        self.channels = manifest.channels
        self.num_examples = n
        self._data_source = data_source
        self.cache: dict[Any, Any] = {}  # Loader-owned: decoded arrays reused across epochs.

    @property
    def multi_label(self) -> bool:
        return self.spec.kind == TaskKind.MULTI_LABEL

    def __len__(self) -> int:
        return self.num_examples

    def __repr__(self) -> str:
        return f"SplitSource({self.spec.key}/{self.split}, {self.num_examples} examples)"

    def error(self, reason: str) -> DatasetError:
        return DatasetError(self.spec.key, f"{reason} in {self.path} (split {self.split})")

    def read_records(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Undecoded records: `image` holds PNG bytes. Used by the loader to decode in threads."""
        for i in indices:
            if not 0 <= i < self.num_examples:
                raise IndexError(f"index {i} out of range for {self!r}")
        indices = [int(i) for i in indices]
        try:
            raw_source = getattr(self._data_source, "data_source", None)
            if raw_source is None:  # not the TFDS version we pin: use its (slower) parser
                return list(self._data_source.__getitems__(indices))
            return [_parse_record(raw) for raw in raw_source.__getitems__(indices)]
        except Exception as e:  # noqa: BLE001 - reported as a corrupt dataset.
            raise self.error(f"cannot read records ({type(e).__name__}: {e})") from e

    def decode(self, data: bytes, size: int | None = None) -> np.ndarray:
        """Stored image -> uint8 HxWxC, or [size, size, 3] RGB when `size` is given."""
        try:
            if size is None:
                return images.decode_image(data)
            return images.decode_resized_rgb(data, size)
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad data.
            raise self.error(f"cannot decode an image ({type(e).__name__}: {e})") from e

    def targets(self, record: Mapping[str, Any]) -> int | np.ndarray:
        """`label` (int) for single-label tasks, multi-hot float32 [num_classes] otherwise."""
        if not self.multi_label:
            return int(record["label"])
        hot = np.zeros(self.num_classes, np.float32)
        hot[np.asarray(record["labels"], np.int64)] = 1.0
        return hot

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not isinstance(i, int | np.integer):
            raise TypeError(f"{self!r} takes integer indices, got {type(i).__name__}")
        record = self.read_records([int(i)])[0]
        out: dict[str, Any] = {"image": self.decode(record["image"]), "index": int(i)}
        out[self.spec.kind.label_field] = self.targets(record)
        return out
