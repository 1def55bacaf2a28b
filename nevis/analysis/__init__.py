"""Analysis of run directories: pandas tables, statistics, and the notebooks' report command.

    from nevis.analysis import load_run, load_runs
    run = load_run("runs/independent-embedded")
    run.events, run.tasks, run.summary, run.config, run.examples(1), run.per_example()
    load_runs(["runs/a", "runs/b"])        # tasks of several runs, with a `run` column

Figures: `python -m nevis.analysis.report RUN_DIR [RUN_DIR ...]` (see `nevis.analysis.report`).
Importing this package does not import jax, scipy or scikit-learn.
"""

from nevis.analysis.figures import output_dir_for, save_figure
from nevis.analysis.runs import (
    AA_SCORES,
    BUDGETS,
    Run,
    load_all,
    load_run,
    load_runs,
    parse_run_dirs,
    stack,
    summary_table,
)

__all__ = [
    "AA_SCORES",
    "BUDGETS",
    "Run",
    "load_all",
    "load_run",
    "load_runs",
    "output_dir_for",
    "parse_run_dirs",
    "save_figure",
    "stack",
    "summary_table",
]
