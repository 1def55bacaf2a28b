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


def test_single_convolution_cell_is_the_two_convolution_cell_without_its_second_half():
    """`convs=1` computes relu(x + GN(conv1(z))) with the same first kernel and norm as the
    two-convolution cell built from the same seed, and has no second kernel or norm."""
    from nevis import equilibrium as eq

    one = DEQCell(8, groups=4, convs=1, rngs=nnx.Rngs(0))
    two = DEQCell(8, groups=4, convs=2, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(one.v1[...], two.v1[...])
    assert not hasattr(one, "v2") and not hasattr(one, "scale2")
    x, z = jax.random.normal(jax.random.key(1), (2, 2, 4, 4, 8))
    by_hand = jax.nn.relu(x + eq.group_norm(eq.conv2d(z, two.v1[...]), 4, two.scale1[...],
                                            two.bias1[...]))
    np.testing.assert_allclose(one(x, z), by_hand, rtol=1e-6, atol=1e-6)
    assert not np.allclose(one(x, z), two(x, z), atol=1e-3)
    with pytest.raises(ValueError, match="1 or 2 convolutions"):
        DEQCell(8, groups=4, convs=3, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("injection", ["block", "conv"])
def test_injection_choices_feed_the_cell_at_its_width_and_resolution(injection):
    from nevis.models.deq import DEQClassifier

    model = DEQClassifier(width=16, stem_widths=(8, 12), stem_stride=2, groups=4, norm="group",
                          weight_norm=False, init_scale=1.0, num_classes=3,
                          rngs=nnx.Rngs(0), injection=injection)
    x = model.stem(jnp.ones((2, 32, 32, 3)))
    assert x.shape == (2, 4, 4, 16)  # /2 stem, /2 second stage, /2 block or strided conv
    widths = [block.conv2.out_features for block in model.trunk.blocks]
    assert widths == ([8, 12, 16] if injection == "block" else [8, 12])
    assert hasattr(model, "injection") == (injection == "conv")
    with pytest.raises(ValueError, match="valid choices: block, conv"):
        DEQClassifier(width=16, stem_widths=(8,), stem_stride=2, groups=4, norm="group",
                      weight_norm=False, init_scale=1.0, num_classes=3, rngs=nnx.Rngs(0),
                      injection="nope")
