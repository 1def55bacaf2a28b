"""Speed levers of nevis.equilibrium (issue #14, section 2) give the reference results.

- `loop_friendly` rewrites a cell's convolutions (nnx.Conv, plain lax, inside jit, any
  layout) onto the channels-last custom-VJP conv: same values, same VJPs, no slow conv
  left, and `fixed_point` uses it in the forward solve, the implicit adjoint and unrolled
  gradients (switchable with loop_friendly=False);
- `group_norm` (per-channel sums, then groups) equals the textbook GroupNorm in value
  and VJP.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nevis import equilibrium as eq
from nevis.equilibrium.layers import _slow_layout, _walk

B, S, C, G = 3, 6, 8, 4
RNG = np.random.default_rng(0)


def _arr(*shape, scale=1.0):
    return jnp.asarray(scale * RNG.standard_normal(shape), jnp.float32)


def _lax_conv(z, w, strides=(1, 1), dn=("NHWC", "HWIO", "NHWC")):
    return jax.lax.conv_general_dilated(z, w, strides, "SAME", dimension_numbers=dn)


def _cell(p, x, z):
    """A cell written the ordinary way: plain lax conv, relu, textbook GroupNorm."""
    return _reference_gn(jax.nn.relu(_lax_conv(z, p["w"]) + x), G, p["scale"], p["bias"])


def _reference_gn(x, groups, scale=None, bias=None, eps=1e-5):
    """GroupNorm by its definition (the library's rule before the speed change)."""
    n, h, w, c = x.shape
    xg = x.reshape(n, h, w, groups, c // groups)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=(1, 2, 4), keepdims=True)
    y = ((xg - mean) * jax.lax.rsqrt(var + eps)).reshape(n, h, w, c)
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y


def _params():
    return {"w": _arr(3, 3, C, C, scale=0.3 / np.sqrt(9 * C)), "scale": 1 + _arr(C, scale=0.1),
            "bias": _arr(C, scale=0.1)}


def _slow_convs_in(fn, *args) -> int:
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return sum(1 for e in _walk(jaxpr) if e.primitive.name == "conv_general_dilated"
               and _slow_layout(e.params["dimension_numbers"], e.invars[0].aval.ndim))


def _close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


# ---------------------------------------------------------------- loop_friendly


def test_loop_friendly_same_values_and_vjps_no_slow_conv():
    p, x, z = _params(), _arr(B, S, S, C), _arr(B, S, S, C)
    fast = eq.loop_friendly(_cell)
    assert eq.slow_convolutions(_cell, p, x, z) and not eq.slow_convolutions(fast, p, x, z)
    np.testing.assert_array_equal(fast(p, x, z), _cell(p, x, z))
    ct = _arr(B, S, S, C)
    ref = jax.vjp(_cell, p, x, z)[1](ct)
    got = jax.vjp(fast, p, x, z)[1](ct)
    _close(got, ref)


def test_loop_friendly_rewrites_nnx_conv_and_convs_inside_jit():
    conv = nnx.Conv(C, C, (3, 3), use_bias=True, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(conv, nnx.Param)

    @jax.jit
    def inner(w, z):  # a jitted helper: its conv must be rewritten too
        return _lax_conv(z, w)

    def f(p, x, z):
        return jnp.tanh(nnx.merge(graphdef, p[0])(z) + inner(p[1], z) + x)

    p, x, z = (state, _params()["w"]), _arr(B, S, S, C), _arr(B, S, S, C)
    assert len(eq.slow_convolutions(f, p, x, z)) == 2
    assert eq.slow_convolutions(eq.loop_friendly(f), p, x, z) == []
    ct = _arr(B, S, S, C)
    _close(jax.vjp(eq.loop_friendly(f), p, x, z)[1](ct), jax.vjp(f, p, x, z)[1](ct))


def test_loop_friendly_leaves_ineligible_convs_alone():
    w, z = _params()["w"], _arr(B, S, S, C)

    def f(w, z):  # a strided convolution keeps lax's rule
        return jnp.sum(jnp.sin(_lax_conv(z, w, strides=(2, 2))))

    fast = eq.loop_friendly(f)
    names = {e.primitive.name for e in _walk(jax.make_jaxpr(fast)(w, z).jaxpr)}
    assert "conv_general_dilated" in names and not any("custom_vjp" in n for n in names)
    np.testing.assert_array_equal(fast(w, z), f(w, z))
    _close(jax.grad(fast, (0, 1))(w, z), jax.grad(f, (0, 1))(w, z))


@pytest.mark.parametrize("dn", [("NCHW", "OIHW", "NCHW"), ("NHWC", "OIHW", "NHWC"),
                                ("NCHW", "HWIO", "NHWC")])
def test_other_layouts_go_through_channels_last(dn):
    """Any layout is transposed onto the channels-last x HWIO custom-VJP conv: no conv of
    another layout is left, forward or backward, and values and gradients are lax's."""
    rng = np.random.default_rng(3)
    lhs_shape = {"NCHW": (B, C, S, S + 1), "NHWC": (B, S, S + 1, C)}[dn[0]]
    rhs_shape = {"OIHW": (C + 1, C, 3, 2), "HWIO": (3, 2, C, C + 1)}[dn[1]]
    z = jnp.asarray(rng.standard_normal(lhs_shape), jnp.float32)
    w = jnp.asarray(0.2 * rng.standard_normal(rhs_shape), jnp.float32)

    def f(w, z):
        y = jax.lax.conv_general_dilated(z, w, (1, 1), ((1, 1), (0, 1)), dimension_numbers=dn)
        return jnp.sum(jnp.sin(y))

    fast = eq.loop_friendly(f)
    np.testing.assert_allclose(fast(w, z), f(w, z), rtol=1e-5)
    _close(jax.grad(fast, (0, 1))(w, z), jax.grad(f, (0, 1))(w, z), tol=1e-4)
    canonical = eq.layers._channels_last(4)
    convs = [e for e in _walk(jax.make_jaxpr(jax.grad(fast, (0, 1)))(w, z).jaxpr)
             if e.primitive.name == "conv_general_dilated"]
    assert convs and all(e.params["dimension_numbers"] == canonical for e in convs)
    y = eq.conv_general_dilated(z, w, (1, 1), ((1, 1), (0, 1)), dimension_numbers=dn)
    ref = jax.lax.conv_general_dilated(z, w, (1, 1), ((1, 1), (0, 1)), dimension_numbers=dn)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_loop_friendly_with_closed_over_tracers_under_jit_and_vmap():
    p, z = _params(), _arr(B, S, S, C)

    @jax.jit
    def g(w):
        def f(zz):  # closes over the traced kernel
            return jnp.sum(jnp.tanh(_lax_conv(zz, w)))
        return jax.grad(eq.loop_friendly(f))(z), jax.grad(f)(z)

    got, ref = g(p["w"])
    _close(got, ref)
    batched = jax.vmap(eq.loop_friendly(lambda zz: _lax_conv(zz[None], p["w"])[0]))(z)
    np.testing.assert_allclose(batched, _lax_conv(z, p["w"]), rtol=1e-6, atol=1e-6)


def test_loop_friendly_keeps_python_leaves_static():
    p, z = _params(), _arr(B, S, S, C)

    def f(q, x, zz):  # Python control flow on a non-array input
        y = _lax_conv(zz, q["w"])
        return y * x["gain"] if x["scaled"] else y

    x = {"scaled": True, "gain": 2.0}
    np.testing.assert_array_equal(eq.loop_friendly(f)(p, x, z), f(p, x, z))
    np.testing.assert_array_equal(eq.loop_friendly(f)(p, {**x, "scaled": False}, z),
                                  _lax_conv(z, p["w"]))


@pytest.mark.parametrize("grad", ["implicit", "unrolled"])
def test_fixed_point_uses_loop_friendly_convs(grad):
    """The gradient of a lax-conv DEQ has no slow conv with the option on (default),
    has one with it off, and both give the same gradient."""
    p, x = _params(), _arr(B, S, S, C)

    def loss(q, xx, lf):
        z, _ = eq.fixed_point(_cell, q, xx, jnp.zeros_like(xx), solver="anderson", tol=1e-5,
                              max_steps=40, grad=grad, b_tol=1e-6, b_max_steps=60,
                              loop_friendly=lf)
        return jnp.sum(z * jnp.cos(xx))

    grad_fns = {lf: jax.grad(functools.partial(loss, lf=lf), (0, 1)) for lf in (True, False)}
    assert _slow_convs_in(grad_fns[True], p, x) == 0
    assert _slow_convs_in(grad_fns[False], p, x) > 0
    grads = {lf: jax.jit(fn)(p, x) for lf, fn in grad_fns.items()}
    _close(grads[True], grads[False], tol=1e-4)


def test_fixed_point_forward_of_channels_first_cell_is_rewritten():
    p, x = _params(), _arr(B, C, S, S)
    w_oihw = jnp.transpose(p["w"], (3, 2, 0, 1))

    def cell(q, xx, z):
        y = jax.lax.conv_general_dilated(z, q, (1, 1), "SAME",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jnp.tanh(y + xx)

    def solve(q, lf):
        return eq.fixed_point(cell, q, x, jnp.zeros_like(x), tol=1e-6, max_steps=50,
                              grad="none", loop_friendly=lf)[0]

    canonical = eq.layers._channels_last(4)
    for lf, want in ((True, True), (False, False)):
        convs = [e for e in _walk(jax.make_jaxpr(functools.partial(solve, lf=lf))(w_oihw).jaxpr)
                 if e.primitive.name == "conv_general_dilated"]
        assert convs and all((e.params["dimension_numbers"] == canonical) == want for e in convs)
    np.testing.assert_allclose(solve(w_oihw, True), solve(w_oihw, False), rtol=1e-5, atol=1e-6)


def test_adjoint_stats_same_with_and_without_rewrite():
    p, x = _params(), _arr(B, S, S, C)
    z, _ = eq.fixed_point(_cell, p, x, jnp.zeros_like(x), tol=1e-6, max_steps=60)
    g = _arr(B, S, S, C)
    on = eq.adjoint_stats(_cell, p, x, z, g, tol=1e-5, max_steps=60)
    off = eq.adjoint_stats(_cell, p, x, z, g, tol=1e-5, max_steps=60, loop_friendly=False)
    np.testing.assert_array_equal(on.steps, off.steps)
    np.testing.assert_allclose(on.rel_residual, off.rel_residual, rtol=1e-3, atol=1e-7)


# ---------------------------------------------------------------- group_norm


@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_value_and_vjp_match_definition(affine):
    x = 2.0 + _arr(B, S, S, C)  # an offset mean, as after relu
    scale, bias = (1 + _arr(C, scale=0.2), _arr(C, scale=0.2)) if affine else (None, None)
    ct = _arr(B, S, S, C)

    def ours(x, s, b):
        return eq.group_norm(x, G, s, b)

    def ref(x, s, b):
        return _reference_gn(x, G, s, b)

    _close(ours(x, scale, bias), ref(x, scale, bias))
    argnums = (0, 1, 2) if affine else (0,)
    got = jax.vjp(lambda *a: ours(*a) if affine else ours(a[0], None, None),
                  *((x, scale, bias) if affine else (x,)))[1](ct)
    want = jax.vjp(lambda *a: ref(*a) if affine else ref(a[0], None, None),
                   *((x, scale, bias) if affine else (x,)))[1](ct)
    assert len(got) == len(argnums)
    _close(got, want, tol=1e-4)
    # per-example: another example's values never change this one's output
    x2 = x.at[1:].set(100.0 * x[1:])
    _close(ours(x2, scale, bias)[0], ours(x, scale, bias)[0])


def test_group_norm_any_rank_and_bad_groups():
    x = _arr(B, 5, C)  # [N, L, C]
    want = _reference_gn(x[:, :, None, :], G)[:, :, 0, :]
    _close(eq.group_norm(x, G), want)
    with pytest.raises(ValueError, match="groups"):
        eq.group_norm(_arr(B, S, S, 6), 4)
