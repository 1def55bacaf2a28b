"""(b) Cell evaluations to relative residual 1e-3 on the conv DEQ cell: Anderson, Broyden / plain.

Counts evaluations of f, not solver updates: the driver evaluates f once at z0 and once per
update, so an example costs `steps + 1` and the batch costs `iterations + 1` (the loop runs
until its slowest example stops, so the WORST example, not the mean, is what the solve costs).
Per-example stopping of nevis.equilibrium, for the benchmark cell at its initial weights (W
gain 0.5) and with the recurrent kernel scaled up (gain 0.9, slower contraction). Forward
only, no training.

torchdeq rows: torchdeq 0.1.0's own solvers (fixed_point_iter, anderson and broyden with
torchdeq's default options, anderson also with m=20) on the same cell, weights and inputs,
run by benchmarks/equilibrium_solver_steps_torch.py in the torch venv (--torch-python; by
default .venv-torch/bin/python, and the rows are skipped with a note where it is absent).
torchdeq's own stopping is batch-level (a solve ends when the worst example is below tol),
so those solves run at tolerance 0 and a wrapper around f records every example's relative
residual at every evaluation; each example's count is its first evaluation below tol,
counted as nevis's are (the evaluation at z0 included), and the worst is what torchdeq's
batch-level stop at tol would cost unless an example rises back above tol ("batch stop"
column). Ratios are to nevis's plain row.

    .venv/bin/python benchmarks/equilibrium_solver_steps.py [--torch-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import equilibrium_common as C  # noqa: E402

from nevis.equilibrium import Anderson, Broyden, FixedPoint, conv2d, fixed_point  # noqa: E402

# anderson(m=20) approximates GMRES on the linearised map over the whole solve: the most an
# Anderson-type method can save on this cell (see the Anderson docstring).
SOLVERS = {"plain": FixedPoint(), "anderson(m=6)": Anderson(m=6),
           "anderson(m=20)": Anderson(m=20), "broyden": Broyden()}
TOL, MAX_STEPS = 1e-3, 300
GAINS = (0.5, 0.9)
HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_WORKER = os.path.join(HERE, "equilibrium_solver_steps_torch.py")
DEFAULT_TORCH_PYTHON = os.path.join(HERE, os.pardir, ".venv-torch", "bin", "python")


def f_evaluations(solver, params: dict, inject: jax.Array) -> tuple[np.ndarray, int, int]:
    """(per-example f evaluations, f evaluations of the batch loop, examples converged)."""
    _, st = _solve(solver, params, inject)
    per_example = np.asarray(st.steps) + 1
    return per_example, int(st.iterations) + 1, int(np.asarray(st.converged).sum())


_solve = jax.jit(lambda s, p, inj: fixed_point(C.cell, p, inj, jnp.zeros_like(inj), solver=s,
                                               tol=TOL, max_steps=MAX_STEPS, grad="none"),
                 static_argnums=0)


def torchdeq_rows(python: str, base: dict[str, np.ndarray]) -> dict[float, list[dict]]:
    """Rows of the torch worker per gain: same weights and inputs, through a .npz."""
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "deq_weights.npz")
        np.savez(npz, **base)
        settings = {"gains": list(GAINS), "tol": TOL, "max_iter": MAX_STEPS}
        proc = subprocess.run([python, TORCH_WORKER, npz, json.dumps(settings)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"torch worker failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    rows: dict[float, list[dict]] = {}
    for row in out["rows"]:
        rows.setdefault(row["gain"], []).append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch-python", default=None,
                    help="python of the torch venv (torch 2.13 + torchdeq 0.1.0); default "
                         ".venv-torch/bin/python, torchdeq rows skipped if absent")
    args = ap.parse_args()
    python = args.torch_python or DEFAULT_TORCH_PYTHON
    if args.torch_python and not os.path.exists(python):
        ap.error(f"--torch-python {python} not found")
    base = C.make_weights()
    if os.path.exists(python):
        torch_rows = torchdeq_rows(python, base)
    else:
        torch_rows = {}
        print(f"note: {os.path.normpath(python)} not found, torchdeq rows skipped (create it "
              "with: python3 -m venv .venv-torch && .venv-torch/bin/pip install "
              "torch==2.13.0 torchdeq==0.1.0 numpy)")
    print(f"f evaluations to relative residual {TOL:g} (batch {C.BATCH}); "
          "worst = the batch loop's length")
    if torch_rows:
        print("torchdeq rows: torchdeq stops on the batch (worst example below tol), so they "
              "run at tol 0 and count each example's first evaluation below tol; batch stop = "
              "first evaluation with every example below tol at once")
    print("W gain | solver                    | mean f evals | worst f evals | converged | "
          "worst / plain | mean / plain | batch stop")
    for gain in GAINS:
        params, x, _ = C.split(base)
        params["w"] = params["w"] * (gain / 0.5)
        inject = conv2d(x, params["w_in"])
        plain_mean = plain_worst = None
        for name, solver in SOLVERS.items():
            per_example, worst, converged = f_evaluations(solver, params, inject)
            mean = float(per_example.mean())
            if plain_mean is None:
                plain_mean, plain_worst = mean, worst
            print(f"{gain:6.1f} | {'nevis ' + name:25s} | {mean:12.2f} | {worst:13d} | "
                  f"{converged:5d}/{per_example.size:<3d} | {worst / plain_worst:13.2f} | "
                  f"{mean / plain_mean:12.2f} |")
        for r in torch_rows.get(gain, []):
            stop = "-" if r["batch_stop"] is None else str(r["batch_stop"])
            print(f"{gain:6.1f} | {r['solver']:25s} | {r['mean']:12.2f} | {r['worst']:13d} | "
                  f"{r['converged']:5d}/{r['batch']:<3d} | {r['worst'] / plain_worst:13.2f} | "
                  f"{r['mean'] / plain_mean:12.2f} | {stop}")


if __name__ == "__main__":
    main()
