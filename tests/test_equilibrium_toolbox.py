"""nevis.equilibrium toolbox: fixed-point correction, spectral / target weight norms,
variational dropout and the reversible solve, each against a reference computation
(float64, tiny shapes)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nevis import equilibrium as eq

B, D, DX = 3, 5, 2


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def cell(p, x, z):
    return jnp.tanh(z @ p["W"] + x @ p["U"] + p["b"])


def setup(scale: float = 0.8, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((D, D))
    p = {"W": scale * w / np.linalg.norm(w, 2), "U": rng.standard_normal((DX, D)),
         "b": 0.1 * rng.standard_normal(D)}
    return jax.tree.map(jnp.asarray, p), jnp.asarray(rng.standard_normal((B, DX)))


def per_example_loss(z):  # a nonlinear head, one value per example
    return jnp.sum(jnp.sin(z) * jnp.arange(1, D + 1), axis=-1)


def assert_trees_close(a, b, rtol=1e-10, atol=1e-12):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- fixed-point correction


def test_uniform_indices_and_weights():
    assert eq.uniform_indices(30, 3) == (10, 20, 30)
    assert eq.uniform_indices(10, 3) == (4, 7, 10)  # aligned to the end, as torchdeq
    assert eq.uniform_indices(4, 1) == (4,)
    np.testing.assert_allclose(eq.correction_weights(3, 0.8), [0.64, 0.8, 1.0])
    losses = jnp.asarray([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    np.testing.assert_allclose(eq.correction_loss(losses, 0.5), [0.25 + 1.5 + 5, 0.5 + 2 + 6])
    with pytest.raises(ValueError, match="grad must be one of"):
        eq.correction_states(cell, *setup(), jnp.zeros((B, D)), grad="implicit")
    with pytest.raises(ValueError, match="strictly increasing"):
        eq.correction_states(cell, *setup(), jnp.zeros((B, D)), indices=(3, 3))


@pytest.mark.parametrize("grad", ["phantom", "one_step"])
def test_correction_single_final_state_is_the_plain_loss(grad):
    """One state at max_steps: same z, stats and gradient as fixed_point(grad=...)."""
    p, x = setup()
    opts = dict(solver="anderson", max_steps=12, tol=1e-9, phantom_steps=3, phantom_tau=0.6)

    @jax.jit
    def both(p, x):
        def plain(p, x):
            z, st = eq.fixed_point(cell, p, x, jnp.zeros((B, D)), grad=grad, **opts)
            return jnp.sum(per_example_loss(z)), (z, st)

        def corrected(p, x):
            states, st = eq.correction_states(cell, p, x, jnp.zeros((B, D)), n_states=1,
                                              grad=grad, **opts)
            return jnp.sum(eq.correction_loss([per_example_loss(s) for s in states])), (
                states[-1], st)

        return (jax.value_and_grad(plain, (0, 1), has_aux=True)(p, x),
                jax.value_and_grad(corrected, (0, 1), has_aux=True)(p, x))

    ((l0, (z0, st0)), g0), ((l1, (z1, st1)), g1) = both(p, x)
    np.testing.assert_allclose(l1, l0, rtol=1e-13)
    np.testing.assert_allclose(z1, z0, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(st1.steps, st0.steps)
    np.testing.assert_allclose(st1.abs_residual, st0.abs_residual, rtol=1e-10)
    assert_trees_close(g1, g0, rtol=1e-12, atol=1e-14)


def test_correction_states_and_gradients_match_explicit_phantom_steps():
    """Each supervised state is the plain iterate f^k(z0) and carries exactly the gradient
    of `phantom_steps` damped steps from it (written out here), weighted gamma^(n-1-i)."""
    p, x = setup()
    indices, k_ph, tau, gamma = (2, 5, 9), 3, 0.6, 0.7
    opts = dict(solver="fixed_point", max_steps=9, tol=0.0, phantom_steps=k_ph,
                phantom_tau=tau)

    def corrected(p, x):
        states, _ = eq.correction_states(cell, p, x, jnp.zeros((B, D)), indices=indices,
                                         grad="phantom", **opts)
        per_state = [per_example_loss(s) for s in states]
        return jnp.sum(eq.correction_loss(per_state, gamma)), (states, per_state)

    def explicit_state(p, x, k):
        z = jnp.zeros((B, D))
        for _ in range(k):
            z = cell(p, x, z)
        z = jax.lax.stop_gradient(z)
        h = z
        for _ in range(k_ph):
            h = tau * cell(p, x, h) + (1 - tau) * h
        return z + (h - jax.lax.stop_gradient(h))

    @jax.jit
    def per_state_grads(p, x):
        """Gradient of each state's own loss: ours (one solve, one VJP per state) and the
        explicit reference."""
        def state_loss(p, x):
            states, _ = eq.correction_states(cell, p, x, jnp.zeros((B, D)), indices=indices,
                                             grad="phantom", **opts)
            return jnp.stack([jnp.sum(per_example_loss(s)) for s in states])

        ref = [jax.grad(lambda p, x, k=k: jnp.sum(per_example_loss(explicit_state(p, x, k))),
                        (0, 1))(p, x) for k in indices]
        return jax.jacrev(state_loss, (0, 1))(p, x), ref

    (_, (states, _)), g = jax.jit(jax.value_and_grad(corrected, (0, 1), has_aux=True))(p, x)
    jac, refs = per_state_grads(p, x)
    weights = gamma ** np.arange(len(indices))[::-1]
    for i, k in enumerate(indices):
        np.testing.assert_allclose(states[i], explicit_state(p, x, k), rtol=1e-13, atol=1e-14)
        assert_trees_close(jax.tree.map(lambda a, i=i: a[i], jac), refs[i], rtol=1e-11,
                           atol=1e-13)
    weighted_ref = jax.tree.map(lambda *r: sum(w * a for w, a in zip(weights, r, strict=True)),
                                *refs)
    assert_trees_close(g, weighted_ref, rtol=1e-11, atol=1e-13)


def test_correction_trajectory_is_one_continuous_solve():
    """With Anderson (which has history), state k equals fixed_point stopped after k steps:
    the solver is not restarted between supervised states."""
    p, x = setup()
    indices = (3, 6, 10)
    states, stats = jax.jit(lambda p, x: eq.correction_states(
        cell, p, x, jnp.zeros((B, D)), indices=indices, solver="anderson", max_steps=10,
        tol=0.0))(p, x)
    stopped_after = jax.jit(lambda k: eq.fixed_point(  # max_steps may be traced
        cell, p, x, jnp.zeros((B, D)), solver="anderson", max_steps=k, tol=0.0, grad="none")[0])
    for s, k in zip(states, indices, strict=True):
        np.testing.assert_allclose(s, stopped_after(k), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(stats.steps, [10] * B)
    assert int(stats.iterations) == 10


# ---------------------------------------------------------------- spectral / weight norms


def test_spectral_norm_dense_matches_numpy_and_carries_its_vector():
    rng = np.random.default_rng(1)
    w = jnp.asarray(rng.standard_normal((6, 4)))
    ref = np.linalg.norm(np.asarray(w), 2)
    v0 = eq.spectral_norm_init(jax.random.key(0), w)
    sigma, _ = eq.spectral_norm_estimate(w, v0, n_iters=300)
    np.testing.assert_allclose(sigma, ref, rtol=1e-10)

    # One power iteration per call, the vector carried between calls (as across training
    # steps), converges to the same value.
    step = jax.jit(functools.partial(eq.spectral_norm, n_iters=1, target_norm=0.9))
    v = v0
    for _ in range(300):
        w_sn, v, sigma = step(w, v)
    np.testing.assert_allclose(sigma, ref, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(w_sn), 2), 0.9, rtol=1e-10)

    # d sigma / dW = u1 v1^T (top singular pair); the carried vector is a constant.
    grad = jax.grad(lambda k: eq.spectral_norm_estimate(k, v, n_iters=1)[0])(w)
    u_np, _, vt_np = np.linalg.svd(np.asarray(w).T)  # operator x -> x @ W is W^T
    np.testing.assert_allclose(grad, np.outer(vt_np[0], u_np[:, 0]), atol=1e-9)

    # clip: only a norm above the target is reduced.
    big, small = 3.0 * w / ref, 0.5 * w / ref
    clipped_big = eq.spectral_norm(big, v, n_iters=50, target_norm=1.0, clip=True)[0]
    clipped_small = eq.spectral_norm(small, v, n_iters=50, target_norm=1.0, clip=True)[0]
    np.testing.assert_allclose(np.linalg.norm(np.asarray(clipped_big), 2), 1.0, rtol=1e-9)
    np.testing.assert_allclose(clipped_small, small, rtol=1e-12)


def _conv_matrix(kernel, input_shape, padding):
    """Dense matrix of the linear map v -> conv(v) (the exact reference operator)."""
    n = int(np.prod(input_shape))

    def op(flat):
        return eq.norms._conv_operator(kernel, flat.reshape(input_shape), padding).ravel()

    return np.asarray(jax.jacobian(op)(jnp.zeros(n)))


@pytest.mark.parametrize("padding", ["SAME", "VALID", "CIRCULAR"])
def test_spectral_norm_conv_is_the_operator_norm(padding):
    rng = np.random.default_rng(2)
    kernel = jnp.asarray(rng.standard_normal((3, 3, 2, 3)))
    shape = (6, 6, 2)
    ref = np.linalg.norm(_conv_matrix(kernel, shape, padding), 2)
    v0 = eq.spectral_norm_init(jax.random.key(1), kernel, input_shape=shape)
    sigma, _ = jax.jit(lambda k, v: eq.spectral_norm_estimate(k, v, 500, padding))(kernel, v0)
    np.testing.assert_allclose(sigma, ref, rtol=1e-7)
    if padding == "CIRCULAR":
        # Exact: a circular convolution is block-diagonalised by the 2-D DFT; its norm is
        # the largest singular value of the C_in x C_out symbol over all frequencies.
        padded = np.zeros((6, 6, 2, 3))
        padded[:3, :3] = np.asarray(kernel)
        symbol = np.fft.fft2(padded, axes=(0, 1))
        exact = max(np.linalg.norm(symbol[i, j], 2) for i in range(6) for j in range(6))
        np.testing.assert_allclose(sigma, exact, rtol=1e-7)
    # The reshaped-matrix proxy (torch's convention for conv kernels) is a different number.
    matrix_sigma = np.linalg.norm(np.asarray(kernel).reshape(-1, 3), 2)
    assert abs(matrix_sigma - ref) / ref > 1e-3
    w_sn, _, _ = eq.spectral_norm(kernel, v0, n_iters=500, padding=padding, target_norm=0.5)
    np.testing.assert_allclose(np.linalg.norm(_conv_matrix(w_sn, shape, padding), 2), 0.5,
                               rtol=1e-7)


def test_weight_norm_target_and_clip():
    rng = np.random.default_rng(3)
    v = jnp.asarray(rng.standard_normal((3, 3, 2, 4)))  # HWIO: one norm per output channel
    norms = np.linalg.norm(np.asarray(v).reshape(-1, 4), axis=0)

    def out_norms(w):
        return np.linalg.norm(np.asarray(w).reshape(-1, 4), axis=0)

    np.testing.assert_allclose(out_norms(eq.weight_norm_target(v, target_norm=0.7)), 0.7,
                               rtol=1e-10)
    g = jnp.asarray([0.5, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(out_norms(eq.weight_norm_target(v, g)), g, rtol=1e-10)
    bound = float(np.median(norms))
    clipped = eq.weight_norm_target(v, target_norm=bound, clip=True)
    np.testing.assert_allclose(out_norms(clipped), np.minimum(norms, bound), rtol=1e-10)
    np.testing.assert_allclose(eq.weight_norm_target(v, g), eq.weight_norm(v, g), rtol=1e-12)


# ---------------------------------------------------------------- variational dropout


def test_dropout_masks():
    key = jax.random.key(0)
    m1 = eq.dropout_mask_1d(key, (64, 7, 6), 0.25)
    m2 = eq.dropout_mask_2d(key, (64, 4, 5, 6), 0.25)
    assert m1.shape == (64, 1, 6) and m2.shape == (64, 1, 1, 6)
    for m in (m1, m2):
        assert set(np.unique(np.asarray(m)).tolist()) <= {0.0, float(np.float32(1 / 0.75))}
        assert 0.6 < float(jnp.mean(m > 0)) < 0.9  # keep probability 0.75
        assert len({tuple(np.asarray(row).ravel()) for row in m}) > 1  # per-example draws
    np.testing.assert_array_equal(eq.dropout_mask_2d(None, (2, 4, 5, 6), 0.5,
                                                     deterministic=True), 1.0)
    h = jnp.ones((2, 4, 5, 6))
    assert eq.apply_dropout(h, None) is h
    with pytest.raises(ValueError, match="rate"):
        eq.dropout_mask(key, (2, 3), 1.0)
    with pytest.raises(ValueError, match="batch axis"):
        eq.dropout_mask(key, (2, 3), 0.5, shared_axes=(0,))


def _dropout_cell(kind):
    """A contractive cell with channel-wise dropout on its hidden activation; the mask
    travels in x = (inject, mask)."""
    def f(p, xs, z):
        inject, mask = xs
        h = eq.apply_dropout(jnp.einsum("...c,cd->...d", z, p["W"]), mask)
        return jnp.tanh(h + inject)

    shape = (B, 4, D) if kind == "1d" else (B, 3, 3, D)
    make = eq.dropout_mask_1d if kind == "1d" else eq.dropout_mask_2d
    return f, shape, make


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_variational_dropout_keeps_a_fixed_point(kind):
    f, shape, make = _dropout_cell(kind)
    p, _ = setup(scale=0.6)  # contractive even with kept entries scaled by 1 / 0.7
    rng = np.random.default_rng(4)
    inject = jnp.asarray(rng.standard_normal(shape))
    mask = make(jax.random.key(5), shape, 0.3)
    z0 = jnp.zeros(shape)

    z, stats = eq.fixed_point(f, p, (inject, mask), z0, solver="anderson", tol=1e-12,
                              max_steps=100, grad="none")
    assert bool(jnp.all(stats.converged)) and float(jnp.max(stats.rel_residual)) < 1e-12
    # Plain iteration of the same masked map reaches the same point.
    z_iter = jax.jit(lambda z: jax.lax.fori_loop(0, 400, lambda _, v: f(p, (inject, mask), v),
                                                 z))(z0)
    np.testing.assert_allclose(z, z_iter, atol=1e-10)

    # A fresh mask at every step (ordinary dropout) has no fixed point: the step stalls.
    @jax.jit
    def fresh_masks(z):
        def step(v, key):
            v_next = f(p, (inject, make(key, shape, 0.3)), v)
            return v_next, jnp.max(jnp.abs(v_next - v))
        return jax.lax.scan(step, z, jax.random.split(jax.random.key(100), 60))[1]

    assert float(fresh_masks(z0)[-1]) > 1e-2

    # Prediction: deterministic masks make the cell the undropped one.
    ones = make(None, shape, 0.3, deterministic=True)
    np.testing.assert_allclose(f(p, (inject, ones), z), jnp.tanh(
        jnp.einsum("...c,cd->...d", z, p["W"]) + inject))


# ---------------------------------------------------------------- reversible DEQ


def _unrolled_reversible(p, x, z0, beta, steps, tol=None, stop_mode="rel"):
    """The reversible iteration as a plain scan (reference for values and gradients; jax.grad
    stores every step), with the same per-example freezing rule when tol is given."""
    def step(carry, _):
        y, z, active = carry
        y_new = (1 - beta) * y + beta * cell(p, x, z)
        fy = cell(p, x, y_new)
        z_new = (1 - beta) * z + beta * fy
        m = active[:, None]
        if tol is not None:
            r = jnp.linalg.norm(fy - z, axis=-1)
            if stop_mode == "rel":
                r = r / (jnp.linalg.norm(fy, axis=-1) + 1e-9)
            active = active & ~(r < tol)
        return (jnp.where(m, y_new, y), jnp.where(m, z_new, z), active), None

    carry = (z0, z0, jnp.ones(z0.shape[0], bool))
    return jax.lax.scan(step, carry, None, length=steps)[0][1]


@pytest.mark.parametrize("beta,steps", [(0.3, 32), (0.5, 16), (0.8, 8), (1.3, 8)])
def test_reversible_gradients_equal_unrolled(beta, steps):
    p, x = setup()
    z0 = 0.3 * jnp.asarray(np.random.default_rng(6).standard_normal((B, D)))

    def loss_rev(p, x, z0):
        z, _ = eq.reversible_fixed_point(cell, p, x, z0, beta=beta, max_steps=steps)
        return jnp.sum(per_example_loss(z)), z

    def loss_ref(p, x, z0):
        z = _unrolled_reversible(p, x, z0, beta, steps)
        return jnp.sum(per_example_loss(z)), z

    (l_rev, z_rev), g_rev = jax.jit(jax.value_and_grad(loss_rev, (0, 1, 2), has_aux=True))(
        p, x, z0)
    (l_ref, z_ref), g_ref = jax.jit(jax.value_and_grad(loss_ref, (0, 1, 2), has_aux=True))(
        p, x, z0)
    np.testing.assert_allclose(z_rev, z_ref, rtol=1e-13, atol=1e-14)
    assert_trees_close(g_rev, g_ref, rtol=1e-8, atol=1e-10)


def test_reversible_per_example_stopping_and_closures():
    """tol > 0: examples freeze at different steps and are reversed only over their own
    steps; the cell may close over traced weights (hoisted like fixed_point does)."""
    p, x = setup()
    x = x * jnp.asarray([[0.1], [1.0], [3.0]])  # different convergence speeds
    z0 = jnp.zeros((B, D))
    tol, beta = 1e-3, 0.5

    def loss_rev(p, x):
        f = lambda q, xx, z: cell({**q, "W": p["W"]}, xx, z)  # noqa: E731 -- closes over W
        z, st = eq.reversible_fixed_point(f, {"U": p["U"], "b": p["b"]}, x, z0, beta=beta,
                                          max_steps=40, tol=tol)
        return jnp.sum(per_example_loss(z)), (z, st)

    def loss_ref(p, x):
        z = _unrolled_reversible(p, x, z0, beta, 40, tol=tol)
        return jnp.sum(per_example_loss(z)), z

    (_, (z, st)), g = jax.jit(jax.value_and_grad(loss_rev, (0, 1), has_aux=True))(p, x)
    (_, z_ref), g_ref = jax.jit(jax.value_and_grad(loss_ref, (0, 1), has_aux=True))(p, x)
    steps = np.asarray(st.steps)
    assert len(set(steps.tolist())) > 1 and steps.max() < 40
    assert int(st.iterations) == steps.max()
    np.testing.assert_allclose(z, z_ref, rtol=1e-13, atol=1e-14)
    assert_trees_close(g, g_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(st.abs_residual, jnp.linalg.norm(cell(p, x, z) - z, axis=-1),
                               rtol=1e-12)


def test_reversible_long_float32_solve_stays_finite():
    """64 strongly relaxed float32 steps: reconstruction round-off explodes, but the
    gradient stays finite and close to backpropagation through the loop (see the module's
    error table)."""
    p, x = jax.tree.map(lambda a: a.astype(jnp.float32), setup())
    z0 = jnp.zeros((B, D), jnp.float32)

    def grads(solve):
        return jax.jit(jax.grad(lambda p: jnp.sum(per_example_loss(solve(p)))))(p)

    g = grads(lambda p: eq.reversible_fixed_point(cell, p, x, z0, beta=0.8, max_steps=64)[0])
    g_ref = grads(lambda p: _unrolled_reversible(p, x, z0, 0.8, 64))
    flat, flat_ref = (np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)])
                      for t in (g, g_ref))
    assert np.all(np.isfinite(flat))
    assert np.linalg.norm(flat - flat_ref) < 0.05 * np.linalg.norm(flat_ref)


def test_reversible_vmap_and_bad_beta():
    p, x = setup()
    xs = jnp.stack([x, 2.0 * x])

    def solve(xx):
        return eq.reversible_fixed_point(cell, p, xx, jnp.zeros((B, D)), max_steps=6)[0]

    np.testing.assert_allclose(jax.vmap(solve)(xs), jnp.stack([solve(x), solve(2.0 * x)]),
                               rtol=1e-13)
    with pytest.raises(ValueError, match="beta"):
        eq.reversible_fixed_point(cell, p, x, jnp.zeros((B, D)), beta=1.0)


def test_reversible_memory_does_not_grow_with_steps():
    """Compiled temp memory of one gradient: constant in the step count for the reversible
    solve, growing for backpropagation through the unrolled loop."""
    rng = np.random.default_rng(7)
    d, b = 64, 8
    p = {"W": jnp.asarray(0.5 * rng.standard_normal((d, d)) / np.sqrt(d)),
         "U": jnp.asarray(rng.standard_normal((DX, d))), "b": jnp.zeros(d)}
    x, z0 = jnp.asarray(rng.standard_normal((b, DX))), jnp.zeros((b, d))

    def temp_bytes(loss, steps):
        fn = jax.jit(jax.grad(functools.partial(loss, steps=steps)))
        return fn.lower(p).compile().memory_analysis().temp_size_in_bytes

    def rev(p, steps):
        return jnp.sum(eq.reversible_fixed_point(cell, p, x, z0, max_steps=steps)[0])

    def unrolled(p, steps):
        return jnp.sum(_unrolled_reversible(p, x, z0, 0.5, steps))

    assert temp_bytes(rev, 64) == temp_bytes(rev, 8)
    assert temp_bytes(unrolled, 64) > temp_bytes(unrolled, 8) + 50 * 2 * b * d * 8
