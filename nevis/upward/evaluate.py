"""Test-time iterations 1 … 1000 on inputs larger than training: accuracy, AA, residuals.

For each test size the model is iterated from zeros with the training solver for a fixed
number of updates (no tolerance, no best iterate), and read out at every budget of
`eval.budgets` along ONE trajectory: the state after b updates is exactly what
`nevis.equilibrium.fixed_budget(..., steps=b)` returns (a test checks this), without paying
for 1 + 2 + … + 1000 updates. At each budget, per example:

- exact: every element right (the whole string / maze); element: fraction right;
- residual: ||f(z) − z|| / (||f(z)|| + 1e-9) at the state read out;
- on the first `eval.aa_examples` examples, at every budget of `eval.aa_budgets` (default:
  all; each costs two re-solves of that many updates), the asymptotic alignment (AA), as
  `nevis.equilibrium.asymptotic_alignment` computes it: the state re-solved for b updates
  from another example's state (derangement, roll by one within the batch) or from N(0, 1)
  noise (gaussian), compared with the state by cosine;

and, after the largest budget, the two-cycle flag of `nevis.equilibrium.detect_limit_cycle`.
Test data is drawn from `eval.seed` and the size, never from the model seed, so every model
of a population sees the same test inputs. Batches are padded to a fixed size so each
function compiles once per input size.

Cost: with the fixed-point solver a batch whose every state repeats bit for bit (period one,
f(z) == z, or period two, a last-bit oscillation) stops iterating, since later budgets would
only repeat those states exactly; the library's
`fixed_budget` has no such exit, so the trajectory and the AA re-solves run in this module's
loop over the library's solver updates (`Solver.propose`), checked against
`fixed_budget` and `asymptotic_alignment` in tests/test_upward.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from nevis import equilibrium as eq
from nevis.data import algorithmic
from nevis.upward.train import Parts, solver_options

AA_MODES = ("derangement", "gaussian")


def test_data(config: ConfigDict, size: int, num: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The fixed test set of `size` (seeded by eval.seed and the size only)."""
    rng = np.random.default_rng([config.eval.seed, size, 7])
    return algorithmic.generate(config.task, rng, num or config.eval.num_examples, size)


def check_budgets(budgets: Sequence[int]) -> tuple[int, ...]:
    budgets = tuple(int(b) for b in budgets)
    if not budgets or any(b < 1 for b in budgets) or list(budgets) != sorted(set(budgets)):
        raise ValueError(f"eval.budgets must be increasing positive integers, got {budgets}.")
    return budgets


@dataclasses.dataclass
class SizeResult:
    """Per-example arrays ([K budgets, N examples] unless noted) and per-budget means."""

    size: int
    arrays: dict[str, np.ndarray]
    metrics: list[dict[str, Any]]
    seconds: float


