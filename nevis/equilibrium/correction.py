"""Fixed-point correction: supervise several states of the solver trajectory, not only z*.

Bai, Geng, Pokle, Kolter, "Deep Equilibrium Optical Flow Estimation", CVPR 2022, section
3.3: a DEQ trained only on z* gets an inexact gradient (phantom / one-step) at a state that
may not have converged; applying the loss to n states z_{k_1}, ..., z_{k_n} of the same
solver trajectory, each with its own phantom gradient, and summing them with weights
gamma^(n - i) (the last state has weight 1; gamma = 0.8 in the paper) stabilises training
and speeds up convergence.

    states, stats = correction_states(f, params, x, z0, n_states=3, max_steps=30,
                                      solver="anderson", grad="phantom")
    loss = jnp.mean(correction_loss([per_example_loss(z) for z in states], gamma=0.8))

Semantics (torchdeq's "indexing" core, `DEQIndexing`): ONE continuous forward solve (the
solver keeps its history throughout) records the states after k_1 < ... < k_n updates;
each recorded state is detached and gets the gradient of `phantom_steps` damped steps
z <- tau f(z) + (1 - tau) z from it ("phantom"), or of one undamped step ("one_step").
As in `fixed_point(grad="phantom")`, the value of each returned state is the solver state
itself (straight-through), so one state at k_n = max_steps is exactly `fixed_point` with
the same options. States are not chained (torchdeq's default "sliced" core instead
restarts the solver from each state's phantom output). Per-example stopping still applies:
an example that converged before k_i contributes its converged state to every later index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _tree
from .options import DEQOptions, resolve
from .solvers import Solver, residuals
from .stats import SolverStats

PyTree = Any
CORRECTION_GRADS = ("phantom", "one_step")


def uniform_indices(max_steps: int, n_states: int) -> tuple[int, ...]:
    """n_states solver-step indices spaced max_steps // n_states apart, ending at max_steps.

    Same rule as torchdeq's `n_states`: (k + 1) * delta when n_states divides max_steps,
    otherwise aligned to the end (max_steps - (n_states - k - 1) * delta).
    """
    if n_states < 1 or max_steps < 1:
        raise ValueError(f"need n_states >= 1 and max_steps >= 1, got {n_states}, {max_steps}")
    n = min(n_states, max_steps)
    delta = max_steps // n
    if max_steps % n == 0:
        return tuple((k + 1) * delta for k in range(n))
    return tuple(max_steps - (n - k - 1) * delta for k in range(n))


def correction_weights(n_states: int, gamma: float = 0.8) -> np.ndarray:
    """Loss weights gamma^(n - 1 - i) of states i = 0..n-1 (the last, z*, has weight 1)."""
    return np.asarray([gamma ** (n_states - 1 - i) for i in range(n_states)])


def correction_loss(state_losses: Sequence[jax.Array] | jax.Array,
                    gamma: float = 0.8) -> jax.Array:
    """Weighted sum over states of per-example losses: [n_states, B] (or a list) -> [B]."""
    losses = jnp.stack([jnp.asarray(loss) for loss in state_losses])
    w = jnp.asarray(correction_weights(losses.shape[0], gamma), losses.dtype)
    return jnp.tensordot(w, losses, axes=1)


def _check_indices(indices: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(i) for i in indices)
    if not out or out[0] < 1 or any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"indices must be strictly increasing solver-step counts >= 1, got "
                         f"{indices}")
    return out


def solve_trajectory(g: Callable[[jax.Array], jax.Array], z0: jax.Array, solver: Solver,
                     indices: Sequence[int], *, tol: float, stop_mode: str = "rel"
                     ) -> tuple[list[jax.Array], SolverStats]:
    """States of one solve of z = g(z) (flat [B, D]) after each of `indices` updates.

    The same per-example stopping as `solvers.solve` (an example freezes once its residual
    is below tol or non-finite); the solver's history is kept across indices.
    """
    indices = _check_indices(indices)
    pick = 0 if stop_mode == "abs" else 1
    fz0 = g(z0)
    res0 = residuals(z0, fz0)
    b = z0.shape[0]
    carry = dict(k=jnp.zeros((), jnp.int32), z=z0, fz=fz0, res=res0,
                 steps=jnp.zeros((b,), jnp.int32),
                 active=~(res0[pick] < tol) & jnp.isfinite(res0[pick]),
                 aux=solver.init(z0, fz0))

    def body(c):
        z_new, aux = solver.propose(c["z"], c["fz"], c["aux"], c["k"])
        fz_new = g(z_new)
        res_new = residuals(z_new, fz_new)
        m = c["active"]
        z = jnp.where(m[:, None], z_new, c["z"])
        res = tuple(jnp.where(m, n, o) for n, o in zip(res_new, c["res"], strict=True))
        r = res[pick]
        return dict(k=c["k"] + 1, z=z, fz=fz_new, res=res, aux=aux,
                    steps=c["steps"] + m.astype(jnp.int32),
                    active=m & ~(r < tol) & jnp.isfinite(r))

    states = []
    for end in indices:
        carry = jax.lax.while_loop(lambda c, end=end: (c["k"] < end) & jnp.any(c["active"]),
                                   body, carry)
        states.append(carry["z"])
    res = carry["res"]
    stats = SolverStats(steps=carry["steps"], abs_residual=res[0], rel_residual=res[1],
                        converged=res[pick] < tol, iterations=carry["k"])
    return states, stats


def _phantom_from(f: Callable, params: PyTree, x: PyTree, z_state: PyTree, steps: int,
                  tau: float, bad: jax.Array) -> PyTree:
    """z_state (detached) carrying the gradient of `steps` damped steps of f from it.

    Examples marked `bad` or whose state is non-finite start from zeros with zeroed inputs,
    so they cannot put NaN into the parameter gradient of the others (as `fixed_point`'s
    phantom mode does).
    """
    z_state = jax.lax.stop_gradient(z_state)
    z_flat, unflatten = _tree.flatten(z_state)
    bad = bad | ~jnp.all(jnp.isfinite(z_flat), axis=-1)
    x_safe = _tree.example_mask(bad, x)
    z = unflatten(jnp.where(bad[:, None], 0.0, z_flat))
    for _ in range(steps):
        fz = f(params, x_safe, z)
        z = jax.tree.map(lambda a, b: tau * a + (1.0 - tau) * b, fz, z)
    return jax.tree.map(lambda s, k: s + (k - jax.lax.stop_gradient(k)), z_state, z)


def correction_states(f: Callable[[PyTree, PyTree, PyTree], PyTree], params: PyTree,
                      x: PyTree, z0: PyTree, options: DEQOptions | None = None, *,
                      n_states: int = 1, indices: Sequence[int] | None = None,
                      grad: str = "phantom", **overrides: Any
                      ) -> tuple[list[PyTree], SolverStats]:
    """Solver states to supervise for fixed-point correction, each with its own gradient.

    Which states: `indices` (solver-step counts, strictly increasing, <= max_steps, e.g.
    sparse (4, 12, 30); the solve ends at the last one) or else `n_states` uniformly
    spaced ones ending at max_steps (`uniform_indices`).
    `grad`: "phantom" (opts.phantom_steps damped steps with opts.phantom_tau from each
    state) or "one_step" (one undamped step).
    Solver, tol, stop_mode and max_steps come from `options` / keyword overrides as in
    `fixed_point` (no residual trace is recorded; return_best is refused).
    Returns (states with z0's structure, stats of the whole solve); combine per-example
    losses of the states with `correction_loss`.
    """
    if grad not in CORRECTION_GRADS:
        raise ValueError(f"fixed-point correction supervises intermediate states, which are "
                         f"not fixed points: grad must be one of {CORRECTION_GRADS}, "
                         f"got {grad!r}")
    opts = resolve(options, {**overrides, "grad": grad})
    if not isinstance(opts.max_steps, int):
        raise ValueError("fixed-point correction needs a static (Python int) max_steps")
    if opts.return_best:
        raise ValueError("fixed-point correction supervises the solver's own states; "
                         "return_best is not supported")
    chosen = (_check_indices(indices) if indices is not None
              else uniform_indices(opts.max_steps, n_states))
    if chosen[-1] > opts.max_steps:
        raise ValueError(f"index {chosen[-1]} exceeds max_steps = {opts.max_steps}")
    steps, tau = (opts.phantom_steps, opts.phantom_tau) if grad == "phantom" else (1, 1.0)

    z0_flat, unflatten = _tree.flatten(jax.lax.stop_gradient(z0))
    g = _tree.flat_fn(f, *jax.lax.stop_gradient((params, x)), unflatten)
    flat_states, stats = solve_trajectory(g, z0_flat, opts.forward_solver(), chosen,
                                          tol=opts.tol, stop_mode=opts.stop_mode)
    # An example that stopped because f overflowed froze at that state (f non-finite there):
    # every index from its stopping step on is excluded from the gradient.
    states = [_phantom_from(f, params, x, unflatten(s), steps, tau,
                            stats.nonfinite & (stats.steps <= k))
              for s, k in zip(flat_states, chosen, strict=True)]
    return states, stats
