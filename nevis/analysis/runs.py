"""Run directories (written by `python -m nevis.run`) as pandas tables.

Reads only the result files (`config.json`, `summary.json`, `events.jsonl`, `predictions/`),
never the checkpoints, so analysis needs neither jax nor the learner's code and works on a run
copied off the machine that produced it, including an unfinished one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nevis.budgets import AA_SCORES

# Record fields kept as columns as they are; nested dicts are flattened (see `_flatten_record`).
EVENT_COLUMNS = (
    "event_index", "event", "task", "name", "year", "kind", "split", "final", "status",
    "cumulative_train_flops", "seconds", "per_example_file", "reason",
)


def _flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """One event as a flat row: metrics keep their own names, resources and info are prefixed.

    Metrics are what analyses read most (`error`, `scores/aa`, `budget_2x/error`), so they get
    the short names; `resources/…` and `info/…` cannot collide with them.
    """
    row = {k: record.get(k) for k in EVENT_COLUMNS}
    row.update(record.get("metrics") or {})
    for prefix in ("resources", "info"):
        for k, v in (record.get(prefix) or {}).items():
            row[f"{prefix}/{k}"] = v
    return row


def parse_run_dirs(run_dirs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Run directories from a list or a comma-separated string (as notebooks receive them)."""
    if isinstance(run_dirs, str | Path):
        run_dirs = [p for p in str(run_dirs).split(",")]
    paths = [Path(str(p).strip()).expanduser() for p in run_dirs if str(p).strip()]
    if not paths:
        raise ValueError("No run directory given (run_dirs is empty).")
    return paths


