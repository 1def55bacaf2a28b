"""Gradients through nevis.equilibrium.fixed_point (float64, small contractive cells)."""

import functools

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest

from nevis.equilibrium import adjoint_stats, fixed_point

B, D, DX = 4, 6, 3
TIGHT = dict(tol=1e-13, max_steps=300, b_tol=1e-13)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def cell(p, x, z):
    return jnp.tanh(z @ p["W"] + x @ p["U"] + p["b"])


def setup():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((D, D))
    p = {"W": 0.8 * w / np.linalg.norm(w, 2),  # ||W||_2 = 0.8: contractive
         "U": rng.standard_normal((DX, D)),
         "b": 0.1 * rng.standard_normal(D)}
    return jax.tree.map(jnp.asarray, p), jnp.asarray(rng.standard_normal((B, DX)))


def per_example_loss(z):  # nonlinear head
    return jnp.sum(jnp.sin(z) * jnp.arange(1, D + 1), axis=-1)


@functools.partial(jax.jit, static_argnames=("grad", "solver", "b_max_steps", "failure", "cb"))
def value_and_grads(p, x, grad="implicit", solver="fixed_point", b_max_steps=300,
                    failure="warn", cb=None):
    """(z*, stats, d loss / d (params, x)); the loss skips non-converged examples."""

    def loss(p, x):
        z, st = fixed_point(cell, p, x, jnp.zeros((x.shape[0], D)), grad=grad, solver=solver,
                            b_max_steps=b_max_steps, on_backward_failure=failure,
                            backward_callback=cb, **TIGHT)
        return jnp.sum(jnp.where(st.converged, per_example_loss(z), 0.0)), (z, st)

    (_, (z, st)), g = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(p, x)
    return z, st, g


@jax.jit
def unrolled_grads(p, x):
    def loss(p, x):
        z = jax.lax.fori_loop(0, 500, lambda _, z: cell(p, x, z), jnp.zeros((B, D)))
        return jnp.sum(per_example_loss(z))

    return jax.grad(loss, argnums=(0, 1))(p, x)


