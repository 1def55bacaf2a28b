"""Gradients through an equilibrium: implicit (custom VJP), phantom, one-step, unrolled.

The implicit adjoint solves u = g + J^T u matrix-free (one VJP of f in z per step) and
then forms the parameter and input cotangents with a single VJP, so memory does not
grow with solver steps. Examples where z* or f(z*) is non-finite are excluded from the backward
pass (their z and batched inputs are replaced by zeros and their u set to 0), and so are
examples whose adjoint overflows, so one diverged example cannot put NaN into the gradient of
the others. Mask such examples out of the loss with `stats.converged`. The adjoint's
SolverStats (see `backward_callback`) mark every excluded example as not converged with NaN
residuals (`stats.nonfinite`), so they are counted, never silently averaged away.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _tree
from .layers import loop_friendly
from .options import DEQOptions
from .solvers import solve
from .stats import SolverStats

PyTree = Any


def _bad_examples(z_flat: jax.Array) -> jax.Array:
    return ~jnp.all(jnp.isfinite(z_flat), axis=-1)


def forward(f: Callable, params: PyTree, x: PyTree, z0: PyTree, opts: DEQOptions,
            unroll: bool = False) -> tuple[PyTree, SolverStats]:
    """Run the forward solver on f(params, x, .) from z0 (no gradient handling)."""
    z0_flat, unflatten = _tree.flatten(z0)
    g = _tree.flat_fn(f, params, x, unflatten)
    z, stats = solve(g, z0_flat, opts.forward_solver(), tol=opts.tol, stop_mode=opts.stop_mode,
                     max_steps=opts.max_steps, return_best=opts.return_best, trace=opts.trace,
                     unroll=unroll)
    return unflatten(z), stats


def _adjoint(f, params, x, z_star, g, opts: DEQOptions, fwd_residual: jax.Array | None = None):
    """Solve u = g + J^T u at z*; return (u_flat, stats, safe_f, z_safe_flat, bad).

    An example is bad (excluded) when z* or f(z*) is non-finite; fwd_residual (the
    forward solve's abs residual) saves re-evaluating f to find out.
    """
    z_flat, unflatten = _tree.flatten(z_star)
    if fwd_residual is None:
        fz = _tree.flatten(f(params, x, z_star))[0]
        fwd_residual = jnp.sum(fz - z_flat, axis=-1)
    bad = _bad_examples(z_flat) | ~jnp.isfinite(fwd_residual)
    z_flat = jnp.where(bad[:, None], 0.0, z_flat)
    g_flat = jnp.where(bad[:, None], 0.0, _tree.flatten(g)[0].astype(z_flat.dtype))

    def safe_f(p, xx, v):
        return _tree.flatten(f(p, _tree.example_mask(bad, xx), unflatten(v)))[0]

    _, vjp_z = jax.vjp(lambda v: safe_f(params, x, v), z_flat)
    u, stats = solve(lambda u: g_flat + vjp_z(u)[0], g_flat, opts.backward_solver(),
                     tol=opts.backward_tol, stop_mode="rel",
                     max_steps=opts.backward_max_steps, trace=opts.trace)
    # A bad example's adjoint is a dummy solve of u = 0 that "converges" at once; an adjoint
    # that overflowed has no usable u. Both are excluded (u = 0) and reported as not converged
    # with NaN residuals, so that logs count them instead of averaging them away.
    lost = bad | _bad_examples(u) | ~jnp.isfinite(stats.abs_residual)
    u = jnp.where(lost[:, None], 0.0, u)
    nan = jnp.asarray(jnp.nan, stats.abs_residual.dtype)
    stats = dataclasses.replace(
        stats, abs_residual=jnp.where(lost, nan, stats.abs_residual),
        rel_residual=jnp.where(lost, nan, stats.rel_residual),
        converged=stats.converged & ~lost)
    return u, stats, safe_f, z_flat, bad


def adjoint_stats(f: Callable, params: PyTree, x: PyTree, z_star: PyTree, g: PyTree,
                  options: DEQOptions | None = None, **overrides: Any) -> SolverStats:
    """Re-run the implicit backward solve for cotangent g = dL/dz* and return its stats.

    Pure and jit-able: use it for logging how well the adjoint converges.
    """
    from .options import resolve

    opts = resolve(options, overrides)
    f = loop_friendly(f) if opts.loop_friendly else f
    return _adjoint(f, params, x, jax.lax.stop_gradient(z_star), g, opts)[1]


def _report(opts: DEQOptions, stats: SolverStats, bad: jax.Array) -> None:
    if opts.backward_callback is not None:
        jax.debug.callback(opts.backward_callback, stats)
    if opts.on_backward_failure == "warn":
        failed = jnp.sum(~stats.converged & ~bad)
        overflowed = jnp.sum(stats.nonfinite & ~bad)

        def _warn(n, n_overflow, worst):
            if n > 0:
                warnings.warn(f"equilibrium backward solve did not converge for {int(n)} "
                              f"example(s) ({int(n_overflow)} overflowed and were excluded); "
                              f"worst finite relative residual {float(worst):.3g}",
                              RuntimeWarning, stacklevel=2)

        finite = jnp.isfinite(stats.rel_residual)
        worst = jnp.max(jnp.where(finite, stats.rel_residual, 0.0))
        jax.debug.callback(_warn, failed, overflowed, worst)


def implicit(f: Callable, params: PyTree, x: PyTree, z0: PyTree,
             opts: DEQOptions) -> tuple[PyTree, SolverStats]:
    """Forward solve with the implicit-function-theorem gradient through a custom VJP.

    Tracers that f closes over (e.g. weights captured inside a jitted loss) are hoisted
    with jax.closure_convert and differentiated like params.
    """
    f_closed, consts = jax.closure_convert(f, params, x, z0)
    if consts:
        def f_hoisted(pc, xx, z):
            return f_closed(pc[0], xx, z, *pc[1])

        return implicit(f_hoisted, (params, tuple(consts)), x, z0, opts)

    @jax.custom_vjp
    def run(params, x, z0):
        return forward(f, params, x, z0, opts)

    def run_fwd(params, x, z0):
        z, stats = forward(f, params, x, z0, opts)
        return (z, stats), (params, x, z, stats.abs_residual)

    def run_bwd(res, cts):
        params, x, z, fwd_residual = res
        g, _ = cts
        u, stats, safe_f, z_flat, bad = _adjoint(f, params, x, z, g, opts, fwd_residual)
        _report(opts, stats, bad)
        if opts.on_backward_failure == "nan":
            u = jnp.where((~stats.converged & ~bad)[:, None], jnp.nan, u)
        _, vjp_px = jax.vjp(lambda p, xx: safe_f(p, xx, z_flat), params, x)
        dparams, dx = vjp_px(u.astype(z_flat.dtype))
        return dparams, dx, jax.tree.map(jnp.zeros_like, z)

    run.defvjp(run_fwd, run_bwd)
    return run(params, x, z0)


def phantom(f: Callable, params: PyTree, x: PyTree, z0: PyTree, opts: DEQOptions,
            steps: int, tau: float) -> tuple[PyTree, SolverStats]:
    """Phantom gradient: k differentiable damped steps from the detached z*.

    The returned value is z* itself; only the gradient comes from the k steps.
    """
    z_star, stats = forward(f, *jax.lax.stop_gradient((params, x, z0)), opts)
    z_star = jax.lax.stop_gradient(z_star)
    z_flat, unflatten = _tree.flatten(z_star)
    bad = _bad_examples(z_flat) | ~jnp.isfinite(stats.abs_residual)
    x_safe = _tree.example_mask(bad, x)
    z = unflatten(jnp.where(bad[:, None], 0.0, z_flat))
    for _ in range(steps):
        fz = f(params, x_safe, z)
        z = jax.tree.map(lambda a, b: tau * a + (1.0 - tau) * b, fz, z)
    z_out = jax.tree.map(lambda s, k: s + (k - jax.lax.stop_gradient(k)), z_star, z)
    return z_out, stats