class Evaluator:
    """Jitted pieces of the test-time trajectory for one model structure and solver."""

    def __init__(self, parts: Parts, config: ConfigDict):
        self.parts, self.config = parts, config
        self.name, self.options = config.solver.name, solver_options(config)
        self.solver = eq.SOLVERS[self.name](**self.options)
        self.modes = tuple(config.eval.aa_modes)
        for mode in self.modes:
            if mode not in AA_MODES:
                raise ValueError(f"eval.aa_modes has {mode!r}; valid choices: "
                                 f"{', '.join(AA_MODES)}.")
        self.start = jax.jit(self._start)
        self.advance = jax.jit(self._advance)
        self.measure = jax.jit(self._measure)
        self.align = jax.jit(self._align)
        self.cycle = jax.jit(self._cycle)

    def _g(self, params, x, shape) -> Callable:
        def g(v):
            return self.parts.cell(params["cell"], x, v.reshape(shape)).reshape(shape[0], -1)
        return g

    def _start(self, params, inputs):
        model = self.parts.model(params)
        x = model.inject(inputs)
        like = model.state_like(x)
        v0 = jnp.zeros((like.shape[0], int(np.prod(like.shape[1:]))), like.dtype)
        f0 = self._g(params, x, like.shape)(v0)
        return x, v0, f0, self.solver.init(v0, f0)

    def _shape(self, params, x):
        return self.parts.model(params).state_like(x).shape

    def _advance(self, params, x, v, fv, aux, k0, n):
        """Updates k0 … k0 + n − 1 of the solver; returns (v, fv, aux, updates computed).

        As in the library's driver, an example whose residual is not finite is frozen.
        With the fixed-point solver (damped or not) the update is a fixed map of the state,
        so once every example of the batch repeats itself bit for bit with period one
        (f(z) == z) or two (a last-bit oscillation, common in float32) the loop stops and
        returns the state the remaining updates would reach exactly (the saving is reported
        as `iterations_computed`). Other solvers carry a history and always run all n.
        """
        g = self._g(params, x, self._shape(params, x))
        exit_early = self.name == "fixed_point"

        def live(v, fv):
            return jnp.isfinite(jnp.linalg.norm(fv - v, axis=-1))

        def body(c):
            k, pv, pfv, v, fv, aux, _, _ = c
            nv, aux = self.solver.propose(v, fv, aux, k)
            nf = g(nv)
            on = live(v, fv)[:, None]
            nv, nf = jnp.where(on, nv, v), jnp.where(on, nf, fv)
            settled = (~live(nv, nf)) | jnp.all(nv == pv, axis=-1)
            stop = jnp.all(settled) & exit_early & (k > k0)
            return k + 1, v, fv, nv, nf, aux, stop, jnp.asarray(True)

        def cond(c):
            return (c[0] < k0 + n) & ~c[6]

        still = exit_early & jnp.all((fv == v) | ~live(v, fv)[:, None])
        init = (k0, v, fv, v, fv, aux, still, jnp.asarray(False))
        k, pv, pfv, v, fv, aux, stop, _ = jax.lax.while_loop(cond, body, init)
        # Stopped on a period-two pattern: after an odd number of further updates the
        # state is the other one of the pair (for period one the two are equal).
        odd = stop & ((k0 + n - k) % 2 == 1)
        v, fv = jnp.where(odd, pv, v), jnp.where(odd, pfv, fv)
        return v, fv, aux, k - k0

    def _measure(self, params, x, v, fv, labels):
        model = self.parts.model(params)
        logits = model.readout(v.reshape(self._shape(params, x)))
        finite = jnp.all(jnp.isfinite(logits), axis=-1)
        correct = (logits.argmax(-1) == labels) & finite
        axes = tuple(range(1, correct.ndim))
        residual = (jnp.linalg.norm(fv - v, axis=-1)
                    / (jnp.linalg.norm(fv, axis=-1) + 1e-9))
        return correct.all(axis=axes), correct.mean(axis=axes), residual

    def _align(self, params, x, v, steps, key):
        """AA of the states v after `steps` updates, for every mode: the state re-solved for
        `steps` updates from the partner's state (derangement: the next example's, as
        `nevis.equilibrium.asymptotic_alignment` without a key) or from N(0, 1) noise drawn
        as that function does, compared by `nevis.equilibrium.cosine`. Same numbers as the
        library function (a test checks it), with `_advance`'s early exit."""
        g = self._g(params, x, self._shape(params, x))
        out = []
        for mode in self.modes:
            if mode == "derangement":
                start = jnp.roll(v, -1, axis=0)
            else:
                start = jax.random.normal(key, (v.size,), v.dtype).reshape(v.shape)
            f0 = g(start)
            end = self._advance(params, x, start, f0, self.solver.init(start, f0),
                                jnp.int32(0), steps)[0]
            out.append(eq.cosine(v, end))
        return out

    def _cycle(self, params, x, v):
        return eq.detect_limit_cycle(self.parts.cell, params["cell"], x,
                                     v.reshape(self._shape(params, x)))

    def run(self, params, inputs: np.ndarray, labels: np.ndarray, budgets: Sequence[int],
            batch_size: int, aa_examples: int, seed: int = 0,
            aa_budgets: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """Per-example arrays over `budgets` for every example of (inputs, labels).

        AA is measured at `aa_budgets` (default: every budget; NaN at the others)."""
        budgets = check_budgets(budgets)
        aa_at = set(budgets if aa_budgets is None else aa_budgets)
        if not aa_at <= set(budgets) or budgets[-1] not in aa_at:
            raise ValueError(f"eval.aa_budgets={tuple(sorted(aa_at))} must be budgets of "
                             f"eval.budgets and include the largest, {budgets[-1]}.")
        n = len(inputs)
        bs = min(batch_size, n)
        pad = -n % bs
        if pad:
            inputs = np.concatenate([inputs, inputs[:pad]])
            labels = np.concatenate([labels, labels[:pad]])
        out: dict[str, list] = {k: [] for k in ("exact", "element", "residual", "cycle")}
        computed = 0
        aa: dict[str, list] = {m: [] for m in self.modes}
        key = jax.random.key(seed)
        for start in range(0, len(inputs), bs):
            xb, yb = inputs[start:start + bs], labels[start:start + bs]
            with_aa = start < aa_examples and len(self.modes) > 0 and bs > 1
            x, v, fv, aux = self.start(params, xb)
            rows = {k: [] for k in ("exact", "element", "residual")}
            aa_rows: dict[str, list] = {m: [] for m in self.modes}
            done = 0
            for b in budgets:
                v, fv, aux, ran = self.advance(params, x, v, fv, aux, np.int32(done),
                                               np.int32(b - done))
                computed += int(ran) * len(xb)
                done = b
                for k, arr in zip(("exact", "element", "residual"),
                                  self.measure(params, x, v, fv, yb), strict=True):
                    rows[k].append(np.asarray(arr))
                if with_aa:
                    key, sub = jax.random.split(key)
                    if b in aa_at:
                        scores = [np.asarray(a) for a in
                                  self.align(params, x, v, np.int32(b), sub)]
                    else:
                        scores = [np.full(len(xb), np.nan, np.float32)] * len(self.modes)
                    for mode, arr in zip(self.modes, scores, strict=True):
                        aa_rows[mode].append(arr)
            out["cycle"].append(np.asarray(self.cycle(params, x, v)))
            for k, r in rows.items():
                out[k].append(np.stack(r))
            if with_aa:
                for mode in self.modes:
                    aa[mode].append(np.stack(aa_rows[mode]))
        arrays = {
            "budgets": np.asarray(budgets),
            "index": np.arange(n),
            "exact": np.concatenate(out["exact"], axis=1)[:, :n],
            "element": np.concatenate(out["element"], axis=1)[:, :n].astype(np.float32),
            "residual": np.concatenate(out["residual"], axis=1)[:, :n].astype(np.float32),
            "limit_cycle": np.concatenate(out["cycle"])[:n],
            # example-updates actually run, over (padded) examples x largest budget
            "iterations_computed": np.asarray(computed / (len(inputs) * budgets[-1])),
        }
        num_aa = min(n, sum(a.shape[1] for a in aa[self.modes[0]])) if self.modes else 0
        for mode in self.modes:
            name = "aa" if mode == "derangement" else f"aa_{mode}"
            arrays[name] = (np.concatenate(aa[mode], axis=1)[:, :num_aa].astype(np.float32)
                            if aa[mode] else np.zeros((len(budgets), 0), np.float32))
        return arrays


def summarise(arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per-budget means of the per-example arrays (AA over the examples that have it)."""
    rows = []
    exact, element, residual = arrays["exact"], arrays["element"], arrays["residual"]
    last = len(arrays["budgets"]) - 1
    for i, b in enumerate(arrays["budgets"]):
        finite = np.isfinite(residual[i])
        row = {
            "budget": int(b),
            "exact_accuracy": float(exact[i].mean()),
            "element_accuracy": float(element[i].mean()),
            "residual_mean": float(residual[i][finite].mean()) if finite.any() else None,
            "residual_median": float(np.median(residual[i][finite])) if finite.any() else None,
            "non_finite": float(1 - finite.mean()),
            "num_examples": int(exact.shape[1]),
        }
        for name in ("aa", "aa_gaussian"):
            if name in arrays and arrays[name].shape[1]:
                vals = arrays[name][i]
                ok = np.isfinite(vals)
                row[name] = float(vals[ok].mean()) if ok.any() else None
                row[f"num_{name}_examples"] = int(vals.size)
        if i == last:
            row["limit_cycle"] = float(arrays["limit_cycle"].mean())
            if "iterations_computed" in arrays:
                row["iterations_computed"] = float(arrays["iterations_computed"])
        rows.append(row)
    return rows


_EVALUATORS: dict[tuple, Evaluator] = {}


def evaluator_for(parts: Parts, config: ConfigDict) -> Evaluator:
    """An Evaluator shared by models with the same structure and solver (compiled once)."""
    key = (parts.graphdef, config.solver.name, tuple(sorted(solver_options(config).items())),
           tuple(config.eval.aa_modes))
    if key not in _EVALUATORS:
        _EVALUATORS.clear()
        _EVALUATORS[key] = Evaluator(parts, config)
    return _EVALUATORS[key]


def evaluate(parts: Parts, params, config: ConfigDict, sizes: Sequence[int] | None = None,
             log: Callable[[str], None] | None = print,
             evaluator: Evaluator | None = None) -> list[SizeResult]:
    """Evaluates `params` on every test size of `config.eval` (or `sizes`)."""
    ev = config.eval
    evaluator = evaluator or evaluator_for(parts, config)
    results = []
    for size in sizes or ev.sizes:
        start = time.perf_counter()
        inputs, labels = test_data(config, size)
        arrays = evaluator.run(params, inputs, labels, ev.budgets, ev.batch_size,
                               ev.aa_examples, seed=size, aa_budgets=ev.get("aa_budgets"))
        metrics = summarise(arrays)
        seconds = time.perf_counter() - start
        results.append(SizeResult(int(size), arrays, metrics, seconds))
        if log:
            top = metrics[-1]
            at = {m["budget"]: m["exact_accuracy"] for m in metrics}
            shown = "  ".join(f"{b}:{at[b]:.3f}" for b in (30, 100, 300, 1000) if b in at)
            log(f"  size {size}: exact@budget {shown}  (last {top['budget']}: "
                f"{top['exact_accuracy']:.3f}, element {top['element_accuracy']:.4f}, "
                f"AA {top.get('aa', float('nan')):.4f}, cycles {top['limit_cycle']:.3f}) "
                f"{seconds:.0f}s")
    return results
