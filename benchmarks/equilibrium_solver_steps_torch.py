"""torchdeq side of benchmarks/equilibrium_solver_steps.py; runs in the torch venv.

Runs torchdeq 0.1.0's own solvers (torchdeq.solver: `anderson`, `broyden`, and
`fixed_point_iter` as a check that the torch cell matches nevis's plain row) on the conv DEQ
cell built from the same .npz weights and data by equilibrium_torchdeq_worker.Cell, with the
recurrent kernel scaled per gain exactly as the JAX side scales it (w * gain / 0.5).

torchdeq stops on the batch: a solve ends once the WORST example's residual is below tol
(`trace[stop_mode][-1].max() < tol`), and has no per-example stopping to count. So each
solve here runs at tolerance 0 for a fixed budget of --max-iter iterations, and a wrapper
around f records, at every evaluation, each example's relative residual
||f(z) - z|| / (||f(z)|| + 1e-9) (torchdeq's and nevis's definition). From that record an
example's cost is the index (1-based, the evaluation at z0 included) of the first f
evaluation whose residual is below --tol: the count nevis.equilibrium's per-example stopping
reports as steps + 1. Reported per solve: the worst and mean of those first crossings, the
examples that crossed, and "batch_stop" -- the first evaluation at which every example is
below tol at once, which is where torchdeq's own batch-level stopping would end the solve
(it can exceed the worst first crossing when an example's residual goes back above tol).

Solver options are torchdeq's defaults (anderson: m=6, lam=1e-4, tau=1.0; broyden:
LBFGS_thres=None, i.e. every update kept, ls=False), plus anderson with m=20 to set beside
nevis's anderson(m=20). argv: npz, then a JSON object {"gains", "tol", "max_iter",
"threads"}; prints one JSON object (rows) on stdout.
Not a project dependency: torch 2.13 + torchdeq 0.1.0 live only in .venv-torch.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
from torchdeq.solver import get_solver

sys.path.insert(0, os.path.dirname(__file__))
from equilibrium_torchdeq_worker import Cell  # noqa: E402

# name -> (torchdeq solver key, options beyond torchdeq's defaults)
SOLVERS = {
    "torchdeq fixed_point_iter": ("fixed_point_iter", {}),
    "torchdeq anderson(m=6)": ("anderson", {}),  # m=6 is the default
    "torchdeq anderson(m=20)": ("anderson", {"m": 20}),
    "torchdeq broyden": ("broyden", {}),
}
BASE_GAIN = 0.5  # make_weights draws the recurrent kernel at gain 0.5


class _Determined(Exception):
    """Raised by the recording f once every example is below tol at the same evaluation."""


def residual_record(cell: Cell, inject: torch.Tensor, tol: float):
    """(f for the solver, list that receives each evaluation's per-example rel residual).

    f ends the solve (raises _Determined) at the first evaluation with every example below
    tol: by then every reported count is fixed, and the iterates up to it do not depend on
    the budget, so the rest of the 300 would change nothing reported (torchdeq's Broyden
    over a full budget, with its 300-update memory, takes minutes on a shared CPU).
    """
    record: list[np.ndarray] = []

    def f(z: torch.Tensor) -> torch.Tensor:
        fz = cell.cell(z, inject)
        d = (fz - z).flatten(1).norm(dim=1)
        record.append((d / (fz.flatten(1).norm(dim=1) + 1e-9)).numpy())
        if (record[-1] < tol).all():
            raise _Determined
        return fz

    return f, record


def first_crossings(rel: np.ndarray, tol: float) -> tuple[np.ndarray, int | None]:
    """rel [evaluations, batch] -> (per example the 1-based evaluation of its first residual
    below tol, or the whole budget where none, as nevis counts an example that never stops;
    first evaluation with every example below tol, or None)."""
    below = rel < tol
    per_example = np.where(below.any(0), below.argmax(0) + 1, rel.shape[0])
    every = below.all(1)
    return per_example, (int(every.argmax()) + 1 if every.any() else None)


def run(w: dict[str, np.ndarray], gain: float, solver: str, options: dict, tol: float,
        max_iter: int) -> dict:
    w = {**w, "w": (w["w"] * np.float32(gain / BASE_GAIN)).astype(np.float32)}
    cell = Cell(w)
    x = torch.from_numpy(np.ascontiguousarray(w["x"].transpose(0, 3, 1, 2)))
    with torch.no_grad():
        inject = cell.injection(x)
        f, record = residual_record(cell, inject, tol)
        # tol=0: torchdeq's batch-level stop never fires; the solve runs max_iter or until
        # f raises _Determined.
        try:
            get_solver(solver)(f, torch.zeros_like(inject), max_iter=max_iter, tol=0.0,
                               stop_mode="rel", **options)
        except _Determined:
            pass
    rel = np.stack(record)
    per_example, batch_stop = first_crossings(rel, tol)
    return {"evaluations": int(rel.shape[0]), "converged": int((rel < tol).any(0).sum()),
            "batch": int(per_example.size), "worst": int(per_example.max()),
            "mean": float(per_example.mean()), "batch_stop": batch_stop}


def main() -> None:
    npz, settings = sys.argv[1], json.loads(sys.argv[2])
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    w = dict(np.load(npz))
    rows = []
    for gain in settings["gains"]:
        for name, (solver, options) in SOLVERS.items():
            row = run(w, gain, solver, options, settings["tol"], settings["max_iter"])
            rows.append({"gain": gain, "solver": name, **row})
    print(json.dumps({"torch": torch.__version__, "rows": rows}), flush=True)


if __name__ == "__main__":
    main()
