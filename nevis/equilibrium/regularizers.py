"""Jacobian diagnostics at an equilibrium and a weight-normalisation helper.

Both Jacobian tools use only VJPs of f in z, so cells with custom-VJP ops (such as
`layers.conv2d`) work; forward mode is never needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _tree

PyTree = Any


def _vjp_z(f: Callable, params: PyTree, x: PyTree, z: PyTree):
    z_flat, unflatten = _tree.flatten(z)
    _, vjp = jax.vjp(lambda v: _tree.flatten(f(params, x, unflatten(v)))[0], z_flat)
    return z_flat, lambda u: vjp(u)[0]


def jacobian_frobenius(f: Callable, params: PyTree, x: PyTree, z_star: PyTree, key: jax.Array,
                       n_samples: int = 1) -> jax.Array:
    """Hutchinson estimate of ||J||_F^2 / D per example ([B]), J = df/dz at z*.

    Differentiable in params and x (a loss term as in Bai et al. 2021); pass
    stop_gradient(z*) unless the penalty should also flow back through the solve.
    """
    z_flat, vjp = _vjp_z(f, params, x, z_star)
    eps = _tree.normal(key, (n_samples,) + z_flat.shape, z_flat.dtype)
    return jnp.sum(jax.vmap(vjp)(eps) ** 2, axis=(0, 2)) / (n_samples * z_flat.shape[1])


def spectral_radius(f: Callable, params: PyTree, x: PyTree, z_star: PyTree, key: jax.Array,
                    n_iters: int = 20) -> jax.Array:
    """Power-method estimate of the spectral radius of J at z* per example ([B]).

    Iterates v <- J^T v / ||J^T v|| (J^T has J's eigenvalues) and returns the last
    growth factor; with a complex dominant pair the estimate oscillates around |lambda|.
    """
    z_flat, vjp = _vjp_z(f, jax.lax.stop_gradient(params), jax.lax.stop_gradient(x),
                         jax.lax.stop_gradient(z_star))
    v = _tree.normal(key, z_flat.shape, z_flat.dtype)
    v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)

    def body(_, carry):
        v, _ = carry
        w = vjp(v)
        n = jnp.linalg.norm(w, axis=-1, keepdims=True)
        return w / jnp.maximum(n, jnp.finfo(w.dtype).tiny), n[:, 0]

    _, rho = jax.lax.fori_loop(0, n_iters, body, (v, jnp.zeros(v.shape[0], v.dtype)))
    return rho


def _value(v: Any) -> jax.Array:
    """Array inside a Flax NNX Variable (or the array itself)."""
    return v.get_value() if hasattr(v, "get_value") else jnp.asarray(v)


def weight_norm(v: Any, g: Any, axis: int | tuple[int, ...] = -1, eps: float = 1e-12
                ) -> jax.Array:
    """Reparametrised kernel g * v / ||v||, the norm taken over all axes except `axis`.

    axis is the output axis (-1 for Dense [in, out] and HWIO conv kernels); g has one
    entry per output. v and g may be arrays or NNX Params. Apply it inside f each step
    so gradients reach both g and v.
    """
    v, g = _value(v), _value(g)
    keep = {a % v.ndim for a in ((axis,) if isinstance(axis, int) else axis)}
    reduce = tuple(a for a in range(v.ndim) if a not in keep)
    norm = jnp.sqrt(jnp.sum(v * v, axis=reduce, keepdims=True) + eps)
    return v * (jnp.reshape(g, norm.shape) / norm)


def weight_norm_scale(v: Any, axis: int | tuple[int, ...] = -1) -> jax.Array:
    """Initial g = ||v|| per output, so weight_norm(v, g) == v at initialisation."""
    v = _value(v)
    keep = {a % v.ndim for a in ((axis,) if isinstance(axis, int) else axis)}
    reduce = tuple(a for a in range(v.ndim) if a not in keep)
    return jnp.sqrt(jnp.sum(v * v, axis=reduce))
