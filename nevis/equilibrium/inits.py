"""Named initial states z0 for a batched state (registry)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _tree

PyTree = Any
InitFn = Callable[..., PyTree]


def _zeros(like: PyTree, key: jax.Array | None, given: PyTree | None, scale: float) -> PyTree:
    return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), like)


def _given(like, key, given, scale):
    if given is None:
        raise ValueError("init 'given' needs given= (e.g. an input projection)")
    if jax.tree.structure(given) != jax.tree.structure(like):
        raise ValueError("given init must have the state's structure")
    return given


def _normal(like: PyTree, key: jax.Array, scale: float) -> PyTree:
    leaves, treedef = jax.tree.flatten(like)
    keys = jax.random.split(key, len(leaves))
    out = [scale * _tree.normal(k, a.shape, a.dtype)
           for k, a in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, out)


def _need_key(key):
    if key is None:
        raise ValueError("random inits need key=")
    return key


def _gaussian(like, key, given, scale):
    return _normal(like, _need_key(key), scale)


def _mixed_example(like, key, given, scale):
    """Exactly B // 2 randomly chosen examples get Gaussian noise, the rest zeros."""
    k_perm, k_noise = jax.random.split(_need_key(key))
    b = jax.tree.leaves(like)[0].shape[0]
    chosen = jax.random.permutation(k_perm, b) < b // 2
    noise = _normal(like, k_noise, scale)
    return jax.tree.map(
        lambda n: jnp.where(chosen.reshape((b,) + (1,) * (n.ndim - 1)), n, 0.0).astype(n.dtype),
        noise)


def _mixed_element(like, key, given, scale):
    """Gaussian noise masked element-wise by Bernoulli(0.5) (torchdeq's mixed_init)."""
    k_mask, k_noise = jax.random.split(_need_key(key))
    noise = _normal(like, k_noise, scale)
    leaves, treedef = jax.tree.flatten(noise)
    keys = jax.random.split(k_mask, len(leaves))
    out = [jnp.where(jax.random.bernoulli(k, 0.5, (n.size,)).reshape(n.shape), n, 0.0)
           .astype(n.dtype)
           for k, n in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, out)


INITS: dict[str, InitFn] = {
    "zeros": _zeros,
    "given": _given,
    "gaussian": _gaussian,
    "mixed_example": _mixed_example,
    "mixed_element": _mixed_element,
}


def register_init(name: str, fn: InitFn) -> None:
    """Add fn(like, key, given, scale) -> z0 to the registry."""
    INITS[name] = fn


def initial_state(kind: str, like: PyTree, *, key: jax.Array | None = None,
                  given: PyTree | None = None, scale: float = 1.0) -> PyTree:
    """Build z0 shaped like `like` (arrays or ShapeDtypeStructs with a batch axis).

    kind: zeros | given | gaussian | mixed_example (half the batch noise, half zeros)
    | mixed_element (Bernoulli(0.5)-masked noise); noise is scale * N(0, 1).
    """
    if kind not in INITS:
        raise ValueError(f"unknown init {kind!r}; known: {sorted(INITS)}")
    return INITS[kind](like, key, given, scale)
