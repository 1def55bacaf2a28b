"""The NEVIS'22 task catalog, read from the CSV files shipped with the package.

`stream_tasks.csv` is the FULL stream in order; `stream_variants.csv` lists the other published
variants. Both are facts transcribed from the reference (google-deepmind/dm_nevis).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import re
from importlib import resources

from nevis.tasks import TaskKind, TaskSpec

_KINDS = {"multiclass": TaskKind.SINGLE_LABEL, "multilabel": TaskKind.MULTI_LABEL}


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One occurrence of a dataset in a NEVIS'22 stream."""

    order: int
    year: int
    task: TaskSpec
    notes: str


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("nevis.streams").joinpath("catalog", name).read_text()
    return list(csv.DictReader(text.splitlines()))


@functools.cache
def full_stream() -> tuple[CatalogEntry, ...]:
    """All 106 entries of the FULL stream, in stream order (repeats included)."""
    entries = []
    for row in _read("stream_tasks.csv"):
        match = re.search(r"key_prefix=([a-z0-9_]+)", row["notes"])
        if match is None:
            raise ValueError(f"Catalog row {row['order']} has no key_prefix in its notes.")
        task = TaskSpec(
            key=match.group(1),
            name=row["dataset_key"],
            year=int(row["year"]),
            kind=_KINDS[row["task_kind"]],
            num_classes=int(row["num_classes"]) if row["num_classes"] else None,
            source=row["source"],
        )
        entries.append(CatalogEntry(int(row["order"]), int(row["year"]), task, row["notes"]))
    return tuple(entries)


@functools.cache
def variants() -> dict[str, tuple[CatalogEntry, ...]]:
    """Every published variant by lower-case name, FULL included."""
    by_name = {}
    for entry in full_stream():
        by_name.setdefault(entry.task.name, entry.task)
    out: dict[str, list[CatalogEntry]] = {"full": list(full_stream())}
    for row in _read("stream_variants.csv"):
        task = by_name[row["dataset_key"]]
        year = int(row["year"])
        entry = CatalogEntry(int(row["order_in_variant"]), year, task, "")
        out.setdefault(row["variant"].lower(), []).append(entry)
    return {name: tuple(sorted(rows, key=lambda e: e.order)) for name, rows in out.items()}
