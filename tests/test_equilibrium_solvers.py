"""Forward solvers of nevis.equilibrium: stopping, freezing, stats, jit/vmap, pytrees.

Test-side data and checks use numpy; every solve goes through one jitted entry with the
same static options where possible, so XLA compiles each configuration once.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nevis.equilibrium import Anderson, FixedPoint, SolverStats, fixed_point, register_solver
from nevis.equilibrium.solvers import SOLVERS

B, D = 4, 8
STATIC = ("solver", "tol", "max_steps", "grad", "stop_mode", "trace", "return_best")
_solve = jax.jit(fixed_point, static_argnums=(0,), static_argnames=STATIC)


def solve(f, p, x, z0, solver="anderson", tol=1e-8, max_steps=1000, stop_mode="rel",
          trace=False, return_best=False, grad="none"):
    return _solve(f, p, x, z0, solver=solver, tol=tol, max_steps=max_steps, grad=grad,
                  stop_mode=stop_mode, trace=trace, return_best=return_best)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def slow_f(p, x, z):
    """tanh(W z + 0.1 x), W symmetric with eigenvalues 0.95 ... 0.1: contraction rate 0.95."""
    return jnp.tanh(z @ p + 0.1 * x)


def slow_cell(seed=1):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    w = q @ np.diag(np.linspace(0.95, 0.1, D)) @ q.T
    return slow_f, jnp.asarray(w), jnp.asarray(rng.standard_normal((B, D)))


def residuals(p, x, z):  # numpy twin of the library's definition
    p, x, z = (np.asarray(a) for a in (p, x, z))
    fz = np.tanh(z @ p + 0.1 * x)
    a = np.linalg.norm(fz - z, axis=-1)
    return a, a / (np.linalg.norm(fz, axis=-1) + 1e-9)


def zeros(b=B):
    return jnp.zeros((b, D))


def test_anderson_and_broyden_need_fewer_steps_than_plain_iteration():
    f, p, x = slow_cell()
    steps = {}
    for name in ("fixed_point", "anderson", "broyden"):
        z, st = solve(f, p, x, zeros(), solver=name)
        assert bool(st.converged.all()), name
        np.testing.assert_array_less(residuals(p, x, z)[1], 1e-8)
        steps[name] = int(st.steps.max())
    assert steps["fixed_point"] > 100
    assert steps["anderson"] < 0.5 * steps["fixed_point"]
    assert steps["broyden"] < 0.5 * steps["fixed_point"]


def test_stats_describe_the_returned_final_iterate():
    f, p, x = slow_cell()
    x = x * np.array([[1.0], [10.0], [0.1], [3.0]])  # different scales: abs != rel
    for mode in ("abs", "rel"):
        z, st = solve(f, p, x, zeros(), solver="fixed_point", stop_mode=mode, tol=1e-6)
        a, r = residuals(p, x, z)
        np.testing.assert_allclose(st.abs_residual, a, rtol=1e-6)
        np.testing.assert_allclose(st.rel_residual, r, rtol=1e-6)
        crit = a if mode == "abs" else r
        np.testing.assert_array_less(crit, 1e-6)
        assert bool(st.converged.all())
    assert not np.allclose(st.abs_residual, st.rel_residual)


def test_per_example_freezing_makes_results_batch_independent():
    f, p, x = slow_cell()
    _, _, other = slow_cell(seed=2)
    x = x.at[0].multiply(30.0)  # saturated tanh: example 0 converges fastest
    x2 = x.at[1:].set(0.3 * other[1:])  # same example 0, different (slower) companions
    for name in ("fixed_point", "anderson", "broyden"):
        z, st = solve(f, p, x, zeros(), solver=name)
        z2, st2 = solve(f, p, x2, zeros(), solver=name)
        assert int(st.steps[0]) == int(st2.steps[0]) < int(st2.steps.max()), name
        assert (st.steps[1:] != st2.steps[1:]).any()
        np.testing.assert_allclose(z2[0], z[0], rtol=0, atol=1e-13)
    x3 = x.at[0].set(0.0)  # z* = 0 = z0: stops at step 0 while the others go on
    _, st3 = solve(f, p, x3, zeros(), solver="anderson")
    assert int(st3.steps[0]) == 0 and int(st3.steps[1:].min()) > 0


def test_max_steps_and_unreachable_tolerance_report_not_converged():
    f, p, x = slow_cell()
    _, st = solve(f, p, x, zeros(), solver="fixed_point", max_steps=7)
    assert st.steps.tolist() == [7] * B
    assert not bool(st.converged.any())


def test_nan_and_divergence_give_converged_false_without_touching_others():
    f, p, x = slow_cell()
    z, st = solve(f, p, x.at[1].set(jnp.nan), zeros(), solver="anderson")
    assert st.converged.tolist() == [True, False, True, True]
    assert int(st.steps[1]) == 0  # a non-finite example stops at once
    assert np.isfinite(np.asarray(z)[[0, 2, 3]]).all()

    def grow(p, x, z):  # gain x: example 0 diverges to inf
        return x * z + 1.0

    _, st = solve(grow, None, jnp.array([[3.0], [0.5], [0.2]]), jnp.zeros((3, 1)),
                  solver="fixed_point", max_steps=2000)
    assert st.converged.tolist() == [False, True, True]
    assert int(st.steps[0]) < 2000  # stopped once it overflowed


def flip(p, x, z):  # 0 is unstable (slope -3); the orbit grows to a 2-cycle
    return -jnp.tanh(3.0 * z) + x


def test_final_iterate_is_returned_unless_best_is_requested():
    x, z0 = jnp.zeros((2, 3)), jnp.full((2, 3), 0.05)
    _, final = solve(flip, None, x, z0, solver="fixed_point", max_steps=20, trace=True)
    _, best = solve(flip, None, x, z0, solver="fixed_point", max_steps=20, return_best=True)
    trace = np.asarray(final.trace)
    assert trace.shape == (2, 21)
    np.testing.assert_allclose(final.rel_residual, trace[:, -1])
    np.testing.assert_allclose(best.rel_residual, trace.min(axis=1))
    assert bool((best.rel_residual < final.rel_residual).all())


def test_trace_records_each_step_and_nan_after_the_loop():
    f, p, x = slow_cell()
    _, st = solve(f, p, x, zeros(), solver="anderson", max_steps=100, trace=True)
    n, trace = int(st.steps.max()), np.asarray(st.trace)
    assert trace.shape == (B, 101)
    assert np.isfinite(trace[:, : n + 1]).all() and np.isnan(trace[:, n + 1:]).all()
    np.testing.assert_allclose(trace[:, n], st.rel_residual)
    _, a0 = residuals(p, x, zeros())
    np.testing.assert_allclose(trace[:, 0], a0, rtol=1e-9)


def test_jit_vmap_and_pytree_state():
    f, p, x = slow_cell()

    def tree_cell(p, x, z):
        flat = jnp.concatenate([z["a"], z["b"].reshape(z["b"].shape[0], -1)], axis=1)
        out = f(p, x, flat)
        return {"a": out[:, :4], "b": out[:, 4:].reshape(-1, 2, 2)}

    z0 = {"a": jnp.zeros((B, 4)), "b": jnp.zeros((B, 2, 2))}
    zt, st = solve(tree_cell, p, x, z0)
    assert isinstance(st, SolverStats) and bool(st.converged.all())
    zf, stf = solve(f, p, x, zeros())
    np.testing.assert_allclose(np.asarray(zt["b"]).reshape(B, 4), zf[:, 4:], atol=1e-12)
    np.testing.assert_array_equal(st.steps, stf.steps)

    xs = jnp.stack([x, 2 * x, -x])  # vmap over 3 groups of B examples
    zv, sv = jax.jit(jax.vmap(lambda xx: fixed_point(f, p, xx, zeros(), tol=1e-8,
                                                     max_steps=1000, grad="none")))(xs)
    assert sv.steps.shape == (3, B)
    for i in range(3):
        zi, si = solve(f, p, xs[i], zeros())
        np.testing.assert_allclose(zv[i], zi, atol=1e-12)
        np.testing.assert_array_equal(sv.steps[i], si.steps)


def test_solver_registry():
    assert {"fixed_point", "anderson", "broyden"} <= set(SOLVERS)
    with pytest.raises(ValueError, match="unknown solver"):
        fixed_point(lambda p, x, z: z, None, None, jnp.zeros((1, 1)), solver="nope")
    register_solver("half_damped", lambda: FixedPoint(tau=0.5))
    f, p, x = slow_cell()
    z_half, st_half = solve(f, p, x, zeros(), solver="half_damped")
    _, st_inst = solve(f, p, x, zeros(), solver=FixedPoint(tau=0.5))
    _, st_full = solve(f, p, x, zeros(), solver="fixed_point")
    np.testing.assert_array_equal(st_half.steps, st_inst.steps)
    assert bool((st_half.steps != st_full.steps).any())
    np.testing.assert_array_less(residuals(p, x, z_half)[1], 1e-8)
    _, st_m1 = solve(f, p, x, zeros(), solver=Anderson(m=1))
    np.testing.assert_array_equal(st_m1.steps, st_full.steps)  # AA with m = 1 is plain


def test_iterations_count_what_the_batch_loop_ran():
    # Examples converge after different numbers of steps; the loop runs until the slowest one
    # stops, and that (not the mean step count) is what the solve cost.
    f, p, x = slow_cell()
    x = x * np.array([[0.01], [1.0], [3.0], [10.0]])
    for solver in ("fixed_point", "anderson"):
        _, st = solve(f, p, x, zeros(), solver=solver, tol=1e-6)
        steps = np.asarray(st.steps)
        assert len(set(steps.tolist())) > 1, solver
        assert int(st.iterations) == steps.max() > steps.mean()
        _, capped = solve(f, p, x, zeros(), solver=solver, tol=1e-6, max_steps=3)
        assert int(capped.iterations) == 3
    _, done = solve(f, p, x, zeros(), tol=1e3)  # every example converged at z0: no iteration
    assert int(done.iterations) == 0 and np.asarray(done.steps).max() == 0
    _, unrolled = jax.jit(lambda p, x: fixed_point(f, p, x, zeros(), solver="fixed_point",
                                                   tol=1e-6, max_steps=7, grad="unrolled"))(p, x)
    assert int(unrolled.iterations) == 7  # a scan always runs its full length
