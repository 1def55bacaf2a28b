"""One on-disk format for every dataset: TFDS `array_record` written and read without TensorFlow.

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

A dataset directory only appears, by rename, once complete; its manifest is written last. Opening
checks the manifest against the files (sizes always, sha256 too for small datasets) so that a
truncated or edited file fails before training starts, naming the command that rebuilds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from nevis.data import images
from nevis.tasks import SPLITS, TaskKind, TaskSpec

Example = Mapping[str, Any]  # {"image": uint8 HxW[xC], "label": int} or {..., "labels": [int]}

STORED_SPLITS = ("train", "dev", "dev_test", "test")
MANIFEST = "nevis_manifest.json"
FORMAT_VERSION = 1
DEFAULT_VERSION = "1.0.0"
# Full sha256 verification on open below this total size; above it, sizes only (see open_split).
AUTO_CHECKSUM_MAX_BYTES = 256 << 20
_STALE_TMP_SECONDS = 3600


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


def _tfds():
    """Imported lazily: importing `nevis.data` should not cost the TFDS import."""
    import tensorflow_datasets as tfds

    return tfds


# --------------------------------------------------------------------------------------- writing


def _encode(example: Example, index: int, kind: TaskKind, num_classes: int, channels: int):
    if isinstance(example["image"], bytes):  # already normalised (images.normalise_encoded)
        encoded = example["image"]
    else:
        image = images.as_hwc(example["image"])
        if image.shape[2] != channels:
            raise ValueError(
                f"Example {index}: {image.shape[2]} channels, dataset has {channels}."
            )
        encoded = images.encode_png(image)
    if kind == TaskKind.MULTI_LABEL:
        labels = sorted({int(c) for c in example["labels"]})
        label = -1
    else:
        label, labels = int(example["label"]), []
    if any(not 0 <= c < num_classes for c in [*labels, *([label] if label != -1 else [])]):
        raise ValueError(f"Example {index}: label out of range [0, {num_classes}).")
    return {
        "image": encoded,
        "label": label,
        "labels": np.asarray(labels, np.int32),
        "index": index,
    }


def _make_builder(
    spec: TaskSpec,
    version: str,
    description: str,
    channels: int,
    class_names: Sequence[str] | None,
    split_examples: Mapping[str, Iterable[Example]],
    data_dir: Path,
    on_example,
):
    tfds = _tfds()
    num_classes = spec.num_classes

    class NevisBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = spec.key
        VERSION = tfds.core.Version(version)

        def _info(self):
            label = (
                tfds.features.ClassLabel(names=list(class_names))
                if class_names
                else tfds.features.ClassLabel(num_classes=num_classes)
            )
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(None, None, channels), encoding_format="png"
                    ),
                    "label": label,
                    "labels": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                    "index": np.int64,
                }
            )
            return tfds.core.DatasetInfo(
                builder=self, description=description, features=features, disable_shuffling=True
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in split_examples}

        def _generate_examples(self, split):
            for i, example in enumerate(split_examples[split]):
                on_example()
                yield i, _encode(example, i, spec.kind, num_classes, channels)

        # TFDS prints these banners to stdout; our progress bar and return value say enough.
        def _log_download_done(self):
            pass

        def _log_download_bytes(self):
            pass

    return NevisBuilder(data_dir=str(data_dir), file_format="array_record")


@contextlib.contextmanager
def _quiet_deterministic_build() -> Iterator[None]:
    """Silences TFDS's own progress bars and makes its records byte-identical across processes.

    TFDS serialises tf.train.Example maps in hash order, which varies between processes; sorting
    the keys (`deterministic=True`) makes every build produce the same bytes.
    """
    from tensorflow_datasets.core import example_serializer
    from tensorflow_datasets.core.utils import tqdm_utils

    def serialize_example(self, example):
        return self.get_tf_example(example).SerializeToString(deterministic=True)

    previous = tqdm_utils._active
    tqdm_utils._active = False
    try:
        with mock.patch.object(
            example_serializer.ExampleSerializer, "serialize_example", serialize_example
        ):
            yield
    finally:
        tqdm_utils._active = previous


def _peek(split_examples: dict[str, Iterable[Example]]) -> int:
    """Drops empty splits (TFDS cannot store them) and returns the first example's channels.

    Each split's iterable is re-chained after peeking, so generators lose nothing.
    """
    channels = None
    for split in list(split_examples):
        iterator = iter(split_examples[split])
        first = next(iterator, None)
        if first is None:
            del split_examples[split]
            continue
        split_examples[split] = itertools.chain([first], iterator)
        if channels is None and not isinstance(first["image"], bytes):
            channels = images.as_hwc(first["image"]).shape[2]
    if not split_examples:
        raise ValueError("write_dataset needs at least one example.")
    return channels or 0


def _file_entries(directory: Path, checksums: bool) -> dict[str, dict[str, Any]]:
    entries = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.name != MANIFEST:
            entry: dict[str, Any] = {"size": path.stat().st_size}
            if checksums:
                entry["sha256"] = _sha256(path)
            entries[path.name] = entry
    return entries


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _remove_stale_builds(tmp_root: Path, key: str) -> None:
    """Removes builds of `key` left by killed processes (older than an hour)."""
    if not tmp_root.is_dir():
        return
    for path in tmp_root.glob(f"{key}-*"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(path, ignore_errors=True)


def write_dataset(
    spec: TaskSpec,
    split_examples: Mapping[str, Iterable[Example]],
    data_dir: str | os.PathLike | None,
    *,
    progress: bool = True,
    version: str = DEFAULT_VERSION,
    description: str = "",
    class_names: Sequence[str] | None = None,
    channels: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Writes `split_examples` (train/dev/dev_test/test) atomically; returns the dataset directory.

    Array images are PNG-encoded here; `bytes` images are stored as they are, so they must
    already match `channels` (see `images.normalise_encoded`), which is then required.
    `metadata` (JSON-able facts about the dataset) is kept in the manifest. A previous build of
    the same version is replaced only once the new one is complete, so a failure at any point
    leaves no half-built dataset behind.
    """
    from nevis import progress as progress_lib  # throttled when stderr is not a terminal

    if spec.num_classes is None or spec.num_classes < 1:
        raise ValueError(f"{spec.key}: num_classes must be known to write a dataset.")
    unknown = set(split_examples) - set(STORED_SPLITS)
    if unknown:
        raise ValueError(
            f"{spec.key}: cannot store splits {sorted(unknown)}; stored splits are "
            f"{STORED_SPLITS} (train_and_dev is read as train+dev)."
        )
    if class_names is not None and len(class_names) != spec.num_classes:
        raise ValueError(f"{spec.key}: {len(class_names)} class names for {spec.num_classes}.")
    root = resolve_data_dir(data_dir)
    examples = {s: split_examples[s] for s in STORED_SPLITS if s in split_examples}
    peeked = _peek(examples)
    channels = channels or peeked
    if not channels:
        raise ValueError(f"{spec.key}: give `channels` when images are encoded bytes.")
    lengths = [len(v) if hasattr(v, "__len__") else None for v in split_examples.values()]
    total = None if None in lengths else sum(lengths)

    tmp_root = root / ".tmp"
    _remove_stale_builds(tmp_root, spec.key)
    build_dir = tmp_root / f"{spec.key}-{uuid.uuid4().hex[:12]}"
    build_dir.mkdir(parents=True)
    final = root / spec.key / version
    try:
        with progress_lib.bar(total=total, desc=spec.key, unit="ex", enabled=progress) as bar:
            builder = _make_builder(
                spec,
                version,
                description,
                channels,
                class_names,
                examples,
                build_dir,
                on_example=lambda: bar.update(1),
            )
            with _quiet_deterministic_build():
                builder.download_and_prepare()
        built = Path(builder.data_dir)
        manifest = {
            "format": FORMAT_VERSION,
            "key": spec.key,
            "name": spec.name,
            "year": spec.year,
            "source": spec.source,
            "version": version,
            "kind": str(spec.kind),
            "num_classes": spec.num_classes,
            "channels": channels,
            "splits": {s: builder.info.splits[s].num_examples for s in examples},
            "files": _file_entries(built, checksums=True),
            "metadata": dict(metadata or {}),
        }
        (built / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        final.parent.mkdir(parents=True, exist_ok=True)
        previous = build_dir / "previous"
        if final.exists():
            os.rename(final, previous)
        try:
            os.rename(built, final)
        except OSError:
            if previous.exists() and not final.exists():
                os.rename(previous, final)  # keep the old build rather than none
            raise
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------- reading


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in name.split("."))
    except ValueError:
        return (-1,)


def _version_dirs(key: str, data_dir: Path) -> list[Path]:
    directory = data_dir / key
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and _version_key(p.name) != (-1,)]
    return sorted(found, key=lambda p: _version_key(p.name))


def is_prepared(
    key: str, data_dir: str | os.PathLike | None = None, *, version: str | None = None
) -> bool:
    """Whether a complete build of `key` (any version, or `version`) exists in `data_dir`."""
    dirs = _version_dirs(key, resolve_data_dir(data_dir))
    return any((p / MANIFEST).is_file() for p in dirs if version in (None, p.name))


def stored_manifest(
    key: str, data_dir: str | os.PathLike | None = None, *, version: str | None = None
) -> dict[str, Any] | None:
    """The manifest of the newest complete build of `key` (or of `version`), or None."""
    dirs = [p for p in _version_dirs(key, resolve_data_dir(data_dir)) if version in (None, p.name)]
    for path in reversed(dirs):
        try:
            return json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
    return None


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
        if "sha256" in entry and _sha256(manifest.path / name) != entry["sha256"]:
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
    dirs = [p for p in _version_dirs(key, root) if version in (None, p.name)]
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
    tfds = _tfds()
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
        out["labels" if self.multi_label else "label"] = self.targets(record)
        return out
