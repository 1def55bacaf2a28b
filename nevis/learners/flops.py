"""FLOP accounting: what one compiled call costs, parameter counts, and solver loops.

Every FLOP figure a learner reports comes from XLA's cost analysis of the HLO it runs,
lowered from shapes alone (nothing is executed to count). Cost analysis prices a while loop's
body once, whatever the trip count, so learners with solver loops (the DEQ) add the
iterations their loops actually ran times the cost of one iteration (`SolverLoopCosts`,
`solver_loop_flops`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from nevis import equilibrium as eq


def lowered_flops(lowered: jax.stages.Lowered) -> float:
    """Global FLOPs of one call, from the HLO before SPMD partitioning (device-count free)."""
    cost = lowered.cost_analysis()
    return float(cost.get("flops", 0.0)) if cost else 0.0


def count_parameters(params: Any) -> tuple[int, int]:
    """(number of parameters, bytes they take)."""
    leaves = jax.tree.leaves(params)
    return sum(int(x.size) for x in leaves), sum(int(x.size * x.dtype.itemsize) for x in leaves)


Cell = Callable[[Any, jax.Array, jax.Array], jax.Array]  # (cell params, x, z) -> f(z, x)


class SolverLoopCosts:
    """XLA FLOPs of ONE iteration of each solver loop, per batch size (cached).

    Measured on exactly what an iteration evaluates, from shapes alone:
    - `forward`: the solver's proposal (Anderson's mixing: an m×m Gram matrix and an m-term
      combination per example, a few percent of a convolutional cell) and one cell
      evaluation with its residual norms;
    - `adjoint`: the proposal and one VJP of the cell in z (the linearisation at z* is made
      once, before the loop; no kernel gradient runs in the loop);
    - `unrolled`: a forward iteration and its VJP in (z, solver history, parameters, x), i.e.
      one step of the differentiated scan plus one step of its transpose;
    - `reversible`: one step of the reversible iteration (two cell evaluations) and its VJP
      (what the backward loop runs per step: rebuilding the step and its two VJPs).

    `injection(batch)` gives the shape of the cell's input injection x (= the state's shape)
    for a batch size.
    """

    KINDS = ("forward", "adjoint", "unrolled", "reversible")

    def __init__(self, cell: Cell, cell_params: Any,
                 injection: Callable[[int], jax.ShapeDtypeStruct], options: eq.DEQOptions):
        self.cell, self.cell_params, self.injection = cell, cell_params, injection
        self.options = options
        self._cache: dict[tuple[str, int], float] = {}

    @staticmethod
    def _iteration(solver: eq.Solver, g):
        """One loop body of the equilibrium solver driver, on flat [B, D] states."""

        def body(g_args, v, fv, aux, k):
            v_new, aux = solver.propose(v, fv, aux, k)
            fv_new = g(*g_args, v_new)
            diff = jnp.linalg.norm(fv_new - v_new, axis=-1)
            return v_new, fv_new, aux, diff / (jnp.linalg.norm(fv_new, axis=-1) + 1e-9)

        return body

    def __call__(self, kind: str, batch: int) -> float:
        if kind not in self.KINDS:
            raise ValueError(f"unknown loop kind {kind!r}; valid: {', '.join(self.KINDS)}")
        if (kind, batch) in self._cache:
            return self._cache[(kind, batch)]
        x = self.injection(batch)
        flat = jax.ShapeDtypeStruct((batch, x.size // batch), x.dtype)
        k = jax.ShapeDtypeStruct((), jnp.int32)

        def cell(cell_params, xx, v):
            return self.cell(cell_params, xx, v.reshape(x.shape)).reshape(v.shape)

        if kind == "reversible":
            def step(g_args, y, z, beta=0.5):
                y_new = (1 - beta) * y + beta * cell(*g_args, z)
                return y_new, (1 - beta) * z + beta * cell(*g_args, y_new)

            def fn(g_args, y, z):
                out, pullback = jax.vjp(step, g_args, y, z)
                return out, pullback(out)

            args = ((self.cell_params, x), flat, flat)
        elif kind == "adjoint":
            solver = self.options.backward_solver()
            pullback = jax.eval_shape(
                lambda p, xx, v: jax.vjp(lambda w: cell(p, xx, w), v)[1],
                self.cell_params, x, flat)
            fn = self._iteration(solver, lambda pb, g, u: g + pb(u)[0])
            args = ((pullback, flat), flat, flat, jax.eval_shape(solver.init, flat, flat), k)
        else:
            solver = self.options.forward_solver()
            body = self._iteration(solver, cell)
            args = ((self.cell_params, x), flat, flat, jax.eval_shape(solver.init, flat, flat), k)
            fn = body
            if kind == "unrolled":
                def fn(g_args, v, fv, aux, k):
                    out, pullback = jax.vjp(lambda *a: body(*a, k), g_args, v, fv, aux)
                    return pullback(out)
        cost = lowered_flops(jax.jit(fn).lower(*args))
        self._cache[(kind, batch)] = cost
        return cost


def solver_loop_flops(info: dict[str, Any], costs: SolverLoopCosts, *, grad: str,
                      batch_size: int, eval_batch_size: int,
                      eval_iterations: int) -> tuple[float, float]:
    """(training, validation) FLOPs a task's solver loops ran beyond what XLA counted.

    Training: (iterations run − 1) × one iteration, per step, for the forward loop (its
    differentiated scan and transpose when `grad` is unrolled, the reversible step and its
    backward step when `grad` is "reversible") and, for implicit gradients,
    the adjoint loop; iterations come from the loops themselves (`info`'s
    `forward_iterations_mean`, `backward_iterations_mean`). Validation: `eval_iterations` on
    every dev batch of every evaluation.
    """
    steps = info["steps_run"]
    train = 0.0
    forward = info.get("forward_iterations_mean")
    if forward is not None:
        kind = grad if grad in ("unrolled", "reversible") else "forward"
        train += steps * (forward - 1) * costs(kind, batch_size)
    backward = info.get("backward_iterations_mean")
    if grad == "implicit" and backward is not None:
        train += steps * (backward - 1) * costs("adjoint", batch_size)
    validation = (info["evaluations"] * info["dev_batches"] * (eval_iterations - 1)
                  * costs("forward", eval_batch_size))
    return train, validation
