"""(b) Cell evaluations to relative residual 1e-3 on the conv DEQ cell: Anderson, Broyden / plain.

Counts evaluations of f, not solver updates: the driver evaluates f once at z0 and once per
update, so an example costs `steps + 1` and the batch costs `iterations + 1` (the loop runs
until its slowest example stops, so the WORST example, not the mean, is what the solve costs;
torchdeq's Anderson needs 0.73x plain iteration on this cell, counted the same way). Per-example
stopping of nevis.equilibrium, for the benchmark cell at its initial weights (W gain 0.5) and
with the recurrent kernel scaled up (gain 0.9, slower contraction). Forward only, no training.

    .venv/bin/python benchmarks/equilibrium_solver_steps.py
"""

from __future__ import annotations

import os
import sys

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


def f_evaluations(solver, params: dict, inject: jax.Array) -> tuple[np.ndarray, int, int]:
    """(per-example f evaluations, f evaluations of the batch loop, examples converged)."""
    _, st = _solve(solver, params, inject)
    per_example = np.asarray(st.steps) + 1
    return per_example, int(st.iterations) + 1, int(np.asarray(st.converged).sum())


_solve = jax.jit(lambda s, p, inj: fixed_point(C.cell, p, inj, jnp.zeros_like(inj), solver=s,
                                               tol=TOL, max_steps=MAX_STEPS, grad="none"),
                 static_argnums=0)


def main() -> None:
    base = C.make_weights()
    print(f"f evaluations to relative residual {TOL:g} (batch {C.BATCH}); "
          "worst = the batch loop's length")
    print("W gain | solver         | mean f evals | worst f evals | converged | "
          "worst / plain | mean / plain")
    for gain in (0.5, 0.9):
        params, x, _ = C.split(base)
        params["w"] = params["w"] * (gain / 0.5)
        inject = conv2d(x, params["w_in"])
        plain_mean = plain_worst = None
        for name, solver in SOLVERS.items():
            per_example, worst, converged = f_evaluations(solver, params, inject)
            mean = float(per_example.mean())
            if plain_mean is None:
                plain_mean, plain_worst = mean, worst
            print(f"{gain:6.1f} | {name:14s} | {mean:12.2f} | {worst:13d} | "
                  f"{converged:5d}/{per_example.size:<3d} | {worst / plain_worst:13.2f} | "
                  f"{mean / plain_mean:12.2f}")


if __name__ == "__main__":
    main()
