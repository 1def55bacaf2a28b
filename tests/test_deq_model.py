"""The DEQ classifier's cell options that change its kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nevis.models.deq import DEQCell


def _matrix_norm(kernel) -> float:
    kernel = np.asarray(kernel)
    return float(np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), 2))


@pytest.mark.parametrize("init_scale", [0.2, 3.0])
def test_spectral_norm_clips_the_cell_kernels_to_the_target(init_scale):
    target = 0.5
    cell = DEQCell(8, groups=4, spectral_norm=target, init_scale=init_scale, rngs=nnx.Rngs(0))
    for clipped, raw in zip(cell._kernels(), (cell.v1[...], cell.v2[...]), strict=True):
        if _matrix_norm(raw) > target:  # brought down to the target (power-iteration estimate)
            assert _matrix_norm(clipped) == pytest.approx(target, rel=0.05)
        else:  # below the target: untouched
            np.testing.assert_allclose(clipped, raw, rtol=1e-6)
    x = z = jnp.ones((2, 4, 4, 8))
    graphdef, params = nnx.split(cell, nnx.Param)
    grads = jax.grad(lambda p: nnx.merge(graphdef, p)(x, z).sum())(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
