"""Path independence: asymptotic alignment (AA) and a limit-cycle check.

AA (Anil et al. 2022) compares the state reached from one start with the state reached
from another. Both runs should use the FINAL iterate after a FIXED number of solver steps
(no early stopping, no best-so-far iterate), so results do not depend on batch
composition or tolerance; obtain z_star with
`fixed_point(..., tol=0.0, max_steps=steps, grad="none")` (see `fixed_budget`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _tree
from .solvers import make_solver, solve
from .stats import SolverStats

PyTree = Any
MODES = ("derangement", "all_pairs", "gaussian")


def fixed_budget(f: Callable, params: PyTree, x: PyTree, z0: PyTree, steps: int,
                 solver: str = "fixed_point", solver_options: dict | None = None, *,
                 with_stats: bool = False) -> PyTree | tuple[PyTree, SolverStats]:
    """Final iterate after exactly `steps` solver updates from z0 (no gradient).

    with_stats=True also returns the solve's SolverStats (e.g. its rel_residual at the final
    iterate, which saves evaluating f once more to measure it).
    """
    z0_flat, unflatten = _tree.flatten(z0)
    g = _tree.flat_fn(f, params, x, unflatten)
    s = make_solver(solver, solver_options)
    if getattr(s, "keep_best", False):  # the FINAL iterate: best-so-far hides limit cycles
        s = dataclasses.replace(s, keep_best=False)
    # tol = -1 never triggers; only non-finite examples stop early.
    z, stats = solve(g, z0_flat, s, tol=-1.0, stop_mode="abs", max_steps=steps)
    z = jax.lax.stop_gradient(unflatten(z))
    return (z, jax.lax.stop_gradient(stats)) if with_stats else z


def cosine(a: jax.Array, b: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Per-row cosine similarity of [B, D] matrices, norms clamped below at eps."""
    na = jnp.maximum(jnp.linalg.norm(a, axis=-1), eps)
    nb = jnp.maximum(jnp.linalg.norm(b, axis=-1), eps)
    return jnp.sum(a * b, axis=-1) / (na * nb)


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded random cyclic permutation of range(n) (host side): partner[i] != i for all i.

    For AA over a whole split, pair examples by their index in the split with this, not by
    position in an evaluation batch: then an example's partner, and so its score, does not
    depend on the batch size, the device count or padding (see `partner_states`).
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 examples, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    partner = np.empty(n, np.int64)
    partner[order] = np.roll(order, -1)
    return partner


def _derangement(key: jax.Array | None, b: int) -> jax.Array:
    """Partner index per example: roll by one, or a random cyclic permutation (Sattolo)."""
    if key is None:
        return (jnp.arange(b) + 1) % b
    order = jax.random.permutation(key, b)
    partner = jnp.zeros(b, order.dtype)
    return partner.at[order].set(jnp.roll(order, -1))


def asymptotic_alignment(f: Callable, params: PyTree, x: PyTree, z_star: PyTree, *,
                         key: jax.Array | None = None, mode: str = "derangement",
                         steps: int = 100, solver: str = "fixed_point",
                         solver_options: dict | None = None, random_partner: bool = False,
                         noise_scale: float = 1.0, eps: float = 1e-6,
                         partner_states: PyTree | None = None) -> jax.Array:
    """Per-example AA scores [B]: cos(z*_i, z_i re-solved for x_i from another start).

    The re-solve runs exactly `steps` updates of `solver`. Modes:
    - derangement: start from the partner's z* (roll by one; a random cyclic
      derangement from `key` if random_partner), Algorithm 1 of McLeish & Tran-Thanh.
      Partners within the batch make scores depend on batch composition; pass
      `partner_states` (row i: the z* of example i's partner, chosen over a whole split,
      e.g. with `derangement`) to start from those instead.
    - all_pairs: start from every other example's z*; score_i is the mean over the B - 1
      partners j != i (the i = j pair is excluded because it is 1 by construction at a
      fixed point). Costs B - 1 batched re-solves.
    - gaussian: start from noise_scale * N(0, 1) (needs key).
    Cosine is over the whole flattened state, norms clamped at eps. An example whose
    re-solve overflows (a non-finite state or residual) scores NaN.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    z_star = jax.lax.stop_gradient(z_star)
    ref, unflatten = _tree.flatten(z_star)
    b = ref.shape[0]

    def resolve_from(start_flat):
        z, stats = fixed_budget(f, params, x, unflatten(start_flat), steps, solver,
                                solver_options, with_stats=True)
        # A re-solve that overflowed stopped early: its state is not the one reached after
        # `steps` updates, so it has no AA (NaN, to be counted rather than averaged).
        return jnp.where(stats.nonfinite, jnp.nan, cosine(ref, _tree.flatten(z)[0], eps))

    if partner_states is not None:
        if mode != "derangement":
            raise ValueError(f"partner_states needs mode='derangement', got {mode!r}")
        start = _tree.flatten(jax.lax.stop_gradient(partner_states))[0]
        if start.shape != ref.shape:
            raise ValueError(f"partner_states flatten to {start.shape}, z_star to {ref.shape}")
        return resolve_from(start.astype(ref.dtype))
    if mode == "derangement":
        if b < 2:
            raise ValueError("derangement needs a batch of at least 2")
        if random_partner and key is None:
            raise ValueError("random_partner needs key=")
        partner = _derangement(key if random_partner else None, b)
        return resolve_from(ref[partner])
    if mode == "gaussian":
        if key is None:
            raise ValueError("gaussian mode needs key=")
        return resolve_from(noise_scale * _tree.normal(key, ref.shape, ref.dtype))
    shifts = jnp.arange(1, b)
    scores = jax.lax.map(lambda s: resolve_from(jnp.roll(ref, -s, axis=0)), shifts)
    return jnp.mean(scores, axis=0)


def detect_limit_cycle(f: Callable, params: PyTree, x: PyTree, z: PyTree, *,
                       warmup: int = 0, tol: float = 1e-3, ratio: float = 0.1) -> jax.Array:
    """Flag examples [B] whose iteration alternates with period two instead of converging.

    After `warmup` plain steps from z: z1 = f(z), z2 = f(z1). A two-cycle has a large
    step ||z2 - z1|| (relative to ||z2||, above tol) while ||z2 - z|| is below
    ratio * ||z2 - z1||.
    """
    z0_flat, unflatten = _tree.flatten(jax.lax.stop_gradient(z))
    g = _tree.flat_fn(f, params, x, unflatten)
    v = jax.lax.fori_loop(0, warmup, lambda _, v: g(v), z0_flat)
    v1 = g(v)
    v2 = g(v1)
    n2 = jnp.linalg.norm(v2, axis=-1) + 1e-9
    step = jnp.linalg.norm(v2 - v1, axis=-1)
    back = jnp.linalg.norm(v2 - v, axis=-1)
    return (step / n2 > tol) & (back < ratio * step)

