"""nevis.equilibrium's loop-friendly convolutions: equal to flax/lax, and the slow-path check."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nevis import equilibrium as eq

# (kernel_size, strides, padding, use_bias): stride-1 cases take the custom VJP; the
# strided one is passed to lax unchanged (and must still equal nnx.Conv).
CASES = [
    ((3, 3), 1, "SAME", True),
    ((3, 3), 1, "VALID", False),
    ((3, 2), 1, ((2, 0), (1, 0)), True),
    ((5,), 1, "SAME", True),  # 1-D
    ((3, 3), 2, "SAME", False),  # falls back to lax
]


def _pair(kernel_size, strides, padding, use_bias, cin=3, cout=4):
    """nnx.Conv and eq.Conv with the same random parameters (numpy draws: no RNG compiles)."""
    kw = dict(strides=strides, padding=padding, use_bias=use_bias,
              kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0))
    ref, ours = nnx.Conv(cin, cout, kernel_size, **kw), eq.Conv(cin, cout, kernel_size, **kw)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype),
                          nnx.state(ref, nnx.Param))
    nnx.update(ref, params)
    nnx.update(ours, params)
    return ref, ours


@pytest.mark.parametrize("kernel_size,strides,padding,use_bias", CASES)
def test_conv_module_matches_nnx_conv(kernel_size, strides, padding, use_bias):
    ref, ours = _pair(kernel_size, strides, padding, use_bias)
    shape = (2,) + (7,) * len(kernel_size) + (3,)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    ct = jnp.asarray(rng.standard_normal(ref(x).shape), jnp.float32)

    def grads(model):
        graphdef, params = nnx.split(model, nnx.Param)

        def loss(p, xx):
            return jnp.sum(nnx.merge(graphdef, p)(xx) * ct)

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)

    np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    (p_ref, x_ref), (p_ours, x_ours) = grads(ref), grads(ours)
    np.testing.assert_allclose(x_ours, x_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv_general_dilated_matches_lax_under_jit_and_loops():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 4)), jnp.float32)
    w = jnp.asarray(0.2 * rng.standard_normal((3, 3, 4, 4)), jnp.float32)
    dn = ("NHWC", "HWIO", "NHWC")

    def loop(conv):
        def run(w, x):
            def body(_, z):
                return jnp.tanh(conv(z, w, (1, 1), "SAME", dimension_numbers=dn) + x)
            return jnp.sum(jax.lax.fori_loop(0, 3, body, x) ** 2)
        return jax.jit(jax.grad(run, argnums=(0, 1)))

    for a, b in zip(loop(eq.conv_general_dilated)(w, x), loop(jax.lax.conv_general_dilated)(w, x),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


class _Cell(nnx.Module):
    def __init__(self, conv_cls, width: int = 8):
        self.conv = conv_cls(width, width, (3, 3), kernel_init=nnx.initializers.zeros,
                             rngs=nnx.Rngs(0))

    def __call__(self, x, z):
        return jnp.tanh(self.conv(z) + x)


def _cell_args(conv_cls):
    graphdef, params = nnx.split(_Cell(conv_cls), nnx.Param)
    z = jax.ShapeDtypeStruct((4, 6, 6, 8), jnp.float32)  # shapes are enough
    return (lambda p, x, zz: nnx.merge(graphdef, p)(x, zz)), params, z, z


@pytest.mark.parametrize("conv_cls", [nnx.Conv, eq.Conv])
def test_check_cell_warns_for_plain_conv_only(conv_cls):
    f, params, x, z = _cell_args(conv_cls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = eq.check_cell(f, params, x, z, platform="cpu")
    slow = [w for w in caught if issubclass(w.category, eq.SlowAdjointWarning)]
    if conv_cls is nnx.Conv:
        assert len(found) == 1 and len(slow) == 1
        assert "nevis.equilibrium.Conv" in str(slow[0].message)
    else:
        assert found == [] and slow == []


def test_check_cell_plain_lax_and_conv2d_cells():
    w = jnp.zeros((3, 3, 8, 8))
    z = jax.ShapeDtypeStruct((2, 5, 5, 8), jnp.float32)

    def lax_cell(p, x, zz):
        return jax.nn.relu(jax.lax.conv_general_dilated(
            zz, p, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + x)

    def fast_cell(p, x, zz):
        return jax.nn.relu(eq.conv2d(zz, p) + x)

    with pytest.warns(eq.SlowAdjointWarning):
        assert len(eq.check_cell(lax_cell, w, z, z, platform="cpu")) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert eq.check_cell(fast_cell, w, z, z, platform="cpu") == []
        # Elsewhere (GPU/TPU) the transposed layout is fine: reported, not warned about.
        assert len(eq.check_cell(lax_cell, w, z, z, platform="gpu")) == 1


def test_conv2d_rejects_bad_input():
    x, w = jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 2))
    with pytest.raises(ValueError, match="NHWC"):
        eq.conv2d(x[0], w)
    with pytest.raises(ValueError, match="padding"):
        eq.conv2d(x, w, ((3, 0), (0, 0)))


@pytest.mark.parametrize("weight_norm", [False, True])
def test_project_deq_cell_stays_on_the_fast_path(weight_norm):
    from nevis.models.deq import DEQCell

    abstract = nnx.eval_shape(lambda: DEQCell(8, groups=4, weight_norm=weight_norm,
                                              rngs=nnx.Rngs(0)))
    graphdef, params = nnx.split(abstract, nnx.Param)
    z = jax.ShapeDtypeStruct((2, 6, 6, 8), jnp.float32)
    assert eq.slow_convolutions(lambda p, x, zz: nnx.merge(graphdef, p)(x, zz), params, z,
                                z) == []
