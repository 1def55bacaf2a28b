"""Analysis of run directories: pandas tables, statistics, and the notebooks' report command.

    from nevis.analysis import load_run, load_runs
    run = load_run("runs/independent-embedded")
    run.events, run.tasks, run.summary, run.config, run.examples(1), run.per_example()
    load_runs(["runs/a", "runs/b"])        # tasks of several runs, with a `run` column
    load_population("runs/population").conditions   # upward + stream models (nevis.upward)
    load_sweep("runs/independent-embedded-sweep-lr").table   # a sweep's trials (nevis.sweep)

Figures: `python -m nevis.analysis.report RUN_DIR [RUN_DIR ...]` (see `nevis.analysis.report`).
Importing this package does not import jax, scipy or scikit-learn.
"""

from nevis.analysis.figures import output_dir_for, save_figure
from nevis.analysis.population import (
    Population,
    UpwardRun,
    is_upward_run,
    load_population,
    load_upward,
)
from nevis.analysis.runs import (
    Run,
    load_all,
    load_run,
    load_runs,
    parse_run_dirs,
    stack,
    summary_table,
)
from nevis.analysis.sweeps import Sweep, expand_run_dirs, is_sweep_dir, load_sweep
from nevis.budgets import AA_SCORES, BUDGETS

__all__ = [
    "AA_SCORES",
    "BUDGETS",
    "Population",
    "Run",
    "Sweep",
    "UpwardRun",
    "expand_run_dirs",
    "is_sweep_dir",
    "is_upward_run",
    "load_all",
    "load_population",
    "load_run",
    "load_runs",
    "load_sweep",
    "load_upward",
    "output_dir_for",
    "parse_run_dirs",
    "save_figure",
    "stack",
    "summary_table",
]
