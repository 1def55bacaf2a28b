"""Streams: ordered task sequences and the events a learner sees.

A stream is a chronological list of tasks; it expands into events: for every task a
`TrainingEvent`, then one `PredictionEvent` per prediction split, and, if asked for, a final
re-evaluation of every distinct task at the end (which is how forgetting is measured).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from nevis.streams.catalog import CatalogEntry, full_stream, variants
from nevis.tasks import PREDICTION_SPLITS, TaskKind, TaskSpec

__all__ = [
    "Event",
    "PredictionEvent",
    "Stream",
    "TrainingEvent",
    "STREAM_NAMES",
    "make_stream",
]


@dataclasses.dataclass(frozen=True)
class TrainingEvent:
    task: TaskSpec
    year: int  # the year of this occurrence in the stream (a repeat has a later year)


@dataclasses.dataclass(frozen=True)
class PredictionEvent:
    task: TaskSpec
    split: str
    year: int
    final: bool = False  # part of the end-of-stream re-evaluation


Event = TrainingEvent | PredictionEvent

NEVIS_VARIANTS = (
    "full",
    "short",
    "tiny",
    "debug",
    "imagenet_only",
    "major_domain_only",
    "large_dataset_only",
)
STREAM_NAMES = ("embedded", "prepared") + NEVIS_VARIANTS


@dataclasses.dataclass(frozen=True)
class Stream:
    name: str
    tasks: tuple[TaskSpec, ...]  # in stream order; a repeated dataset appears again, same key
    years: tuple[int, ...]
    prediction_splits: tuple[str, ...] = ("dev_test",)
    final_evaluation: bool = True

    def events(self) -> list[Event]:
        events: list[Event] = []
        latest_year = {}
        for task, year in zip(self.tasks, self.years, strict=True):
            latest_year[task.key] = year
            events.append(TrainingEvent(task, year))
            events.extend(PredictionEvent(task, split, year) for split in self.prediction_splits)
        if self.final_evaluation:
            for task in self.unique_tasks():
                year = latest_year[task.key]
                events.extend(
                    PredictionEvent(task, s, year, final=True) for s in self.prediction_splits
                )
        return events

    def unique_tasks(self) -> list[TaskSpec]:
        return list({task.key: task for task in self.tasks}.values())


def _choices_error(what: str, value: object, choices: Sequence[str]) -> ValueError:
    return ValueError(f"Unknown {what} {value!r}; valid choices: {', '.join(choices)}.")


def _embedded_entries() -> list[CatalogEntry]:
    from nevis.data.embedded import EMBEDDED_TASKS  # data knows no stream; streams know data

    return [CatalogEntry(i + 1, t.year, t, "") for i, t in enumerate(EMBEDDED_TASKS)]


def _prepared_entries(tasks: Sequence[str], data_dir) -> list[CatalogEntry]:
    """Any prepared datasets, in the order given (`--stream=prepared`)."""
    from nevis.data import storage_format

    if not tasks:
        raise ValueError("stream 'prepared' needs its datasets: --config.stream.tasks=KEY[,KEY…] "
                         "(keys prepared with `python -m nevis.prepare`).")
    entries, missing = [], []
    for i, key in enumerate(tasks):
        manifest = storage_format.stored_manifest(key, data_dir)
        if manifest is None:
            missing.append(key)
            continue
        spec = TaskSpec(key, manifest["name"], int(manifest.get("year", 0)),
                        TaskKind(manifest["kind"]), int(manifest["num_classes"]),
                        manifest.get("source", "custom"))
        entries.append(CatalogEntry(i + 1, spec.year, spec, ""))
    if missing:
        where = storage_format.resolve_data_dir(data_dir)
        raise ValueError(f"stream 'prepared': {', '.join(missing)} not prepared in {where}; "
                         "prepare them with `python -m nevis.prepare --dataset=...`.")
    return entries


def _with_stored_counts(entries: list[CatalogEntry], data_dir) -> list[CatalogEntry]:
    """Fills class counts the catalog leaves blank (computed at extraction) from manifests."""
    from nevis.data import storage_format

    out = []
    for entry in entries:
        if entry.task.num_classes is None:
            manifest = storage_format.stored_manifest(entry.task.key, data_dir)
            if manifest is not None:
                task = dataclasses.replace(entry.task, num_classes=int(manifest["num_classes"]))
                entry = dataclasses.replace(entry, task=task)
        out.append(entry)
    return out


def make_stream(
    name: str,
    *,
    stop_year: int | None = None,
    prediction_splits: Sequence[str] = ("dev_test",),
    final_evaluation: bool = True,
    tasks: Sequence[str] = (),
    data_dir=None,
) -> Stream:
    """Builds a stream by name; `tasks` restricts it to those dataset keys (in stream order).

    `stop_year` keeps only years strictly before it (NEVIS'22 uses 2020 for development and
    2022 for the full stream); None keeps every year. Class counts the catalog leaves blank are
    read from the datasets prepared in `data_dir` (default: $NEVIS_DATA_DIR, ~/.nevis/data).
    Stream `prepared` is any prepared datasets, listed in `tasks`, in that order.
    """
    name = name.lower()
    if name == "embedded":
        entries = _embedded_entries()
    elif name == "prepared":
        entries = _prepared_entries(tasks, data_dir)
    elif name in NEVIS_VARIANTS:
        entries = list(variants()[name]) if name != "full" else list(full_stream())
        entries = _with_stored_counts(entries, data_dir)
    else:
        raise _choices_error("stream", name, STREAM_NAMES)
    for split in prediction_splits:
        if split not in PREDICTION_SPLITS:
            raise _choices_error("prediction split", split, PREDICTION_SPLITS)
    if not prediction_splits:
        raise ValueError("prediction_splits is empty; give at least one of: dev, dev_test, test.")
    if stop_year is not None:
        entries = [e for e in entries if e.year < stop_year]
    if tasks:
        known = [e.task.key for e in entries]
        for key in tasks:
            if key not in known:
                raise _choices_error(f"task in stream {name!r}", key, sorted(set(known)))
        entries = [e for e in entries if e.task.key in set(tasks)]
    if not entries:
        raise ValueError(f"Stream {name!r} with stop_year={stop_year} has no tasks.")
    return Stream(
        name=name,
        tasks=tuple(e.task for e in entries),
        years=tuple(e.year for e in entries),
        prediction_splits=tuple(prediction_splits),
        final_evaluation=final_evaluation,
    )