@dataclass
class Run:
    """One run directory's results; tables are built on first use."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(repr=False)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.learner

    @property
    def learner(self) -> str:
        """The experiment's name (`--learner=NAME`: independent, finetune, deq, …), or the
        directory name for a run recorded without one."""
        return str(self.config.get("experiment") or self.path.name)

    @cached_property
    def events(self) -> pd.DataFrame:
        """One row per event, in stream order, with cumulative compute of every kind."""
        df = pd.DataFrame([_flatten_record(r) for r in self.records])
        if df.empty:
            return pd.DataFrame(columns=list(EVENT_COLUMNS))
        df = df.sort_values("event_index", ignore_index=True)
        df["final"] = df["final"].fillna(False).astype(bool)
        if "resources/total_flops" in df:
            df["cumulative_total_flops"] = df["resources/total_flops"].fillna(0).cumsum()
        return df

    @cached_property
    def tasks(self) -> pd.DataFrame:
        """Prediction events during the stream, joined with their end-of-stream re-evaluation.

        Adds `accuracy` (1 − error: top-1 accuracy or mAP), `position` (order among the split's
        stream predictions), `occurrence` (how often the task was seen before), `latest` (last
        occurrence), `final_error`, and `forgetting` = final error − error after the task's
        last training (the same value on every occurrence, as in summary.json).
        """
        ev = self.events
        predict = ev[ev["event"] == "predict"] if "event" in ev else ev
        during = predict[~predict["final"]].copy()
        final = predict[predict["final"]]
        if during.empty:
            return during
        during["accuracy"] = 1 - during["error"] if "error" in during else np.nan
        during["position"] = during.groupby("split").cumcount()
        during["occurrence"] = during.groupby(["task", "split"]).cumcount()
        last = during.groupby(["task", "split"])["occurrence"].transform("max")
        during["latest"] = during["occurrence"] == last
        for score in AA_SCORES.values():
            if f"scores/{score}" in during:
                during[score] = during[f"scores/{score}"]
        if not final.empty and "error" in final:
            final_error = final.drop_duplicates(["task", "split"], keep="last").set_index(
                ["task", "split"])["error"]
            key = pd.MultiIndex.from_frame(during[["task", "split"]])
            during["final_error"] = final_error.reindex(key).to_numpy()
            latest_error = during[during["latest"]].set_index(["task", "split"])["error"]
            during["forgetting"] = (
                during["final_error"] - latest_error.reindex(key).to_numpy()
            )
        else:
            during["final_error"] = np.nan
            during["forgetting"] = np.nan
        return during.reset_index(drop=True)

    @property
    def split(self) -> str | None:
        """The scored split: the first in summary.json, else the first predicted one."""
        splits = list(self.summary.get("splits", {}))
        if splits:
            return splits[0]
        predicted = [r["split"] for r in self.records if r.get("split")]
        return predicted[0] if predicted else None

    @property
    def scored_tasks(self) -> pd.DataFrame:
        """`tasks` restricted to the scored split (what the stream error averages)."""
        tasks = self.tasks
        return tasks[tasks["split"] == self.split].reset_index(drop=True) if len(tasks) else tasks

    @property
    def has_aa(self) -> bool:
        """Whether prediction events carry path-independence (AA) scores."""
        return "scores/aa" in self.events and self.events["scores/aa"].notna().any()

    def examples(self, event_index: int) -> pd.DataFrame:
        """The per-example arrays of one prediction event, one row per example.

        1-D arrays become columns; [N, C] arrays (multi-label `labels`, `scores`) become one
        column holding each example's row.
        """
        record = next((r for r in self.records if r["event_index"] == event_index), None)
        if record is None:
            raise KeyError(f"No event {event_index} in {self.path}.")
        file = record.get("per_example_file")
        if not file:
            raise KeyError(f"Event {event_index} in {self.path} saved no per-example file.")
        with np.load(self.path / file) as data:
            columns = {k: data[k] if data[k].ndim == 1 else list(data[k]) for k in data.files}
        meta = {k: record.get(k) for k in ("event_index", "task", "split", "final", "kind")}
        return pd.DataFrame({**meta, **columns})

    def per_example(self, *, final: bool | None = False,
                    kind: str | None = None) -> pd.DataFrame:
        """Per-example rows of every saved prediction event (stream ones by default).

        `final=None` includes the end-of-stream re-evaluation; `kind` filters on task kind.
        """
        frames = [
            self.examples(r["event_index"]) for r in self.records
            if r["event"] == "predict" and r.get("per_example_file")
            and (final is None or bool(r.get("final")) == final)
            and (kind is None or r.get("kind") == kind)
            and (self.path / r["per_example_file"]).exists()
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_run(path: str | Path, label: str = "") -> Run:
    """Loads a run directory; `label` names it in multi-run tables (default: learner name)."""
    path = Path(path).expanduser()
    if not (path / "events.jsonl").exists():
        raise FileNotFoundError(f"{path} is not a run directory (no events.jsonl).")
    records = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()
               if line.strip()]

    def read(name: str) -> dict[str, Any]:
        file = path / name
        return json.loads(file.read_text()) if file.exists() else {}

    return Run(path=path, config=read("config.json"), summary=read("summary.json"),
               records=records, label=label)


def _unique_labels(runs: Sequence[Run]) -> None:
    """Two runs of one learner get their directory names appended, so plots can tell them apart."""
    counts = pd.Series([r.label for r in runs]).value_counts()
    for r in runs:
        if counts[r.label] > 1:
            r.label = f"{r.label} ({r.path.name})"
    if len({r.label for r in runs}) < len(runs):  # same learner and directory name
        for i, r in enumerate(runs):
            r.label = f"{r.label} #{i}"


def load_all(paths: str | Path | Iterable[str | Path]) -> list[Run]:
    """Loads several runs with distinct labels (paths: list or comma-separated string)."""
    runs = [load_run(p) for p in parse_run_dirs(paths)]
    _unique_labels(runs)
    return runs


def stack(runs: Sequence[Run], table: str = "tasks") -> pd.DataFrame:
    """One table (`tasks`, `scored_tasks`, `events` or `per_example`) of several runs, with a
    `run` column (the run's label) and `run_path`."""
    frames = []
    for r in runs:
        df = r.per_example() if table == "per_example" else getattr(r, table)
        frames.append(df.assign(run=r.label, run_path=str(r.path)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_runs(paths: str | Path | Iterable[str | Path], table: str = "tasks") -> pd.DataFrame:
    """Stacks the `table` of several run directories, with a `run` column (learner name)."""
    return stack(load_all(paths), table)


def summary_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: headline scores of its first scored split and its total compute."""
    rows = []
    for r in runs:
        splits = r.summary.get("splits", {})
        split_name, split = next(iter(splits.items()), (None, {}))
        res = r.summary.get("resources", {})
        rows.append({
            "run": r.label,
            "learner": r.learner,
            "split": split_name,
            "complete": r.summary.get("complete"),
            "num_events": split.get("num_events"),
            "stream_error": split.get("stream_error"),
            "unique_task_error": split.get("unique_task_error"),
            "final_stream_error": split.get("final_stream_error"),
            "average_forgetting": split.get("average_forgetting"),
            "train_flops": res.get("train_flops"),
            "total_flops": res.get("total_flops"),
            "peak_parameter_count": res.get("peak_parameter_count"),
            "seconds": r.summary.get("timing", {}).get("seconds"),
            "path": str(r.path),
        })
    return pd.DataFrame(rows)
