"""Upward generalisation: task generators, recurrent cells, the solver loops, AA, the CLI.

The generators are checked against independent computations (a direct running sum; a maze's
open pixels form a tree and the label is a simple start-to-goal path in it). The evaluation
loop is checked against `nevis.equilibrium.fixed_budget` and `asymptotic_alignment`, and AA is
checked on cells with known answers (contracting: 1, bistable: about 0) through the same code
the experiments run.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from nevis import equilibrium as eq
from nevis.data import algorithmic
from nevis.upward import evaluate, run, train


def tiny_config(**overrides):
    """The prefix-sum experiment shrunk to seconds: 8-bit strings, width 16."""
    base = run.load_experiment("prefix_sums")
    values = {
        "train_size": 8, "steps": 300, "max_seconds": 0.0, "log_every": 100,
        "model.width": 16, "model.head_widths": (16,), "solver.max_steps": 10,
        "solver.backward_max_steps": 10, "optimizer.learning_rate": 3e-3,
        "eval.sizes": (8,), "eval.num_examples": 64, "eval.batch_size": 32,
        "eval.aa_examples": 32, "eval.budgets": (1, 5, 10, 30),
    }
    values.update(overrides)
    return run.apply_overrides(base, values)


def tanh_config(scale: float, **overrides):
    """The diagnostic cell z <- tanh(scale * z + x) in place of the recall model."""
    config = tiny_config(**overrides)
    config.model = ConfigDict({"name": "tanh", "scale": scale, "width": 8})
    return config


# ---------------------------------------------------------------- generators


def test_prefix_sum_labels_are_running_parities():
    bits, labels = algorithmic.prefix_sums(np.random.default_rng(0), 50, 40)
    assert bits.shape == labels.shape == (50, 40)
    for b, y in zip(bits, labels, strict=True):
        total = 0
        for i in range(40):
            total += int(b[i])
            assert y[i] == total % 2
    assert 0.4 < bits.mean() < 0.6  # fair bits


def _neighbours(mask: np.ndarray, r: int, c: int):
    n = mask.shape[0]
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        if 0 <= r + dr < n and 0 <= c + dc < n and mask[r + dr, c + dc]:
            yield r + dr, c + dc


def _connected(mask: np.ndarray) -> bool:
    nodes = list(zip(*np.nonzero(mask), strict=True))
    seen, todo = {nodes[0]}, [nodes[0]]
    while todo:
        for nb in _neighbours(mask, *todo.pop()):
            if nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return len(seen) == len(nodes)


@pytest.mark.parametrize("size", [5, 9, 13])
def test_every_maze_has_exactly_one_path_and_the_label_marks_it(size):
    inputs, labels = algorithmic.mazes(np.random.default_rng(size), 30, size)
    assert inputs.shape == (30, size, size, 3) and labels.shape == (30, size, size)
    for x, y in zip(inputs, labels, strict=True):
        open_ = x[..., 0].astype(bool)
        # A tree (connected, edges = nodes - 1): exactly one simple path between two cells.
        edges = sum(len(list(_neighbours(open_, r, c))) for r, c in zip(*np.nonzero(open_),
                                                                         strict=True)) // 2
        assert _connected(open_) and edges == open_.sum() - 1
        assert not open_[0].any() and not open_[:, 0].any()  # walled border
        start = tuple(int(v) for v in np.argwhere(x[..., 1])[0])
        goal = tuple(int(v) for v in np.argwhere(x[..., 2])[0])
        assert x[..., 1].sum() == x[..., 2].sum() == 1 and start != goal
        path = y.astype(bool)
        assert (path <= open_).all() and path[start] and path[goal]
        # The label is a simple path from start to goal: ends of degree 1, inner pixels 2.
        assert _connected(path)
        for r, c in zip(*np.nonzero(path), strict=True):
            degree = len(list(_neighbours(path, r, c)))
            assert degree == (1 if (r, c) in (start, goal) else 2)


def test_generators_reject_bad_sizes_and_names():
    with pytest.raises(ValueError, match="odd"):
        algorithmic.mazes(np.random.default_rng(0), 1, 10)
    with pytest.raises(ValueError, match="valid choices: prefix_sums, mazes"):
        algorithmic.generate("sudoku", np.random.default_rng(0), 1, 9)
    with pytest.raises(ValueError, match="length"):
        algorithmic.prefix_sums(np.random.default_rng(0), 1, 0)


# ---------------------------------------------------------------- solver loops


@pytest.mark.parametrize("solver, cell", [("fixed_point", "tanh"), ("anderson", "recall")])
def test_trajectory_and_aa_match_the_library(solver, cell):
    """The evaluation loop's state after b updates is `fixed_budget`'s, and its AA is
    `asymptotic_alignment`'s, for both AA modes (an untrained recall cell with Anderson, whose
    history must carry across budgets; a slowly contracting tanh cell, which compiles faster,
    with the fixed-point solver)."""
    overrides = {"solver.name": solver, "eval.budgets": (1, 4, 9), "model.width": 8}
    config = tanh_config(0.9, **overrides) if cell == "tanh" else tiny_config(**overrides)
    parts, params = train.Parts.of(train.build_model(config))
    ev = evaluate.Evaluator(parts, config)
    inputs, _ = algorithmic.generate("prefix_sums", np.random.default_rng(0), 6, 12)
    x, v, fv, aux = ev.start(params, inputs)
    options = train.solver_options(config)
    shape = parts.model(params).state_like(x).shape
    cell = parts.cell

    @functools.partial(jax.jit, static_argnums=(2,))
    def library(p, z, b, key):  # one compiled program per budget, not op-by-op
        z_lib = eq.fixed_budget(cell, p, x, jnp.zeros(shape), b, solver, options)
        aa = [eq.asymptotic_alignment(cell, p, x, z, mode=mode, steps=b, solver=solver,
                                      solver_options=options,
                                      key=key if mode == "gaussian" else None)
              for mode in config.eval.aa_modes]
        return z_lib, aa

    done = 0
    for b in (1, 4, 9):
        v, fv, aux, _ = ev.advance(params, x, v, fv, aux, np.int32(done), np.int32(b - done))
        done = b
        key = jax.random.key(b)
        z_lib, aa_lib = library(params["cell"], v.reshape(shape), b, key)
        np.testing.assert_allclose(v.reshape(shape), z_lib, rtol=1e-5, atol=1e-6)
        ours = ev.align(params, x, v, np.int32(b), key)
        for mine, lib in zip(ours, aa_lib, strict=True):
            np.testing.assert_allclose(mine, lib, rtol=1e-5, atol=1e-6)


def test_early_exit_only_skips_exactly_repeating_states():
    """A contracting tanh cell ends in a last-bit two-cycle in float32; the loop stops once
    every state repeats and returns what `fixed_budget` returns after the full budget, for an
    even and an odd number of remaining updates."""
    config = tanh_config(0.5, **{"eval.budgets": (1, 500)})
    parts, params = train.Parts.of(train.build_model(config))
    ev = evaluate.Evaluator(parts, config)
    inputs, _ = algorithmic.generate("prefix_sums", np.random.default_rng(1), 4, 8)
    shape = None
    library = []
    for budget in (400, 401):
        x, v, fv, aux = ev.start(params, inputs)
        v, fv, aux, ran = ev.advance(params, x, v, fv, aux, np.int32(0), np.int32(budget))
        assert 0 < int(ran) < 300
        shape = parts.model(params).state_like(x).shape
        z_lib = eq.fixed_budget(parts.cell, params["cell"], x, jnp.zeros(shape), budget)
        np.testing.assert_array_equal(v.reshape(shape), z_lib)
        library.append(np.asarray(z_lib))
    assert not np.array_equal(*library)  # a real two-cycle: the parity matters


def test_unrolled_random_budget_matches_the_library_unrolled_gradient():
    """`unrolled_budget` (a traced budget inside a static scan) gives the value and the
    parameter gradient of the library's unrolled mode run for that budget (a tanh cell with
    a trainable scale, which compiles fast)."""
    config = tanh_config(0.9)
    parts, params = train.Parts.of(train.build_model(config))
    inputs, _ = algorithmic.generate("prefix_sums", np.random.default_rng(2), 4, 8)
    x = parts.model(params).inject(inputs)
    z0 = 0.5 * jax.random.normal(jax.random.key(0), x.shape)
    solver = eq.FixedPoint()

    def ours(p, budget):
        z, _ = train.unrolled_budget(parts.cell, p, x, z0, solver, 6, budget)
        return jnp.sum(z ** 2)

    def library(p, budget):
        z, _ = eq.fixed_point(parts.cell, p, x, z0, solver="fixed_point", tol=0.0,
                              max_steps=budget, grad="unrolled")
        return jnp.sum(z ** 2)

    ours_grad = jax.jit(jax.value_and_grad(ours))
    for budget in (6, 4):
        v1, g1 = ours_grad(params["cell"], jnp.int32(budget))
        v2, g2 = jax.jit(jax.value_and_grad(library), static_argnums=1)(params["cell"], budget)
        assert float(jax.tree.leaves(g1)[0]) != 0.0
        np.testing.assert_allclose(v1, v2, rtol=1e-5)
        for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- AA with known answers


@pytest.mark.parametrize("scale, expect", [(0.5, "one"), (3.0, "two")])
def test_aa_of_contracting_and_bistable_cells(scale, expect):
    """Through `evaluate.evaluate` (the experiments' path): a contracting tanh cell has AA
    ≈ 1 with both partners; a bistable one keeps its start's signs, so AA < 0.5."""
    config = tanh_config(scale, **{"eval.budgets": (10, 100), "eval.sizes": (16,)})
    parts, params = train.Parts.of(train.build_model(config))
    (result,) = evaluate.evaluate(parts, params, config, log=None)
    last = result.metrics[-1]
    assert result.arrays["aa"].shape == (2, 32)  # eval.aa_examples
    if expect == "one":
        assert last["aa"] > 0.999 and last["aa_gaussian"] > 0.999
    else:
        assert last["aa"] < 0.5 and last["aa_gaussian"] < 0.5
    assert last["limit_cycle"] == 0.0


# ---------------------------------------------------------------- training


def test_a_small_model_learns_8_bit_prefix_sums_in_seconds():
    config = tiny_config()
    result = train.train(config, log=None)
    assert result.info["steps_run"] == 300 and result.info["skipped_steps"] == 0
    (size8,) = evaluate.evaluate(result.parts, result.params, config, log=None)
    by_budget = {m["budget"]: m for m in size8.metrics}
    # 8 bits need at least 3 iterations (3 convolutions of width 3 per iteration).
    assert by_budget[1]["exact_accuracy"] < 0.5
    assert by_budget[10]["exact_accuracy"] >= 0.95, by_budget[10]


@pytest.mark.parametrize("regime", ["unrolled_jitter", "anderson_implicit", "phantom_mixed",
                                   "jacobian_reg"])
def test_regimes_take_finite_training_steps(regime):
    """Each gradient mode, solver and intervention of the regimes trains (random budget with
    unrolled gradients, implicit with Anderson, phantom, Jacobian penalty)."""
    config = run.model_configs(tiny_config(), [regime], [0],
                               {"steps": 3, "log_every": 1, "model.width": 8})[0]
    result = train.train(config, log=None)
    assert result.info["skipped_steps"] == 0
    assert np.isfinite(result.info["final"]["loss"])


# ---------------------------------------------------------------- configuration errors


def test_bad_settings_fail_with_one_line_naming_the_choices(capsys):
    assert run.main(["--experiment=prefix_sums", "--regimes=bogus"]) == 2
    assert "unknown regime 'bogus'; valid choices: unrolled_mixed" in capsys.readouterr().err
    assert run.main(["--experiment=prefix_sums", "--config.solver.bogus=1"]) == 2
    assert "solver has" in capsys.readouterr().err
    assert run.main(["--experiment=prefix_sums", "--config.solver.grad=magic"]) == 2
    assert "solver.grad='magic'; valid choices: implicit" in capsys.readouterr().err
    assert run.main(["--experiment=deq"]) == 2
    assert "python -m nevis.run --learner=deq" in capsys.readouterr().err
    assert run.main(["--experiment=mazes", "--config.train_size=10"]) == 2
    assert "odd" in capsys.readouterr().err
    assert run.main(["--bogus=1"]) == 2
    assert "valid flags" in capsys.readouterr().err
    with pytest.raises(ValueError, match="valid choices: recall, tanh"):
        train.build_model(run.apply_overrides(tiny_config(), {"model.name": "mlp"}))


def test_overrides_parse_to_the_existing_types():
    config = run.apply_overrides(tiny_config(), {"eval.budgets": "1,2,300", "steps": "7",
                                                 "optimizer.learning_rate": "0.01",
                                                 "solver.init": "zeros"})
    assert config.eval.budgets == (1, 2, 300) and config.steps == 7
    assert config.optimizer.learning_rate == 0.01 and config.solver.init == "zeros"
    assert dataclasses.is_dataclass(train.Parts)
