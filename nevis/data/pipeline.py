"""Raw files → stored dataset: the preparation pipeline behind `python -m nevis.prepare`.

For one handler: fetch its sources (`download`), build its items (the handler), remove exact
duplicates, split them with the handler's recipe, then decode, check, convert where needed and
write every split through `storage.write_dataset` (atomic: a dataset appears complete or not at
all). Decoding and conversion run in a thread pool (Pillow releases the GIL), so writing keeps
up with decoding. Facts found on the way — duplicates removed, images shared between stored
splits, whether the raw files were checksum-verified — go into the dataset's manifest.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nevis.data import images, recipes, storage_format, storage_writer
from nevis.data.archives import ArchiveError
from nevis.data.download import FetchOptions, fetch
from nevis.data.handlers.base import BuildContext, Built
from nevis.data.sources import PrepareError
from nevis.tasks import TaskKind, TaskSpec


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    data_dir: Path
    fetch: FetchOptions
    tfds_data_dir: Path | None = None
    allow_tfds_download: bool = True
    force: bool = False
    workers: int = max(1, min(8, os.cpu_count() or 1))


@dataclasses.dataclass
class Outcome:
    """One dataset's row in the status table."""

    key: str
    status: str  # ready | prepared now | needs manual download | ... | failed
    detail: str = ""
    examples: int | None = None
    verified: bool | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("ready", "prepared now")


def prepared_outcome(key: str, data_dir: Path, version: str | None) -> Outcome | None:
    manifest = storage_format.stored_manifest(key, data_dir, version=version)
    if manifest is None:
        return None
    verified = manifest.get("metadata", {}).get("sources_verified")
    return Outcome(key, "ready", examples=sum(manifest["splits"].values()), verified=verified)


def fetch_sources(handler, options: PrepareOptions) -> dict[str, Path]:
    return {s.filename: fetch(s, handler.key, options.fetch, handler.homepage)
            for s in handler.sources}


def _spec(handler, catalog: TaskSpec | None, built: Built) -> TaskSpec:
    num_classes = len(built.class_names)
    published = catalog.num_classes if catalog else handler.num_classes
    if published is not None and published != num_classes:
        raise PrepareError(
            f"{handler.key}: the data gives {num_classes} classes but the catalog says "
            f"{published}; the handler's label list is wrong."
        )
    if catalog is not None:
        return dataclasses.replace(catalog, num_classes=num_classes)
    return TaskSpec(handler.key, handler.name, handler.year, handler.kind, num_classes,
                    getattr(handler, "source", "custom"))


def _to_example(item: recipes.Item, kind: TaskKind, channels: int,
                max_side: int | None) -> tuple[bytes, dict[str, Any]]:
    """(content digest, storable example) for one item; decoding errors name the item."""
    try:
        data = recipes.read_image(item)
        digest = recipes.image_digest(data)
        if isinstance(data, np.ndarray):
            data = _array_png(data, channels, max_side)
        else:
            data = images.normalise_encoded(data, channels, max_side)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise PrepareError(f"cannot decode image {item.name or item.image!r} "
                           f"({type(e).__name__}: {e})") from e
    if kind == TaskKind.MULTI_LABEL:
        labels = item.label if not isinstance(item.label, int | np.integer) else [item.label]
        return digest, {"image": data, "labels": [int(c) for c in labels]}
    if not isinstance(item.label, int | np.integer):
        raise PrepareError(f"item {item.name!r}: a single-label dataset needs an int label, got "
                           f"{item.label!r}")
    return digest, {"image": data, "label": int(item.label)}


def _array_png(array: np.ndarray, channels: int, max_side: int | None) -> bytes:
    hwc = images.as_hwc(array)
    if hwc.shape[2] == channels and (max_side is None or max(hwc.shape[:2]) <= max_side):
        return images.encode_png(hwc)
    return images.normalise_encoded(images.encode_png(hwc), channels, max_side)


