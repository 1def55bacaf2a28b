"""Executes the analysis notebooks headless on one or more runs and writes their figures.

    python -m nevis.analysis.report runs/deq-embedded [runs/independent-embedded ...]
        [--output_dir DIR] [--notebooks path_independence,stream_overview] [--timeout 600]
    python -m nevis.analysis.report runs/independent-embedded-sweep-lr   # a sweep's trials

Writes the executed notebooks and their PNG figures into `<first run dir>/figures/` (or
`--output_dir`) and prints their paths. A sweep directory (`python -m nevis.sweep`) stands for
its trials' run directories, and its figures go into `<sweep dir>/figures/`. Exits non-zero,
naming the notebook, the cell and the error, if any cell fails; the failed notebook is still
written, with its error output.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nevis.analysis.figures import output_dir_for
from nevis.analysis.runs import parse_run_dirs
from nevis.analysis.sweeps import expand_run_dirs

# The notebooks live next to the package in the source tree (`analysis/` at the repo root).
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "analysis"
NOTEBOOKS = ("path_independence", "stream_overview")


class NotebookError(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


@dataclass
class Report:
    notebooks: list[Path]
    figures: list[Path]


def notebook_path(name: str) -> Path:
    """A notebook by name (`stream_overview`) or by path."""
    path = Path(name)
    if path.suffix != ".ipynb":
        path = NOTEBOOK_DIR / f"{name}.ipynb"
    if not path.exists():
        raise FileNotFoundError(f"No notebook {path} (known: {', '.join(NOTEBOOKS)}).")
    return path


def execute(notebook: Path, output: Path, parameters: dict, timeout: int = 600) -> None:
    """Runs one notebook with papermill's parameter injection; raises NotebookError on failure."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters=parameters, kernel_name="python3",
            progress_bar=False, execution_timeout=timeout,
        )
    except PapermillExecutionError as e:
        source = e.source.strip().splitlines()
        first = source[0] if source else ""
        raise NotebookError(
            f"{notebook.name}: cell {e.exec_count} ({first!r}) failed: {e.ename}: {e.evalue}"
            f"\n  executed notebook with the traceback: {output}"
        ) from None


def run_notebooks(run_dirs: str | Sequence[str | Path], output_dir: str | Path | None = None,
                  notebooks: Sequence[str] = NOTEBOOKS, timeout: int = 600) -> Report:
    """Executes `notebooks` on `run_dirs`; figures and executed notebooks go to `output_dir`.

    Every notebook is run even if an earlier one fails, then one NotebookError lists all
    failures, so a single report shows everything that is broken.
    """
    given = [p.resolve() for p in parse_run_dirs(run_dirs)]
    paths = [p.resolve() for p in expand_run_dirs(given)]
    for p in paths:
        if not (p / "events.jsonl").exists():
            raise FileNotFoundError(f"{p} is not a run directory (no events.jsonl) nor a "
                                    "sweep directory (no sweep.json).")
    out = output_dir_for(given, output_dir).resolve()
    parameters = {"run_dirs": [str(p) for p in paths], "output_dir": str(out)}
    start = time.time()
    written, errors = [], []
    for name in notebooks:
        notebook = notebook_path(name)
        output = out / notebook.name
        try:
            execute(notebook, output, parameters, timeout)
        except NotebookError as e:
            errors.append(str(e))
        written.append(output)
    if errors:
        raise NotebookError("\n".join(errors))
    figures = sorted(p for p in out.glob("*.png") if p.stat().st_mtime >= start - 1)
    return Report(notebooks=written, figures=figures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nevis.analysis.report",
        description="Execute the analysis notebooks on run directories and save their figures.",
    )
    parser.add_argument("run_dirs", nargs="+",
                        help="run directories (nevis.run) or sweep directories (nevis.sweep)")
    parser.add_argument("--output_dir", default=None,
                        help="where figures and executed notebooks go "
                             "(default: <first run dir>/figures)")
    parser.add_argument("--notebooks", default=",".join(NOTEBOOKS),
                        help="comma-separated notebook names or .ipynb paths "
                             f"(default: {','.join(NOTEBOOKS)})")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    try:
        report = run_notebooks(args.run_dirs, args.output_dir,
                               [n for n in args.notebooks.split(",") if n], args.timeout)
    except (NotebookError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in report.notebooks + report.figures:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
