"""The DEQ learner's training aids on vs off: steps/s, dev error and the work per step.

    python benchmarks/deq_toolbox_options.py [--steps=150] [--tasks=uci_digits,shapes_colour]

Each option is `--learner=deq` on the same embedded tasks, budget and seed, with one aid of
`nevis.equilibrium` switched on (see experiments/deq.py): variational dropout, fixed-point
correction (three supervised states, phantom gradients, fixed budget), spectral-norm clipping
of the cell's kernels, the reversible solve,
and — as the matching baseline for correction — phantom gradients with a fixed budget alone.
Figures come from each run's training events: `steady_steps_per_second` (the training loop's
own rate), `best_dev_error`, the forward solver's mean steps and iterations per step and the
training FLOPs (XLA cost analysis with the solver loops counted in full), averaged over the
tasks. One run per option on a shared machine: rates are indicative, FLOPs and errors exact.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {
    "default (implicit, jitter)": (),
    "dropout 0.1": ("--config.learner.dropout=0.1",),
    "spectral norm <= 1": ("--config.learner.model.spectral_norm=1.0",),
    "reversible beta 0.5": ("--config.learner.reversible_beta=0.5",),
    "phantom, fixed budget": ("--config.learner.deq.grad=phantom",
                              "--config.learner.budget_jitter=0"),
    "correction 3 states": ("--config.learner.deq.grad=phantom",
                            "--config.learner.budget_jitter=0",
                            "--config.learner.correction.n_states=3"),
}


def run(workdir: Path, data_dir: Path, tasks: str, steps: int, flags: tuple[str, ...]) -> list:
    cmd = [sys.executable, "-m", "nevis.run", "--learner=deq", f"--workdir={workdir}",
           f"--data_dir={data_dir}", "--noprogress", f"--config.stream.tasks={tasks}",
           "--config.stream.final_evaluation=False",
           f"--config.learner.min_steps={steps}", f"--config.learner.max_steps={steps}",
           *flags]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    records = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == "train"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--tasks", default="uci_digits,shapes_colour")
    parser.add_argument("--only", default="", help="comma-separated option names to run "
                        f"(default: all of {', '.join(OPTIONS)})")
    parser.add_argument("--data_dir", default=None, help="prepared embedded data (default: "
                        "a temporary directory, built on first use)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nevis_deq_toolbox_"))
    data_dir = Path(args.data_dir) if args.data_dir else root / "data"
    print(f"{args.steps} steps per task on {args.tasks}; means over tasks")
    print(f"{'option':28s} {'steps/s':>8s} {'dev error':>9s} {'fwd steps':>9s} "
          f"{'fwd iters':>9s} {'train FLOPs':>11s}")
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(OPTIONS)
    unknown = sorted(set(chosen) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown option {unknown[0]!r}; valid: {', '.join(OPTIONS)}")
    for i, name in enumerate(chosen):
        flags = OPTIONS[name]
        train = run(root / f"run{i}", data_dir, args.tasks, args.steps, flags)

        def mean(key, records=train):
            values = [r["info"].get(key) for r in records]
            return float(np.mean(values)) if all(v is not None for v in values) else float("nan")

        flops = sum(r["resources"]["train_flops"] for r in train)
        print(f"{name:28s} {mean('steady_steps_per_second'):8.2f} {mean('best_dev_error'):9.3f} "
              f"{mean('forward_steps_mean'):9.2f} {mean('forward_iterations_mean'):9.2f} "
              f"{flops:11.3e}", flush=True)


if __name__ == "__main__":
    main()
