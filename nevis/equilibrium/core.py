"""Public entry point: solve z = f(params, x, z) per example and differentiate through it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from . import _tree
from .implicit import forward, implicit, phantom
from .layers import loop_friendly
from .options import DEQOptions, resolve
from .stats import SolverStats

PyTree = Any


def fixed_point(f: Callable[[PyTree, PyTree, PyTree], PyTree], params: PyTree, x: PyTree,
                z0: PyTree, options: DEQOptions | None = None,
                **overrides: Any) -> tuple[PyTree, SolverStats]:
    """Return (z*, stats) with z* = f(params, x, z*) for every example of the batch.

    f maps (params, x, z) to a state with z's structure; every leaf of z has a leading
    batch axis B and f must treat examples independently (no BatchNorm across the batch),
    because stopping is per example. Gradients reach params and x according to
    `grad` (see DEQOptions, which also lists every keyword accepted here). Works under
    jit and vmap; f may contain custom-VJP ops (only reverse mode is used).
    """
    opts = resolve(options, overrides)
    _tree.batch_size(z0)
    out = jax.eval_shape(f, params, x, z0)
    if jax.tree.structure(out) != jax.tree.structure(z0):
        raise ValueError("f(params, x, z) must return a pytree with the structure of z")
    if opts.loop_friendly:  # f's convolutions run in solver loops, forward and backward
        f = loop_friendly(f)
    if opts.grad == "implicit":
        return implicit(f, params, x, z0, opts)
    if opts.grad == "phantom":
        return phantom(f, params, x, z0, opts, opts.phantom_steps, opts.phantom_tau)
    if opts.grad == "one_step":
        return phantom(f, params, x, z0, opts, 1, 1.0)
    if opts.grad == "unrolled":
        return forward(f, params, x, z0, opts, unroll=True)
    z, stats = forward(f, params, x, z0, opts)
    return jax.lax.stop_gradient(z), stats
