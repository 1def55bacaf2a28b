"""Path independence, Jacobian diagnostics, inits and layers of nevis.equilibrium."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nevis.equilibrium import (
    asymptotic_alignment,
    conv2d,
    derangement,
    detect_limit_cycle,
    fixed_budget,
    group_norm,
    initial_state,
    jacobian_frobenius,
    spectral_radius,
    weight_norm,
    weight_norm_scale,
)

B, D = 6, 5


RNG = np.random.default_rng(0)


def randn(*shape):  # test data from numpy: no XLA compile for random draws
    return jnp.asarray(RNG.standard_normal(shape))


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def contractive(p, x, z):
    return jnp.tanh(0.5 * z @ p + x)


def bistable(p, x, z):  # each coordinate has attractors near +-1: start decides
    return jnp.tanh(3.0 * z + 0.1 * x)


def flipping(p, x, z):  # 0 is unstable (slope -3); iterates settle on a 2-cycle +-a
    return -jnp.tanh(3.0 * z)


def data():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((D, D))
    return jnp.asarray(w / np.linalg.norm(w, 2)), jnp.asarray(rng.standard_normal((B, D)))


aa = jax.jit(asymptotic_alignment, static_argnums=0,
             static_argnames=("mode", "steps", "random_partner"))
budget = jax.jit(fixed_budget, static_argnums=(0, 4))
cycle = jax.jit(detect_limit_cycle, static_argnums=0)


def np_cos(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("mode", ["derangement", "all_pairs", "gaussian"])
def test_alignment_is_one_on_a_contraction_and_low_on_a_bistable_map(mode):
    p, x = data()
    kw = dict(key=jax.random.key(0), mode=mode, steps=100)
    z_c = budget(contractive, p, x, jnp.zeros((B, D)), 100)
    s_c = aa(contractive, p, x, z_c, **kw)
    assert s_c.shape == (B,)
    np.testing.assert_allclose(s_c, 1.0, atol=1e-9)
    z_b = budget(bistable, p, x, jnp.zeros((B, D)), 100)
    s_b = aa(bistable, p, x, z_b, **kw)
    assert float(np.mean(s_b)) < 0.5
    if mode == "derangement":  # a random derangement also moves every example
        s_r = aa(bistable, p, x, z_b, key=jax.random.key(1), mode=mode, steps=100,
                 random_partner=True)
        assert float(np.mean(s_r)) < 0.5
        # started from its own state a bistable example keeps it (the i = j pair is 1)
        np.testing.assert_allclose(np_cos(budget(bistable, p, x, z_b, 100), z_b), 1.0,
                                   atol=1e-9)


def test_all_pairs_averages_over_partners():
    p, x = data()
    x = x.at[0].set(x[1])  # examples 0 and 1 share their attractor
    z_b = budget(bistable, p, x, jnp.zeros((B, D)), 100)
    s = aa(bistable, p, x, z_b, mode="all_pairs", steps=100)
    cos = np.zeros((B, B))
    for j in range(B):  # every input started from example j's state
        cos[:, j] = np_cos(z_b, budget(bistable, p, x, jnp.broadcast_to(z_b[j], (B, D)), 100))
    expect = (cos.sum(1) - np.diag(cos)) / (B - 1)
    np.testing.assert_allclose(s, expect, atol=1e-9)
    assert float(s[0]) > float(np.min(s[2:])) + 0.1  # the twin pair aligns better


def test_limit_cycle_detection():
    p, x = data()
    z = budget(flipping, p, x, 0.1 * x, 50)
    assert cycle(flipping, p, x, z).tolist() == [True] * B
    zc = budget(contractive, p, x, jnp.zeros((B, D)), 100)
    assert cycle(contractive, p, x, zc).tolist() == [False] * B
    z_mid = budget(contractive, p, x, jnp.zeros((B, D)), 2)  # not yet converged
    assert cycle(contractive, p, x, z_mid).tolist() == [False] * B


def linear(p, x, z):
    return z @ p + x


def test_hutchinson_jacobian_estimate_and_its_gradient():
    p, x = data()
    w = np.diag([0.9, 0.5, -0.3, 0.2, 0.1]) @ np.asarray(p)  # ||J||_F^2 / D known

    @jax.jit
    def value_and_grad(w, key):
        def mean_est(w):
            est = jacobian_frobenius(linear, w, x, jnp.zeros((B, D)), key, n_samples=400)
            return jnp.mean(est), est

        return jax.value_and_grad(mean_est, has_aux=True)(w)

    (mean, est), g = value_and_grad(jnp.asarray(w), jax.random.key(0))
    assert est.shape == (B,)
    np.testing.assert_allclose(mean, np.sum(w**2) / D, rtol=0.05)
    assert float(np_cos(np.ravel(g)[None], np.ravel(2 * w / D)[None])[0]) > 0.95


def test_power_method_spectral_radius():
    p, x = data()
    q, _ = np.linalg.qr(np.asarray(p))
    w = jnp.asarray(q @ np.diag([0.9, -0.5, 0.3, 0.2, 0.1]) @ q.T)
    radius = jax.jit(spectral_radius, static_argnums=(0, 5))
    rho = radius(linear, w, x, jnp.zeros((B, D)), jax.random.key(0), 200)
    np.testing.assert_allclose(rho, 0.9, rtol=1e-6)
    rho_t = radius(contractive, p, x, jnp.zeros((B, D)), jax.random.key(0), 200)
    assert ((rho_t < 0.5 + 1e-9) & (rho_t > 0.1)).all()  # 0.5 ||p||_2 = 0.5 bounds it


def test_weight_norm_arrays_and_nnx_params():
    v_np, g_np = RNG.standard_normal((3, 3, 4, 8)), np.arange(1.0, 9.0)  # HWIO kernel
    v, g = jnp.asarray(v_np), jnp.asarray(g_np)
    norms = np.linalg.norm(v_np.reshape(-1, 8), axis=0)

    @jax.jit
    def check(v, g):
        return (weight_norm(v, g), weight_norm(v, weight_norm_scale(v)),
                jax.grad(lambda g: jnp.sum(weight_norm(v, g)))(g))

    w, w_id, dg = check(v, g)
    np.testing.assert_allclose(w, v_np * g_np / norms, rtol=1e-9)
    np.testing.assert_allclose(w_id, v_np, rtol=1e-9)
    np.testing.assert_allclose(dg, v_np.reshape(-1, 8).sum(0) / norms, rtol=1e-9)
    w_nnx = jax.jit(lambda v, g: weight_norm(nnx.Param(v), nnx.Param(g)))(v, g)
    np.testing.assert_allclose(w_nnx, w, rtol=1e-12)


def test_initial_states():
    like = {"a": jax.ShapeDtypeStruct((64, 3), jnp.float64), "b": jnp.zeros((64, 2, 2))}
    key = jax.random.key(0)
    init = jax.jit(lambda kind, key: initial_state(kind, like, key=key, scale=2.0),
                   static_argnums=0)
    out = {kind: jax.tree.map(np.asarray, init(kind, key))
           for kind in ("zeros", "gaussian", "mixed_example", "mixed_element")}
    assert all(np.abs(t).max() == 0 for t in jax.tree.leaves(out["zeros"]))
    given = jax.tree.map(lambda s: jnp.ones(s.shape), like)
    assert initial_state("given", like, given=given) is given
    assert 1.7 < out["gaussian"]["b"].std() < 2.3
    mixed = out["mixed_example"]
    rows_a, rows_b = (mixed["a"] != 0).any(1), (mixed["b"] != 0).any((1, 2))
    assert rows_a.sum() == 32 and (rows_a == rows_b).all()  # exactly half, whole examples
    zero_frac = np.mean(out["mixed_element"]["b"] == 0)
    assert 0.4 < zero_frac < 0.6  # and element-wise: most examples get some noise
    assert (out["mixed_element"]["b"] != 0).any((1, 2)).sum() > 48
    with pytest.raises(ValueError):
        initial_state("gaussian", like)
    with pytest.raises(ValueError):
        initial_state("nope", like)


@pytest.mark.parametrize("kshape,padding", [((3, 3), "SAME"), ((5, 3), "VALID"),
                                            ((3, 2), ((2, 0), (1, 1)))])
def test_conv2d_value_and_gradients_match_lax(kshape, padding):
    x = randn(2, 7, 6, 3)
    w = randn(*kshape, 3, 4)

    def ref(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y = jax.jit(conv2d, static_argnums=2)(x, w, padding)
    np.testing.assert_allclose(y, ref(x, w), atol=1e-12)
    gy = randn(*y.shape)
    got = jax.jit(lambda x, w, gy: jax.vjp(lambda x, w: conv2d(x, w, padding), x, w)[1](gy))(
        x, w, gy)
    want = jax.jit(lambda x, w, gy: jax.vjp(ref, x, w)[1](gy))(x, w, gy)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-11)


def test_group_norm_matches_numpy():
    x = RNG.standard_normal((2, 4, 4, 8)) * 3 + 1
    scale, bias = np.linspace(0.5, 1.5, 8), np.linspace(-1, 1, 8)
    xg = x.reshape(2, 4, 4, 4, 2)  # 4 groups of 2 channels
    ref = (xg - xg.mean((1, 2, 4), keepdims=True)) / np.sqrt(xg.var((1, 2, 4), keepdims=True)
                                                             + 1e-5)
    ref = ref.reshape(x.shape) * scale + bias
    got = jax.jit(group_norm, static_argnums=1)(jnp.asarray(x), 4, jnp.asarray(scale),
                                                jnp.asarray(bias))
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_alignment_from_given_partner_states_over_a_split():
    p, x = data()
    x = jnp.concatenate([x, -x])  # a "split" of 12 examples, scored in batches of 5 and 7
    n = x.shape[0]
    partner = derangement(n, seed=3)
    assert sorted(partner.tolist()) == list(range(n)) and (partner != np.arange(n)).all()
    assert (derangement(n, seed=3) == partner).all() and (derangement(n, seed=4) != partner).any()
    z = budget(bistable, p, x, 0.01 * x, 100)
    whole = aa(bistable, p, x, z, steps=100, partner_states=z[partner])
    expect = np_cos(z, budget(bistable, p, x, z[partner], 100))
    np.testing.assert_allclose(whole, expect, atol=1e-12)
    assert float(np.std(whole)) > 0.1  # partners matter on a bistable map
    # Any batching of the split gives each example the same score: partners are by index.
    parts = [aa(bistable, p, x[s], z[s], steps=100, partner_states=z[partner[s]])
             for s in (slice(0, 5), slice(5, 12))]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, seed=0)
    with pytest.raises(ValueError, match="partner_states needs mode='derangement'"):
        asymptotic_alignment(bistable, p, x, z, mode="gaussian", key=jax.random.key(0),
                             partner_states=z)


def test_alignment_of_an_overflowing_re_solve_is_nan():
    p, x = data()

    def squares(p, x, z):  # attracts to 2 - sqrt(2) from below 2 + sqrt(2), overflows above
        return 0.25 * z * z + 0.5

    z = budget(squares, p, x, jnp.zeros((B, D)), 100)
    start = z.at[2].set(1e3)  # example 2 restarts far above the unstable fixed point
    s = aa(squares, p, x, z, steps=20, partner_states=start)
    assert np.isnan(s[2])  # its re-solve overflowed: no AA, rather than a number
    np.testing.assert_allclose(np.delete(np.asarray(s), 2), 1.0, atol=1e-12)
