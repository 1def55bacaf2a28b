"""Forward root solvers for z = g(z) on flat per-example states [B, D].

Each solver proposes the next iterate from (z, g(z), history); the shared driver
evaluates g, measures per-example residuals and freezes examples that have stopped,
so one slow example never changes another's result. The driver returns the FINAL
iterate of each example (best-so-far only on request, or for a solver that keeps its
best, such as the safeguarded Broyden: best-so-far hides limit cycles).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from .stats import SolverStats

Array = jax.Array
REL_EPS = 1e-9  # as torchdeq: rel = ||f(z) - z|| / (||f(z)|| + 1e-9)


class Solver(Protocol):
    """A forward solver with per-example history `aux` (leaves with leading axis B).

    Every operation must act on each example independently: the driver keeps a stopped
    example's z but does not restore its aux, so its (discarded) proposals may be garbage.
    A solver whose attribute `keep_best` is true makes the driver return each example's
    lowest-residual iterate, as if return_best were set (the safeguarded Broyden's guarantee).
    """

    def init(self, z: Array, fz: Array) -> Any: ...

    def propose(self, z: Array, fz: Array, aux: Any, k: Array) -> tuple[Array, Any]: ...


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    """Damped iteration z <- tau f(z) + (1 - tau) z."""

    tau: float = 1.0

    def init(self, z: Array, fz: Array) -> Any:
        return ()

    def propose(self, z, fz, aux, k):
        return z + self.tau * (fz - z), aux


def _spd_solve(a: Array, b: Array) -> Array:
    """Solve a[B, m, m] x = b[B, m] for small SPD a by unrolled Gauss-Jordan.

    No pivoting is needed for SPD systems; this compiles far faster than
    jnp.linalg.solve (about 0.1 s vs 1 s on CPU) for the tiny Anderson systems.
    """
    m = a.shape[-1]
    idx = jnp.arange(m)
    for i in range(m):
        piv = a[:, i, i]
        row, bi = a[:, i, :] / piv[:, None], b[:, i] / piv
        pivot_row = idx == i
        col = jnp.where(pivot_row, 0.0, a[:, :, i])
        a = jnp.where(pivot_row[:, None], row[:, None, :], a - col[:, :, None] * row[:, None, :])
        b = jnp.where(pivot_row, bi[:, None], b - col * bi[:, None])
    return b


@dataclasses.dataclass(frozen=True)
class Anderson:
    """Anderson acceleration (type II) with history m, ridge lam and mixing beta.

    Each step mixes the last m values of f with weights alpha (sum 1) minimising
    ||sum_i alpha_i g_i||^2 + ridge, g = f(z) - z, from the normal equations of the m x m
    Gram matrix of the history's residuals. The Gram matrix is kept up to date one row per
    step (O(m D) instead of O(m^2 D)); the history stores g and f(z), the two quantities
    the update reads.

    The ridge is relative, so the same lam works in float32 training, in float64 tests
    converging to 1e-12 and on tiny adjoint cotangents. ridge="column" (default) adds
    lam ||g_i||^2 to each diagonal entry, a Tikhonov term on the scale of each column;
    ridge="mean" adds lam x the mean of the ||g_i||^2 to all of them (the rule before
    issue #14), which lets the oldest, largest residuals set the ridge for the newest:
    with m = 20 it cost 16 f evaluations instead of 14 on the benchmark cell at W gain 0.5
    (benchmarks/equilibrium_solver_steps.py; identical for m <= 6).

    Safeguard: when an example's residual exceeds `restart_growth` x the best it has seen
    (None: never), its history is dropped and the step is a plain (beta-damped) step from
    the current iterate, so the solver never keeps mixing with a model that has failed.
    Restarting from the current rather than the best iterate keeps Anderson's final
    iterate honest for asymptotic-alignment measurements (best-so-far hides limit cycles).
    On contracting maps the residual never grows that much and the safeguard changes
    nothing (e.g. the benchmark's conv cell).

    How far Anderson can go: on the benchmark's conv cell the Jacobian's spectrum fills a
    disc (radius ~0.6 at W gain 0.5, ~0.9 at 0.9), where no Krylov method, and so no
    Anderson variant (type-II Anderson with m >= steps is GMRES on the linearised map), can
    beat plain iteration's rate by much: worst-example f evaluations to rel. residual 1e-3
    are 14 vs 15 (gain 0.5) and 47 / 45 / 42 with m = 6 / 10 / 20 vs 64 (gain 0.9).
    Memory: two [B, m, D] buffers, the [B, m, m] Gram matrix and a counter.
    """

    m: int = 5
    lam: float = 1e-4
    beta: float = 1.0
    ridge: str = "column"
    restart_growth: float | None = 10.0

    def __post_init__(self) -> None:
        if self.m < 1 or self.ridge not in ("column", "mean"):
            raise ValueError(f"Anderson needs m >= 1 and ridge 'column' or 'mean', got "
                             f"m={self.m}, ridge={self.ridge!r}")
        if self.restart_growth is not None and not self.restart_growth > 1.0:
            raise ValueError("Anderson restart_growth must be > 1 or None")

    def init(self, z, fz):
        b, d = z.shape
        hist = jnp.zeros((b, self.m, d), z.dtype)
        return dict(gs=hist, fs=hist, gram=jnp.zeros((b, self.m, self.m), z.dtype),
                    n=jnp.zeros((b,), jnp.int32), r_best=jnp.full((b,), jnp.inf, z.dtype))

    def propose(self, z, fz, aux, k):
        g = fz - z
        n, r_best = aux["n"], aux["r_best"]
        if self.restart_growth is not None:
            r = jnp.linalg.norm(g, axis=-1)
            n = jnp.where(r > self.restart_growth * r_best, 0, n)  # NaN: the driver stops it
            r_best = jnp.where(r < r_best, r, r_best)
        rows, slot = jnp.arange(z.shape[0]), n % self.m
        gs = aux["gs"].at[rows, slot].set(g, mode="promise_in_bounds")
        fs = aux["fs"].at[rows, slot].set(fz, mode="promise_in_bounds")
        new_row = jnp.einsum("bid,bd->bi", gs, g)
        gram = aux["gram"].at[rows, slot].set(new_row, mode="promise_in_bounds")
        gram = gram.at[rows, :, slot].set(new_row, mode="promise_in_bounds")
        valid = jnp.arange(self.m) < jnp.minimum(n + 1, self.m)[:, None]
        gram = jnp.where(valid[:, :, None] & valid[:, None, :], gram, 0.0)
        diag = jnp.diagonal(gram, axis1=1, axis2=2)
        if self.ridge == "column":
            scale = diag
        else:
            scale = jnp.sum(diag, -1, keepdims=True) / jnp.sum(valid, -1, keepdims=True)
        ridge = jnp.where(valid, self.lam * scale + jnp.finfo(z.dtype).tiny, 1.0)
        a = gram + ridge[:, :, None] * jnp.eye(self.m, dtype=z.dtype)
        alpha = _spd_solve(a, valid.astype(z.dtype))
        alpha = alpha / alpha.sum(-1, keepdims=True)
        mix_f = jnp.einsum("bi,bid->bd", alpha, fs)
        new_aux = dict(gs=gs, fs=fs, gram=gram, n=n + 1, r_best=r_best)
        if self.beta == 1.0:
            return mix_f, new_aux
        mix_x = mix_f - jnp.einsum("bi,bid->bd", alpha, gs)  # sum alpha x = sum alpha (f - g)
        return self.beta * mix_f + (1.0 - self.beta) * mix_x, new_aux


def _rows(mask: Array, new: Array, old: Array) -> Array:
    """Per-example select: rows of `new` where mask [B] is set, else rows of `old`."""
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


@dataclasses.dataclass(frozen=True)
class Broyden:
    """Safeguarded limited-memory 'good' Broyden on g(z) = f(z) - z, B^-1 = -I + U V^T.

    Full quasi-Newton steps, no line search (no extra f evaluations). Plain Broyden can
    leave the basin and overflow on maps that plain iteration solves (issue #14: the DEQ
    learner's GroupNorm cell in float64 at tol 1e-11), so, per example:

    - memory stays at `memory` rank-one updates whatever max_steps is; when it is full the
      model restarts from -I at the current iterate (overwriting the oldest update instead
      leaves a model the later updates were not built on, which is what diverged);
    - when the residual ||g|| exceeds `growth` x the best residual seen (or is not finite),
      the model is dropped and the solver falls back to plain iteration z <- z + tau g from
      the BEST iterate for `plain_steps` steps, doubling that count at each further
      fallback (so a map that plain iteration solves is eventually solved by it: without
      the doubling the same deterministic Broyden excursion can repeat forever);
    - `keep_best` (default) makes the driver return each example's lowest-residual iterate,
      so a solve never ends on a worse iterate than one it has seen. Asymptotic-alignment
      measurements need the final iterate instead (best-so-far hides limit cycles): use
      keep_best=False there, or a fixed-point / Anderson solver.

    Memory: two [B, memory, D] buffers plus four [B, D] states.
    """

    memory: int = 30
    growth: float = 10.0
    plain_steps: int = 5
    tau: float = 1.0
    keep_best: bool = True

    def __post_init__(self) -> None:
        if self.memory < 1 or self.plain_steps < 1 or not self.growth > 1.0:
            raise ValueError("Broyden needs memory >= 1, plain_steps >= 1 and growth > 1")

    def init(self, z, fz):
        b, d = z.shape
        buf = jnp.zeros((b, self.memory, d), z.dtype)
        count = jnp.zeros((b,), jnp.int32)
        g = fz - z
        return dict(us=buf, vs=buf, n=count, plain_left=count, fallbacks=count,
                    z_prev=z, g_prev=g, z_best=z, g_best=g,
                    r_best=jnp.full((b,), jnp.inf, z.dtype))

    @staticmethod
    def _apply(us, vs, used, v):  # B^-1 v, with the first `used` rank-one updates
        return -v + jnp.einsum("bld,bl->bd", us, used * jnp.einsum("bld,bd->bl", vs, v))

    @staticmethod
    def _apply_t(us, vs, used, v):  # v^T B^-1
        return -v + jnp.einsum("bld,bl->bd", vs, used * jnp.einsum("bld,bd->bl", us, v))

    def propose(self, z, fz, aux, k):
        g = fz - z
        r = jnp.linalg.norm(g, axis=-1)
        grew = ~(r <= self.growth * aux["r_best"])  # NaN / inf count as growth
        better = r < aux["r_best"]
        z_best, g_best = _rows(better, z, aux["z_best"]), _rows(better, g, aux["g_best"])
        r_best = jnp.where(better, r, aux["r_best"])
        fallbacks = aux["fallbacks"] + grew.astype(jnp.int32)
        fresh = self.plain_steps * 2 ** jnp.minimum(fallbacks - 1, 20)
        plain_left = jnp.where(grew, fresh, jnp.maximum(aux["plain_left"] - 1, 0))
        plain = plain_left > 0
        # A full memory restarts the model at the current iterate; a fallback drops it.
        n = jnp.where((aux["n"] >= self.memory) | plain, 0, aux["n"])
        us, vs = aux["us"], aux["vs"]
        used = (jnp.arange(self.memory) < n[:, None]).astype(z.dtype)
        dx, dg = z - aux["z_prev"], g - aux["g_prev"]
        binv_dg = self._apply(us, vs, used, dg)
        dxt_binv = self._apply_t(us, vs, used, dx)
        den = jnp.sum(dx * binv_dg, -1)
        size = jnp.linalg.norm(dx, axis=-1) * jnp.linalg.norm(binv_dg, axis=-1)
        # The finite test on v also makes both buffer writes below depend on both reads
        # above, so XLA updates the buffers in place instead of copying them every step.
        ok = ((k > 0) & ~plain & (jnp.abs(den) > 1e-12 * size) & (size > 0)
              & jnp.isfinite(jnp.sum(dxt_binv, -1)))
        u = jnp.where(ok[:, None], (dx - binv_dg) / jnp.where(ok, den, 1.0)[:, None], 0.0)
        rows = jnp.arange(z.shape[0])
        v = jnp.where(ok[:, None], dxt_binv, 0.0)
        us = us.at[rows, n].set(u, mode="promise_in_bounds")
        vs = vs.at[rows, n].set(v, mode="promise_in_bounds")
        n = n + ok.astype(jnp.int32)
        used = (jnp.arange(self.memory) < n[:, None]).astype(z.dtype)
        z_base, g_base = _rows(grew, z_best, z), _rows(grew, g_best, g)
        z_new = _rows(plain, z_base + self.tau * g_base, z - self._apply(us, vs, used, g))
        return z_new, dict(us=us, vs=vs, n=n, plain_left=plain_left, fallbacks=fallbacks,
                           z_prev=z_base, g_prev=g_base, z_best=z_best, g_best=g_best,
                           r_best=r_best)


SOLVERS: dict[str, Callable[..., Solver]] = {
    "fixed_point": FixedPoint,
    "anderson": Anderson,
    "broyden": Broyden,
}


def register_solver(name: str, factory: Callable[..., Solver]) -> None:
    """Add a solver factory (called with the `solver_options` keywords) to the registry."""
    SOLVERS[name] = factory


def make_solver(solver: str | Solver, options: dict | None = None) -> Solver:
    """Resolve a registry name (plus keyword options) or pass a solver instance through."""
    if isinstance(solver, str):
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; known: {sorted(SOLVERS)}")
        return SOLVERS[solver](**(options or {}))
    if options:
        raise ValueError("solver_options only apply to a solver given by name")
    return solver


def residuals(z: Array, fz: Array) -> tuple[Array, Array]:
    """Per-example absolute and relative residuals of z -> f(z)."""
    a = jnp.linalg.norm(fz - z, axis=-1)
    return a, a / (jnp.linalg.norm(fz, axis=-1) + REL_EPS)


def _sel(mask: Array, new: Any, old: Any) -> Any:
    def one(n, o):
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(one, new, old)


def solve(
    g: Callable[[Array], Array],
    z0: Array,
    solver: Solver,
    *,
    tol: float,
    stop_mode: str = "rel",
    max_steps: int = 30,
    return_best: bool = False,
    trace: bool = False,
    unroll: bool = False,
) -> tuple[Array, SolverStats]:
    """Iterate `solver` on z = g(z) for flat states z0 [B, D] with per-example stopping.

    An example stops (and freezes) once its residual is below tol or non-finite; the
    loop ends when every example stopped or after max_steps updates. unroll=True uses a
    fixed-length scan (reverse-differentiable; frozen examples still freeze). The final
    iterate is returned unless return_best (or the solver's `keep_best`) asks for the best.
    """
    if stop_mode not in ("abs", "rel"):
        raise ValueError(f"stop_mode must be 'abs' or 'rel', got {stop_mode!r}")
    return_best = return_best or bool(getattr(solver, "keep_best", False))
    pick = 0 if stop_mode == "abs" else 1
    fz0 = g(z0)
    res0 = residuals(z0, fz0)
    b = z0.shape[0]
    active0 = ~(res0[pick] < tol) & jnp.isfinite(res0[pick])
    # max_steps may be a traced scalar (a budget drawn per batch) unless a trace is kept.
    tr = (jnp.full((b, max_steps + 1), jnp.nan, res0[0].dtype).at[:, 0].set(res0[pick])
          if trace else None)
    carry = dict(
        k=jnp.zeros((), jnp.int32), z=z0, fz=fz0, res=res0,
        steps=jnp.zeros((b,), jnp.int32), active=active0, aux=solver.init(z0, fz0),
        trace=tr,
        best=(z0, res0) if return_best else None,
    )

    def body(c):
        z_new, aux_new = solver.propose(c["z"], c["fz"], c["aux"], c["k"])
        fz_new = g(z_new)
        res_new = residuals(z_new, fz_new)
        m = c["active"]
        # Only z and its residual are frozen; fz and aux rows of stopped examples feed
        # nothing but their own discarded proposals, and selecting the (large) history
        # buffers every step would cost more than the solver update itself.
        out = dict(k=c["k"] + 1, steps=c["steps"] + m.astype(jnp.int32), fz=fz_new,
                   aux=aux_new)
        out["z"], out["res"] = _sel(m, (z_new, res_new), (c["z"], c["res"]))
        r = out["res"][pick]
        out["active"] = m & ~(r < tol) & jnp.isfinite(r)
        out["trace"] = None if c["trace"] is None else c["trace"].at[:, c["k"] + 1].set(r)
        if c["best"] is not None:
            better = r < c["best"][1][pick]
            out["best"] = _sel(better, (out["z"], out["res"]), c["best"])
        else:
            out["best"] = None
        return out

    if unroll:
        carry, _ = jax.lax.scan(lambda c, _: (body(c), None), carry, None, length=max_steps)
    else:
        def cond(c):
            return (c["k"] < max_steps) & jnp.any(c["active"])

        carry = jax.lax.while_loop(cond, body, carry)
    z, res = carry["best"] if return_best else (carry["z"], carry["res"])
    stats = SolverStats(
        steps=carry["steps"], abs_residual=res[0], rel_residual=res[1],
        converged=res[pick] < tol, iterations=carry["k"], trace=carry["trace"],
    )
    return z, stats
