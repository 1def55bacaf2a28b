"""Variational dropout for equilibrium cells: one mask per example, fixed for the whole solve.

An equilibrium cell is iterated to a fixed point z* = f(z*). Ordinary dropout draws a new
mask at every call of f, so each solver step applies a different map and there is no fixed
point to converge to (the residual stalls at the size of the dropout noise). Variational
dropout (Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent
Neural Networks", NeurIPS 2016), as used for DEQs by Bai et al. ("Deep Equilibrium Models",
NeurIPS 2019) and torchdeq's `VariationalDropout*`, draws the mask ONCE per example and
training step and reuses it in every solver iteration, so f stays one fixed map per example
and the solver converges to that map's fixed point.

Usage: draw the mask outside the solve and hand it to the cell through x (it has the batch
axis, so stopping, masking of bad examples and the implicit adjoint all see the same map):

    mask = dropout_mask_2d(key, z0.shape, rate=0.1, deterministic=not training)
    f = lambda p, xs, z: cell(p, xs[0], apply_dropout(hidden(p, z), xs[1]))
    z, stats = fixed_point(f, params, (inject, mask), z0)

At prediction (`deterministic=True`) the mask is all ones, i.e. dropout is the identity.
Masks use inverted-dropout scaling (kept entries are 1 / (1 - rate)), as torchdeq's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")


def dropout_mask(key: jax.Array | None, shape: Sequence[int], rate: float, *,
                 shared_axes: Sequence[int] = (), deterministic: bool = False,
                 dtype: Any = jnp.float32) -> jax.Array:
    """Inverted-dropout mask for an activation of `shape` (leading axis = batch).

    Entries are 0 with probability `rate` and 1 / (1 - rate) otherwise; along
    `shared_axes` (never the batch axis 0) the mask has size 1, so one draw is shared by
    all positions there (e.g. all pixels of a channel). Each example gets its own draw.
    Returns ones when `deterministic` or rate == 0 (no key needed then).
    """
    _check_rate(rate)
    axes = {a % len(shape) for a in shared_axes}
    if 0 in axes:
        raise ValueError("the batch axis 0 cannot be shared: each example needs its own mask")
    mask_shape = tuple(1 if i in axes else int(n) for i, n in enumerate(shape))
    if deterministic or rate == 0.0:
        return jnp.ones(mask_shape, dtype)
    if key is None:
        raise ValueError("dropout_mask needs key= unless deterministic or rate == 0")
    # A flat draw compiles much faster than a multi-dimensional one on XLA:CPU (see _tree.normal).
    keep = jax.random.bernoulli(key, 1.0 - rate, (int(np.prod(mask_shape)),))
    return (keep.reshape(mask_shape).astype(dtype) / (1.0 - rate)).astype(dtype)


def dropout_mask_1d(key: jax.Array | None, shape: Sequence[int], rate: float, *,
                    deterministic: bool = False, dtype: Any = jnp.float32) -> jax.Array:
    """Channel-wise mask [B, 1, D] for sequences [B, L, D]: a dropped feature is dropped at
    every position (torchdeq `VariationalDropout1d`, token_first=True)."""
    if len(shape) != 3:
        raise ValueError(f"dropout_mask_1d needs a [B, L, D] shape, got {tuple(shape)}")
    return dropout_mask(key, shape, rate, shared_axes=(1,), deterministic=deterministic,
                        dtype=dtype)


def dropout_mask_2d(key: jax.Array | None, shape: Sequence[int], rate: float, *,
                    deterministic: bool = False, dtype: Any = jnp.float32) -> jax.Array:
    """Channel-wise mask [B, 1, 1, C] for NHWC feature maps: a dropped channel is dropped at
    every pixel (torchdeq `VariationalDropout2d`, token_first=True)."""
    if len(shape) != 4:
        raise ValueError(f"dropout_mask_2d needs an NHWC [B, H, W, C] shape, got {tuple(shape)}")
    return dropout_mask(key, shape, rate, shared_axes=(1, 2), deterministic=deterministic,
                        dtype=dtype)


def apply_dropout(h: jax.Array, mask: jax.Array | None) -> jax.Array:
    """h * mask (broadcast over shared axes); None means no dropout."""
    if mask is None:
        return h
    return h * mask.astype(h.dtype)
