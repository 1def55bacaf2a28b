"""Build the whole population and its figures with one command (a plain loop).

    python -m nevis.upward.population                          # everything, into runs/population
    python -m nevis.upward.population --parts=prefix_sums,stream --out=runs/pop-small
    python -m nevis.upward.population --figures_only           # re-run the notebook only

Parts, one after another (each resumes where a killed run stopped):

- `prefix_sums`, `mazes`: the experiment config's `population` regimes × seeds with its
  overrides (short training), via `nevis.upward.run.run_population`, into <out>/<part>/;
- `stream`: the DEQ learner on a 3-task subset of the embedded stream
  (`STREAM_TASKS`, `--config.learner.max_steps=STREAM_STEPS` per task) under each intervention
  of `STREAM_INTERVENTIONS`, each a `python -m nevis.run` subprocess into <out>/stream/<name>/;

then `analysis/population.ipynb` on all of them, figures and tables into <out>/figures/.
Every model is one call (`run_model` or one subprocess), so a sweep launcher (e.g. Ray) can
replace the loops without touching the training code. Extra `--config.KEY=VALUE` flags apply
to the upward parts (e.g. `--config.steps=100` for a quick look).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PARTS = ("prefix_sums", "mazes", "stream")
STREAM_TASKS = "uci_digits,mnist_5k,shapes_colour"
STREAM_STEPS = 150
# name -> flags for `python -m nevis.run`: interventions that move path independence.
STREAM_INTERVENTIONS: dict[str, tuple[str, ...]] = {
    "deq_default": ("--learner=deq",),
    "deq_fixed_start": ("--learner=deq_fixed_start",),
    "deq_no_jitter": ("--learner=deq", "--config.learner.budget_jitter=0"),
    "deq_jacobian_reg": ("--learner=deq", "--config.learner.jacobian_reg.weight=0.5"),
    "deq_no_norm": ("--learner=deq", "--config.learner.model.norm=none"),
    "deq_phantom": ("--learner=deq", "--config.learner.deq.grad=phantom"),
    "deq_implicit": ("--learner=deq", "--config.learner.deq.grad=implicit"),  # default: one-step
    "deq_unrolled": ("--learner=deq", "--config.learner.deq.grad=unrolled",
                     "--config.learner.budget_jitter=0"),
    "deq_tiny_budget": ("--learner=deq", "--config.learner.max_steps=30",
                        "--config.learner.min_steps=30"),
}


def stream_command(name: str, workdir: Path, extra: Sequence[str] = ()) -> list[str]:
    """The `python -m nevis.run` command line of one stream intervention."""
    if name not in STREAM_INTERVENTIONS:
        raise ValueError(f"unknown stream intervention {name!r}; valid choices: "
                         f"{', '.join(STREAM_INTERVENTIONS)}.")
    flags = [f"--config.stream.tasks={STREAM_TASKS}",
             f"--config.learner.max_steps={STREAM_STEPS}", *STREAM_INTERVENTIONS[name]]
    flags = list({f.split("=", 1)[0]: f for f in flags}.values())  # the intervention wins
    return [sys.executable, "-m", "nevis.run", f"--workdir={workdir}", "--noprogress",
            *flags, *extra]


def run_upward_part(name: str, out: Path, overrides: dict[str, str]) -> Path:
    from nevis.upward import run

    base = run.load_experiment(name)
    pop = base.population
    all_overrides = {**dict(o.split("=", 1) for o in pop.overrides), **overrides}
    configs = run.model_configs(base, tuple(pop.regimes), tuple(pop.seeds), all_overrides)
    header = {"kind": "upward", "experiment": base.experiment, "regimes": list(pop.regimes),
              "seeds": list(pop.seeds), "overrides": all_overrides, "base": base.to_dict()}
    workdir = out / name
    summary = run.run_population(configs, workdir, header, log=lambda m: print(m, flush=True))
    print(run.format_summary(summary), flush=True)
    return workdir


def run_stream_part(out: Path, names: Sequence[str] | None = None) -> list[Path]:
    dirs = []
    for name in names or STREAM_INTERVENTIONS:
        workdir = out / "stream" / name
        cmd = stream_command(name, workdir)
        print(f"stream {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env={**os.environ})
        print(f"stream {name}: exit {proc.returncode} after {time.perf_counter() - start:.0f}s",
              flush=True)
        if proc.returncode == 0:
            dirs.append(workdir)
    return dirs


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out, parts, figures_only, overrides = Path("runs/population"), list(PARTS), False, {}
    for arg in argv:
        name, _, value = arg.removeprefix("--").partition("=")
        if name == "out":
            out = Path(value)
        elif name == "parts":
            parts = [p for p in value.split(",") if p]
            bad = sorted(set(parts) - set(PARTS))
            if bad:
                print(f"error: unknown part {bad[0]!r}; valid choices: {', '.join(PARTS)}.",
                      file=sys.stderr)
                return 2
        elif name == "figures_only":
            figures_only = True
        elif name.startswith("config."):
            overrides[name.removeprefix("config.")] = value
        else:
            print(f"error: unknown flag {arg!r}; valid flags: --out=DIR, --parts="
                  f"{','.join(PARTS)}, --figures_only, --config.KEY=VALUE.", file=sys.stderr)
            return 2
    out = out.expanduser().absolute()
    dirs: list[Path] = []
    for part in parts:
        if part == "stream":
            dirs.extend(run_stream_part(out) if not figures_only else
                        sorted(p for p in (out / "stream").glob("*/")
                               if (p / "events.jsonl").exists()))
        elif figures_only:
            if (out / part / "config.json").exists():
                dirs.append(out / part)
        else:
            try:
                dirs.append(run_upward_part(part, out, overrides))
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
    if not dirs:
        print(f"error: no population run under {out}", file=sys.stderr)
        return 1
    from nevis.analysis.report import NotebookError, run_notebooks

    try:
        report = run_notebooks(dirs, out / "figures", notebooks=["population"], timeout=1800)
    except (NotebookError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in report.notebooks + report.figures:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
