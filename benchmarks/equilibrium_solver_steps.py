"""(b) Forward steps to relative residual 1e-3 on the conv DEQ cell: Anderson / plain iteration.

Per-example steps (solver updates) of nevis.equilibrium's per-example stopping, for the
benchmark cell at its initial weights (W gain 0.5) and with the recurrent kernel scaled up
(slower contraction). Forward only, no training.

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

SOLVERS = {"plain": FixedPoint(), "anderson(m=6)": Anderson(m=6), "broyden": Broyden()}




def main() -> None:
    base = C.make_weights()
    solve = jax.jit(lambda s, p, inj: fixed_point(C.cell, p, inj, jnp.zeros_like(inj),
                                                  solver=s, tol=1e-3, max_steps=300,
                                                  grad="none")[1], static_argnums=0)
    print("W gain | solver        | mean steps | max steps | converged | mean / plain")
    for gain in (0.5, 0.9):
        params, x, _ = C.split(base)
        params["w"] = params["w"] * (gain / 0.5)
        inject = conv2d(x, params["w_in"])
        plain = None
        for name, s in SOLVERS.items():
            st = solve(s, params, inject)
            steps = np.asarray(st.steps)
            plain = steps.mean() if plain is None else plain
            print(f"{gain:6.1f} | {name:13s} | {steps.mean():10.2f} | {steps.max():9d} | "
                  f"{int(np.asarray(st.converged).sum()):5d}/{steps.size} | "
                  f"{steps.mean() / plain:.2f}")


if __name__ == "__main__":
    main()
