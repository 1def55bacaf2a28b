"""Writes datasets in the on-disk format (see `storage_format`): dataset handlers, the
preparation pipeline and the embedded datasets use this; training never does.

Writes are atomic: a build goes to `<data_dir>/.tmp/` and is renamed into place once complete,
with its manifest (file sizes and sha256) written last.
"""

from __future__ import annotations

import contextlib
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
from nevis.data.storage_format import (
    DEFAULT_VERSION,
    FORMAT_VERSION,
    MANIFEST,
    STORED_SPLITS,
    file_sha256,
    import_tfds,
    resolve_data_dir,
)
from nevis.tasks import TaskKind, TaskSpec

Example = Mapping[str, Any]  # {"image": uint8 HxW[xC], "label": int} or {..., "labels": [int]}

_STALE_TMP_SECONDS = 3600


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
    tfds = import_tfds()
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
def quiet_deterministic_build() -> Iterator[None]:
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
                entry["sha256"] = file_sha256(path)
            entries[path.name] = entry
    return entries


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
            with quiet_deterministic_build():
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
