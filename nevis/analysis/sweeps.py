"""Sweep directories (written by `python -m nevis.sweep`) as pandas tables.

    from nevis.analysis import load_sweep
    sweep = load_sweep("runs/independent-embedded-sweep-lr")
    sweep.table            # one row per trial: overrides, stream error, FLOPs, time, status
    sweep.best_trial, sweep.metric, sweep.split
    sweep.runs()           # the trials' run directories as `Run`s (labelled by trial)

Like `nevis.analysis.runs`, reads only result files: no Ray, no jax.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nevis.analysis.runs import Run, load_run

DEFINITION = "sweep.json"
TABLE = "trials.json"


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path).expanduser() / DEFINITION).is_file()


@dataclass
class Sweep:
    """One sweep directory: its definition (sweep.json) and its table (trials.json)."""

    path: Path
    definition: dict[str, Any]
    rows: list[dict[str, Any]] = field(repr=False)

    @property
    def table(self) -> pd.DataFrame:
        """One row per trial, in trial order (columns as in trials.csv)."""
        return pd.DataFrame(self.rows)

    @property
    def metric(self) -> str:
        return self.definition.get("metric", "stream_error")

    @property
    def mode(self) -> str:
        return self.definition.get("mode", "min")

    @property
    def split(self) -> str | None:
        return self.definition.get("split")

    @property
    def best_trial(self) -> str | None:
        return self.definition.get("best_trial")

    @property
    def varied_keys(self) -> list[str]:
        """The config keys that vary between trials (the table's override columns)."""
        return list(self.definition.get("varied_keys", []))

    def run_dirs(self, status: str | None = None) -> list[Path]:
        """Run directories of the trials that wrote results (`status`: only those trials)."""
        return [self.path / r["workdir"] for r in self.rows
                if (status is None or r["status"] == status)
                and (self.path / r["workdir"] / "events.jsonl").exists()]

    def runs(self, status: str | None = None) -> list[Run]:
        """The trials' runs, each labelled by its trial name."""
        return [load_run(d, label=d.name) for d in self.run_dirs(status)]


def load_sweep(path: str | Path) -> Sweep:
    """Loads a sweep directory; its table is the one written at the end of the last launch."""
    path = Path(path).expanduser()
    if not is_sweep_dir(path):
        raise FileNotFoundError(f"{path} is not a sweep directory (no {DEFINITION}).")
    definition = json.loads((path / DEFINITION).read_text())
    table = path / TABLE
    rows = json.loads(table.read_text())["trials"] if table.exists() else []
    return Sweep(path=path, definition=definition, rows=rows)


def expand_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories, with each sweep directory replaced by its trials' run directories."""
    out: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if is_sweep_dir(p):
            dirs = load_sweep(p).run_dirs()
            if not dirs:
                raise FileNotFoundError(f"sweep {p} has no trial with results yet.")
            out.extend(dirs)
        else:
            out.append(p)
    return out