def _parallel_map(fn: Callable, items: Sequence, workers: int) -> Iterator:
    """fn over items in order, `workers` at a time, with a bounded read-ahead."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending: collections.deque = collections.deque()
        iterator = iter(items)
        for item in iterator:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def write_built(handler, spec: TaskSpec, built: Built, options: PrepareOptions,
                extra_metadata: dict[str, Any], progress: bool) -> tuple[Path, int]:
    """Deduplicates, splits, converts and writes; returns (dataset folder, examples written)."""
    items = list(built.items) if built.deduplicate else built.items
    metadata: dict[str, Any] = {**extra_metadata, **dict(built.metadata)}
    if built.deduplicate:
        digests = _parallel_map(lambda item: recipes.image_digest(recipes.read_image(item)),
                                items, options.workers)
        dedup = recipes.deduplicate(items, list(digests))
        items = dedup.items
        metadata.update(duplicates_removed=dedup.removed,
                        duplicate_label_conflicts=dedup.conflicting)
    parts = built.recipe(items)
    empty = [s for s in recipes.STORED_SPLITS if not parts.get(s)]
    if "train" in empty:
        raise PrepareError(f"{handler.key}: the recipe left the train split empty "
                           f"({len(items)} items) — is the raw data complete?")
    digests: dict[str, set[bytes]] = {s: set() for s in parts}
    max_side = getattr(handler, "max_image_side", None)

    def convert(item):
        return _to_example(item, spec.kind, built.channels, max_side)

    def examples(split: str) -> Iterable[dict[str, Any]]:
        for digest, example in _parallel_map(convert, parts[split], options.workers):
            digests[split].add(digest)
            yield example

    split_examples = {s: _Sized(examples(s), len(v)) for s, v in parts.items() if v}
    path = storage_writer.write_dataset(
        spec, split_examples, options.data_dir, progress=progress,
        version=getattr(handler, "version", storage_format.DEFAULT_VERSION),
        description=f"{handler.name} ({handler.year}); {handler.homepage}",
        class_names=list(built.class_names), channels=built.channels,
        metadata={**metadata, "recipe": getattr(built.recipe, "description", ""),
                  "empty_splits": empty,
                  "cross_split_duplicates": _overlaps(digests)},
    )
    return path, sum(len(v) for v in parts.values())


class _Sized:
    """An iterable that knows its length (so the storage progress bar shows a total)."""

    def __init__(self, iterable: Iterable, length: int):
        self._iterable, self._length = iterable, length

    def __iter__(self):
        return iter(self._iterable)

    def __len__(self) -> int:
        return self._length


def _overlaps(digests: dict[str, set[bytes]]) -> dict[str, int]:
    names = [s for s in recipes.STORED_SPLITS if s in digests]
    return {f"{a}/{b}": len(digests[a] & digests[b])
            for i, a in enumerate(names) for b in names[i + 1:] if digests[a] & digests[b]}


def prepare_one(handler, catalog: TaskSpec | None, options: PrepareOptions,
                files: dict[str, Path] | None = None, progress: bool = True) -> Outcome:
    """Prepares one dataset (unless ready); every failure becomes an Outcome, not an exception."""
    start = time.perf_counter()
    version = getattr(handler, "version", None)
    if not options.force:
        ready = prepared_outcome(handler.key, options.data_dir, version)
        if ready is not None:
            return ready
    scratch = options.fetch.download_dir / handler.key / "extracted"
    try:
        if files is None:
            files = fetch_sources(handler, options)
        ctx = BuildContext(handler.key, files, scratch, options={
            "tfds_data_dir": options.tfds_data_dir, "mirror": options.fetch.mirror,
            "manual_dir": options.fetch.manual_dir, "download": options.allow_tfds_download,
            "progress": progress,
        })
        built = handler.build(ctx)
        spec = _spec(handler, catalog, built)
        verified = options.fetch.verify_checksums and all(s.checksum for s in handler.sources)
        _, count = write_built(handler, spec, built, options,
                               {"sources_verified": bool(verified)}, progress)
    except PrepareError as e:
        return Outcome(handler.key, e.status, e.message, seconds=time.perf_counter() - start)
    except ArchiveError as e:
        return Outcome(handler.key, "failed", str(e), seconds=time.perf_counter() - start)
    except (OSError, ValueError, KeyError, IndexError, RuntimeError) as e:
        return Outcome(handler.key, "failed", f"{type(e).__name__}: {e}",
                       seconds=time.perf_counter() - start)
    shutil.rmtree(scratch, ignore_errors=True)
    return Outcome(handler.key, "prepared now", examples=count, verified=bool(verified),
                   seconds=time.perf_counter() - start)
