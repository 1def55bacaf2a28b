"""The run directory's result files, rewritten from the loop's records after every event.

Rewriting from the checkpointed records (rather than appending) keeps the files consistent
with the checkpoint however the previous process ended.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Version of the layout of summary.json and of events.jsonl records (documented in
# WORKSPACE.md, "Result files"). 2: failed events count as error 1 in every average;
# `schema_version`, `stream_error_successful_only`, `diagnostic_failures`, `resumed_from_step`.
SCHEMA_VERSION = 2
TIMING_KEYS = ("seconds", "train_seconds", "steady_steps_per_second")  # wall-clock dependent
# Train-event `info` keys that describe how this particular process ran the event, like
# timing: they legitimately differ between a resumed and an uninterrupted run, and are kept
# out of summary.json.
RUN_HISTORY_KEYS = ("resumed_from_step",)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    _atomic_write(path, json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")


def write_events(path: Path, records: list[dict[str, Any]]) -> None:
    lines = [json.dumps(_jsonable(r), sort_keys=True) for r in records]
    _atomic_write(path, "".join(line + "\n" for line in lines))


TASK_COLUMNS = (
    "event_index",
    "task",
    "name",
    "year",
    "kind",
    "split",
    "final",
    "status",
    "error",
    "top_one_accuracy",
    "mean_average_precision",
    "num_examples",
)


def write_tasks_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """One row per prediction event, plus any extra scalar metric columns that appear."""
    rows = [r for r in records if r["event"] == "predict"]
    extra = sorted({k for r in rows for k in r.get("metrics", {})} - set(TASK_COLUMNS))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(TASK_COLUMNS) + extra, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r.get(k) for k in TASK_COLUMNS}, **r.get("metrics", {})})
    os.replace(tmp, path)


def save_per_example(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_run(workdir: Path) -> str:
    """The table printed at the end of a run, from its result files."""
    summary = json.loads((workdir / "summary.json").read_text())
    records = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    final = {(r["task"], r["split"]): r for r in records if r["event"] == "predict" and r["final"]}
    rows = [["#", "task", "year", "split", "error", "final error", "status"]]
    for r in records:
        if r["event"] != "predict" or r["final"]:
            continue
        f = final.get((r["task"], r["split"]), {})
        rows.append(
            [
                str(r["event_index"]),
                r["task"],
                str(r["year"]),
                r["split"],
                _fmt(r.get("metrics", {}).get("error")),
                _fmt(f.get("metrics", {}).get("error")),
                r["status"],
            ]
        )
    lines = [format_table(rows), ""]
    for split, s in summary["splits"].items():
        lines.append(
            f"[{split}] stream error {_fmt(s['stream_error'])} over {s['num_events']} events"
            f" | unique-task error {_fmt(s['unique_task_error'])}"
            f" | final error {_fmt(s.get('final_stream_error'))}"
            f" | forgetting {_fmt(s.get('average_forgetting'))}"
        )
        if s.get("num_failed_events") or s.get("num_failed_final_events"):
            lines.append(
                f"[{split}] {s.get('num_failed_events', 0)} failed event(s) scored as error 1"
                f" (+{s.get('num_failed_final_events', 0)} in the final evaluation);"
                f" stream error over successful events only:"
                f" {_fmt(s.get('stream_error_successful_only'))}"
            )
    for name, d in summary.get("diagnostics", {}).items():
        lines.append(
            f"mean {name}: {_fmt(d['mean'])}"
            f" (Pearson with accuracy: {_fmt(d.get('pearson_with_accuracy'))})"
        )
    res = summary["resources"]
    lines.append(
        f"compute: train {res['train_flops']:.3e} FLOPs, validation "
        f"{res['validation_flops']:.3e}, inference {res['inference_flops']:.3e}; "
        f"peak parameters {res['peak_parameter_count']:,}; "
        f"wall time {summary['timing']['seconds']:.0f} s"
    )
    if summary["diverged_tasks"]:
        lines.append(f"diverged tasks (step): {summary['diverged_tasks']}")
    if summary["failed_events"]:
        lines.append(f"failed events: {len(summary['failed_events'])} (see summary.json)")
    if summary.get("diagnostic_failures"):
        lines.append(
            f"events with a failed diagnostic: {len(summary['diagnostic_failures'])}"
            " (left out of the diagnostics; see summary.json)"
        )
    if not summary["complete"]:
        lines.append(f"INCOMPLETE: {summary['events_completed']}/{summary['events_total']}")
    lines.append(f"results: {workdir}")
    return "\n".join(lines)
