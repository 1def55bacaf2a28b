"""The DEQ learner against an explicit weight-tied network unrolled to the same number of
iterations: training steps/s and the compiled step's temporary memory, side by side.

    python benchmarks/deq_vs_unrolled.py [--steps=40] [--iterations=12,24]

Both are `--learner=deq` on one embedded task with a fixed budget (no jitter, tolerance 0):
the unrolled variant backpropagates through every one of the forward iterations
(`deq.grad=unrolled`); the DEQ uses implicit gradients whose adjoint solve is also forced
to run exactly `iterations` steps (`deq.b_tol=0`), so neither side stops early and
both do the same number of cell evaluations / VJPs per step. Figures come from the runs'
events.jsonl (`steady_steps_per_second`, the training loop's own rate, which includes the
same end-of-task overheads on both sides; `step_temp_bytes`: XLA's compiled temporary
buffer size for one training step).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(workdir: Path, data_dir: Path, grad: str, iterations: int, steps: int) -> dict:
    cmd = [sys.executable, "-m", "nevis.run", "--learner=deq", f"--workdir={workdir}",
           f"--data_dir={data_dir}", "--noprogress", "--config.stream.tasks=uci_digits",
           "--config.stream.final_evaluation=False",
           f"--config.learner.min_steps={steps}", f"--config.learner.max_steps={steps}",
           f"--config.learner.deq.grad={grad}", "--config.learner.budget_jitter=0",
           "--config.learner.deq.tol=0.0",  # never stop early: exactly `iterations` steps
           "--config.learner.deq.b_tol=0.0",  # nor the implicit adjoint
           f"--config.learner.deq.max_steps={iterations}",
           f"--config.learner.deq.b_max_steps={iterations}",
           f"--config.learner.eval_every={steps}"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    record = json.loads((workdir / "events.jsonl").read_text().splitlines()[0])
    return record["info"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--iterations", default="12,24")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nevis_deq_bench_"))
    rows = []
    for iterations in (int(i) for i in args.iterations.split(",")):
        for grad in ("implicit", "unrolled"):
            info = run(root / f"{grad}{iterations}", root / "data", grad, iterations, args.steps)
            rows.append((iterations, grad, info["steady_steps_per_second"],
                         info["step_temp_bytes"] / 2**20, info.get("forward_steps_mean"),
                         info.get("backward_steps_mean")))
            print(f"{iterations:3d} iterations  {grad:9s} {rows[-1][2]:6.2f} steps/s  "
                  f"{rows[-1][3]:8.1f} MiB temp  forward {rows[-1][4]}  backward {rows[-1][5]}",
                  flush=True)
    by = {(r[0], r[1]): r for r in rows}
    for iterations in sorted({r[0] for r in rows}):
        imp, unr = by[(iterations, "implicit")], by[(iterations, "unrolled")]
        print(f"{iterations} iterations: DEQ/unrolled speed {imp[2] / unr[2]:.2f}x, "
              f"memory {imp[3] / unr[3]:.2f}x")


if __name__ == "__main__":
    main()