def rel_err(a, b):
    a, b = (np.concatenate([np.ravel(t) for t in jax.tree.leaves(t)]) for t in (a, b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_implicit_matches_unrolled_backprop_and_finite_differences():
    p, x = setup()
    _, st, g_imp = value_and_grads(p, x, solver="anderson")
    assert bool(st.converged.all())
    g_unr = unrolled_grads(p, x)
    assert rel_err(g_imp, g_unr) <= 1e-5
    assert rel_err(g_imp[1], g_unr[1]) <= 1e-5  # gradient w.r.t. x on its own

    @jax.jit
    def central_difference(px, v, h=1e-5):
        def loss(p, x):
            z = fixed_point(cell, p, x, jnp.zeros((B, D)), grad="none", **TIGHT)[0]
            return jnp.sum(per_example_loss(z))

        plus = jax.tree.map(lambda a, d: a + h * d, px, v)
        minus = jax.tree.map(lambda a, d: a - h * d, px, v)
        return (loss(*plus) - loss(*minus)) / (2 * h)

    rng = np.random.default_rng(1)
    for _ in range(3):  # random directions in (params, x)
        v = jax.tree.map(lambda a: rng.standard_normal(a.shape), (p, x))
        fd = float(central_difference((p, x), v))
        ad = sum(float(np.vdot(a, d)) for a, d in zip(jax.tree.leaves(g_imp),
                                                      jax.tree.leaves(v), strict=True))
        assert abs(fd - ad) <= 1e-5 * abs(ad)


def test_implicit_matches_optimistix_implicit_adjoint_with_gmres():
    p, x = setup()

    def loss_optx(p, x):
        def one(xi):  # per-example solve: no batch-joint Jacobian
            sol = optx.fixed_point(
                lambda z, a: cell(a[0], a[1][None], z[None])[0],
                optx.FixedPointIteration(rtol=1e-13, atol=1e-13), jnp.zeros(D), (p, xi),
                max_steps=2000,
                adjoint=optx.ImplicitAdjoint(linear_solver=lx.GMRES(rtol=1e-12, atol=1e-12)))
            return sol.value

        return jnp.sum(per_example_loss(jax.vmap(one)(x)))

    g_optx = jax.jit(jax.grad(loss_optx, argnums=(0, 1)))(p, x)
    assert rel_err(value_and_grads(p, x)[2], g_optx) <= 1e-5


def test_gradient_modes_keep_the_value_and_differ_as_expected():
    p, x = setup()
    z_ref, _, g_imp = value_and_grads(p, x)
    assert rel_err(value_and_grads(p, x, solver="anderson")[2], g_imp) <= 1e-8
    z_unr, _, g_unr = value_and_grads(p, x, grad="unrolled")
    assert rel_err(g_unr, g_imp) <= 1e-5
    z1, _, g1 = value_and_grads(p, x, grad="one_step")
    z5, _, g5 = value_and_grads(p, x, grad="phantom")
    e1, e5 = rel_err(g1, g_imp), rel_err(g5, g_imp)
    assert 1e-3 < e5 < e1 < 1.0  # inexact, and more phantom steps are closer
    for z in (z1, z5):  # phantom/one-step keep the solver's value (straight-through)
        np.testing.assert_array_equal(z, z_ref)
    np.testing.assert_allclose(z_unr, z_ref, atol=1e-12)
    z_none, _, g_none = value_and_grads(p, x, grad="none")
    np.testing.assert_array_equal(z_none, z_ref)
    assert all(float(np.abs(t).max()) == 0.0 for t in jax.tree.leaves(g_none))


def test_diverged_example_does_not_poison_other_examples_gradients():
    p, x = setup()
    _, st, (gp, gx) = value_and_grads(p, x.at[1].set(jnp.nan), failure="ignore")
    assert st.converged.tolist() == [True, False, True, True]
    assert all(np.isfinite(t).all() for t in jax.tree.leaves(gp))
    keep = np.array([0, 2, 3])
    _, _, (gp_ref, gx_ref) = value_and_grads(p, x[keep])  # the batch without it
    assert rel_err(gp, gp_ref) <= 1e-10
    np.testing.assert_allclose(np.asarray(gx)[keep], gx_ref, rtol=1e-10)
    assert float(np.abs(gx[1]).max()) == 0.0

    def grow(p, x, z):  # example 0 diverges to inf (gain 3), the others converge
        return p * x * z + 1.0

    def loss_grow(p):
        z, st = fixed_point(grow, p, jnp.array([[3.0], [0.5], [0.2]]), jnp.zeros((3, 1)),
                            solver="fixed_point", tol=1e-12, max_steps=2000, b_tol=1e-12,
                            b_max_steps=2000)
        return jnp.sum(jnp.where(st.converged[:, None], z, 0.0)), st

    g, st = jax.jit(jax.grad(loss_grow, has_aux=True))(1.0)
    assert st.converged.tolist() == [False, True, True]
    exact = sum(a / (1 - a) ** 2 for a in (0.5, 0.2))  # d/dp sum 1 / (1 - p a) at p = 1
    assert abs(float(g) - exact) <= 1e-8 * exact


def test_backward_failure_is_reported():
    p, x = setup()
    short, ok = [], []
    with pytest.warns(RuntimeWarning, match="backward solve did not converge"):
        jax.block_until_ready(value_and_grads(p, x, b_max_steps=2, cb=short.append))
    assert len(short) == 1 and np.asarray(short[0].steps).tolist() == [2] * B
    assert not np.asarray(short[0].converged).any()
    g_nan = value_and_grads(p, x, b_max_steps=2, failure="nan")[2][0]
    assert np.isnan(g_nan["W"]).all()
    z_star, _, (g_ok, _) = value_and_grads(p, x, failure="nan", cb=ok.append)
    assert np.isfinite(g_ok["W"]).all() and np.asarray(ok[0].converged).all()

    g = jnp.cos(z_star) * jnp.arange(1, D + 1)  # dL/dz* of the test loss
    st = jax.jit(adjoint_stats, static_argnums=0, static_argnames=("b_tol", "b_max_steps",
                                                                   "solver"))(
        cell, p, x, z_star, g, b_tol=1e-13, b_max_steps=300, solver="fixed_point")
    np.testing.assert_array_equal(st.steps, ok[0].steps)
    np.testing.assert_array_less(st.rel_residual, 1e-13)
    assert int(st.steps.min()) > 5


def test_grad_under_jit_and_vmap_and_with_pytree_state_and_closures():
    p, x = setup()
    g_ref = value_and_grads(p, x)[2]

    def tree_cell(p, x, z):  # the same map on a dict state
        out = cell(p, x, jnp.concatenate([z["a"], z["b"].reshape(B, -1)], axis=1))
        return {"a": out[:, :2], "b": out[:, 2:].reshape(B, 2, 2)}

    def tree_loss(p, x):
        z0 = {"a": jnp.zeros((B, 2)), "b": jnp.zeros((B, 2, 2))}
        z, _ = fixed_point(tree_cell, p, x, z0, solver="fixed_point", **TIGHT)
        return jnp.sum(per_example_loss(jnp.concatenate([z["a"], z["b"].reshape(B, -1)], 1)))

    assert rel_err(jax.jit(jax.grad(tree_loss, argnums=(0, 1)))(p, x), g_ref) <= 1e-10

    def closure_loss(w, x):  # f closes over a traced weight instead of taking params
        q = dict(p, W=w)
        z, _ = fixed_point(lambda _, x, z: cell(q, x, z), None, x, jnp.zeros((B, D)),
                           solver="fixed_point", **TIGHT)
        return jnp.sum(per_example_loss(z))

    g_w = jax.jit(jax.grad(closure_loss))(p["W"], x)
    np.testing.assert_allclose(g_w, g_ref[0]["W"], rtol=1e-10)

    xs = jnp.stack([x, -x])  # vmap over 2 groups of B examples
    g_groups = jax.jit(jax.vmap(lambda xx: value_and_grads.__wrapped__(p, xx)[2][0]["W"]))(xs)
    np.testing.assert_allclose(g_groups[0], g_ref[0]["W"], rtol=1e-10)
    np.testing.assert_allclose(g_groups[1], value_and_grads(p, -x)[2][0]["W"], rtol=1e-10)


def test_lost_adjoints_are_excluded_from_the_gradient_and_counted():
    # Example 0 has gain 3: Anderson still finds its fixed point (the map is linear), but the
    # plain adjoint iteration u <- g + 3 u overflows. Example 3's input is NaN (z* is lost).
    def grow(p, x, z):
        return p * x * z + 1.0

    x = jnp.array([[3.0], [0.5], [0.2], [jnp.nan]])
    seen = []

    def loss(p):
        z, st = fixed_point(grow, p, x, jnp.zeros((4, 1)), solver="anderson", tol=1e-12,
                            max_steps=50, b_solver="fixed_point", b_tol=1e-12,
                            b_max_steps=2000, on_backward_failure="ignore",
                            backward_callback=seen.append)
        return jnp.sum(jnp.where(st.converged[:, None], z, 0.0)), st

    g, st = jax.jit(jax.grad(loss, has_aux=True))(1.0)
    assert st.converged.tolist() == [True, True, True, False]
    (adjoint,) = seen
    # Both lost adjoints are reported as not converged with NaN residuals, not as a trivially
    # converged solve (the excluded example) or silently (the overflow).
    assert np.asarray(adjoint.converged).tolist() == [False, True, True, False]
    assert np.asarray(adjoint.nonfinite).tolist() == [True, False, False, True]
    assert np.isnan(np.asarray(adjoint.rel_residual)[[0, 3]]).all()
    # The overflowed adjoint does not poison the gradient: the others' exact contributions.
    exact = sum(a / (1 - a) ** 2 for a in (0.5, 0.2))
    assert abs(float(g) - exact) <= 1e-8 * exact


def test_implicit_matches_unrolled_on_the_conv_groupnorm_cell_in_float32():
    """The real DEQ cell (custom-VJP convolutions, GroupNorm, input injection) in float32.

    GroupNorm makes f invariant to the kernels' scale, so the cell is made contractive by
    shrinking its normalised branch (GroupNorm scale 0.5: spectral radius about 0.6 at z*).
    Solver tolerances 1e-6 give gradients within 1e-4 of 150-step unrolled backprop.
    """
    from flax import nnx

    from nevis.equilibrium import spectral_radius
    from nevis.models.deq import DEQCell

    with jax.enable_x64(False):
        cell = DEQCell(8, groups=4, rngs=nnx.Rngs(0))
        cell.scale2[...] = jnp.full(8, 0.5, jnp.float32)
        graphdef, params = nnx.split(cell)

        def f(p, x, z):
            return nnx.merge(graphdef, p)(x, z)

        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((2, 4, 4, 8)), jnp.float32)
        weights = jnp.asarray(rng.standard_normal((4, 4, 8)), jnp.float32)

        def head(z):  # a nonlinear readout
            return jnp.sum(jnp.sin(z) * weights)

        @functools.partial(jax.jit, static_argnames="grad")
        def grads(p, x, grad):
            def loss(p, x):
                z, st = fixed_point(f, p, x, jnp.zeros_like(x), solver="anderson", tol=1e-6,
                                    max_steps=100, b_tol=1e-6, b_max_steps=100, grad=grad)
                return head(z), (z, st)

            return jax.grad(loss, argnums=(0, 1), has_aux=True)(p, x)

        @jax.jit
        def unrolled(p, x):
            def loss(p, x):
                return head(jax.lax.fori_loop(0, 150, lambda _, z: f(p, x, z),
                                              jnp.zeros_like(x)))

            return jax.grad(loss, argnums=(0, 1))(p, x)

        g_imp, (z, st) = grads(params, x, "implicit")
        assert bool(st.converged.all())
        rho = spectral_radius(f, params, x, z, jax.random.key(0), 100)
        assert float(rho.max()) < 0.8
        g_unr = unrolled(params, x)
        assert g_imp[1].dtype == jnp.float32
        assert rel_err(g_imp, g_unr) <= 1e-4
        assert rel_err(g_imp[1], g_unr[1]) <= 1e-4  # the input (x) gradient on its own
        assert rel_err(grads(params, x, "one_step")[0], g_unr) > 1e-2  # the check can tell
