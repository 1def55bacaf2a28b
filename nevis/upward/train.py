"""Training one weight-tied recurrent/equilibrium model on an algorithmic task.

Every batch is fresh data (`nevis.data.algorithmic`). The cell is solved with
`nevis.equilibrium.fixed_point` (fixed point, Anderson or Broyden; implicit, phantom, one-step
or unrolled gradients) from the regime's start (zeros, noise, or mixed), for the training
budget or a budget drawn per batch. The loss is the per-element cross-entropy of the readout
at the solver's final iterate, plus an optional Hutchinson Jacobian penalty at it.

One addition to the library: `nevis.equilibrium`'s unrolled mode differentiates through a
`lax.scan` whose length must be static, so a random budget per batch cannot be unrolled there.
`unrolled_budget` runs the library's solver updates in a scan of `max_steps` steps that applies
only the first `budget` (traced) of them, and backpropagates through those.

Training stops after `steps` updates or `max_seconds`, whichever comes first; the cosine
learning-rate schedule follows whichever of the two is further along, so a run that hits the
time limit still ends annealed. `time_limit` says which clock `max_seconds` reads: "cpu" (the
process's CPU time: on a machine shared with other jobs this is the compute the run actually
got; with single-threaded XLA it is one core's time) or "wall". Both are recorded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from ml_collections import ConfigDict

from nevis import equilibrium as eq
from nevis.data import algorithmic
from nevis.models import recurrent

IN_CHANNELS = {"prefix_sums": 1, "mazes": 3}
NDIM = {"prefix_sums": 1, "mazes": 2}
GRADS = ("implicit", "phantom", "one_step", "unrolled")


def build_model(config: ConfigDict, seed: int | None = None) -> nnx.Module:
    """The model of `config.model` for `config.task` (initialised from `seed`, default
    config.seed)."""
    if config.task not in IN_CHANNELS:
        raise ValueError(f"unknown task {config.task!r}; valid choices: "
                         f"{', '.join(algorithmic.TASKS)}.")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v)
              for k, v in config.model.to_dict().items() if k != "name"}
    return recurrent.build(config.model.name, in_channels=IN_CHANNELS[config.task],
                           ndim=NDIM[config.task],
                           seed=config.seed if seed is None else seed, **kwargs)


@dataclasses.dataclass
class Parts:
    """A model split into its graph and pure functions of its parameters."""

    graphdef: Any
    cell_def: Any

    @classmethod
    def of(cls, model: nnx.Module) -> tuple[Parts, Any]:
        graphdef, params = nnx.split(model, nnx.Param)
        return cls(graphdef, nnx.graphdef(model.cell)), params

    def model(self, params) -> nnx.Module:
        return nnx.merge(self.graphdef, params)

    def cell(self, cell_params, x: jax.Array, z: jax.Array) -> jax.Array:
        return nnx.merge(self.cell_def, cell_params)(x, z)


def solver_options(config: ConfigDict) -> dict[str, Any]:
    """Keyword options of the configured `nevis.equilibrium` solver."""
    s = config.solver
    if s.name == "anderson":
        return {"m": s.anderson_memory, "lam": s.anderson_lambda}
    if s.name == "fixed_point":
        return {"tau": s.tau}
    return {}


def validate(config: ConfigDict) -> None:
    """Fails now, with a one-line message naming the setting, rather than mid-run."""
    s = config.solver
    if s.name not in eq.SOLVERS:
        raise ValueError(f"solver.name={s.name!r}; valid choices: {', '.join(eq.SOLVERS)}.")
    if s.grad not in GRADS:
        raise ValueError(f"solver.grad={s.grad!r}; valid choices: {', '.join(GRADS)}.")
    if s.init not in eq.INITS or s.init == "given":
        raise ValueError(f"solver.init={s.init!r}; valid choices: zeros, gaussian, "
                         "mixed_example, mixed_element.")
    if not 0 <= s.budget_jitter < s.max_steps:
        raise ValueError(f"solver.budget_jitter={s.budget_jitter} must be in "
                         f"[0, solver.max_steps={s.max_steps}).")
    if config.optimizer.schedule not in ("cosine", "constant"):
        raise ValueError(f"optimizer.schedule={config.optimizer.schedule!r}; valid choices: "
                         "cosine, constant.")
    if config.get("time_limit", "cpu") not in ("cpu", "wall"):
        raise ValueError(f"time_limit={config.time_limit!r}; valid choices: cpu, wall.")
    for key in ("batch_size", "steps", "train_size"):
        if config[key] < 1:
            raise ValueError(f"{key}={config[key]} must be a positive integer.")
    if config.task == "mazes":
        algorithmic.check_maze_size(config.train_size)
    build_model(config)  # unknown model names or options


def _flat(z: jax.Array) -> jax.Array:
    return z.reshape(z.shape[0], -1)


def unrolled_budget(cell: Callable, params, x: jax.Array, z0: jax.Array, solver: eq.Solver,
                    max_steps: int, budget: jax.Array) -> tuple[jax.Array, eq.SolverStats]:
    """Backpropagate through exactly `budget` (may be traced) updates of `solver`.

    A scan of static length `max_steps` keeps the state unchanged after step `budget`.
    """
    shape = z0.shape

    def g(v):
        return _flat(cell(params, x, v.reshape(shape)))

    v0 = _flat(z0)
    f0 = g(v0)

    def body(carry, k):
        v, fv, aux = carry
        v_new, aux_new = solver.propose(v, fv, aux, k)
        f_new = g(v_new)
        on = k < budget
        keep = jax.tree.map(lambda a, b: jnp.where(on, a, b), (v_new, f_new, aux_new),
                            (v, fv, aux))
        return keep, None

    (v, fv, _), _ = jax.lax.scan(body, (v0, f0, solver.init(v0, f0)), jnp.arange(max_steps))
    abs_res = jnp.linalg.norm(fv - v, axis=-1)
    rel = abs_res / (jnp.linalg.norm(fv, axis=-1) + 1e-9)
    steps = jnp.full(shape[:1], budget, jnp.int32)
    stats = eq.SolverStats(steps=steps, abs_residual=abs_res, rel_residual=rel,
                           converged=rel < 1e-4)
    return v.reshape(shape), stats


def _learning_rate(oc: ConfigDict, step: jax.Array, progress: jax.Array) -> jax.Array:
    warm = jnp.minimum(1.0, (step + 1.0) / max(oc.warmup_steps, 1))
    if oc.schedule == "constant":
        return oc.learning_rate * warm
    decay = 0.001 + 0.999 * 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.clip(progress, 0.0, 1.0)))
    return oc.learning_rate * warm * decay


def make_loss(parts: Parts, config: ConfigDict) -> Callable:
    """loss(params, inputs, labels, key) -> (loss, metrics) for one training batch."""
    s = config.solver
    options = eq.DEQOptions(
        solver=s.name, solver_options=solver_options(config), tol=s.tol, stop_mode="rel",
        max_steps=s.max_steps, grad=s.grad, b_tol=s.backward_tol,
        b_max_steps=s.backward_max_steps, phantom_steps=s.phantom_steps,
        phantom_tau=s.phantom_tau, on_backward_failure="ignore",
    )
    solver = eq.SOLVERS[s.name](**solver_options(config))
    jac = config.jacobian_reg

    def loss_fn(params, inputs, labels, key):
        model = parts.model(params)
        x = model.inject(inputs)
        k_init, k_budget, k_jac = jax.random.split(key, 3)
        z0 = eq.initial_state(s.init, model.state_like(x), key=k_init, scale=s.init_scale)
        budget = s.max_steps
        if s.budget_jitter:  # a random forward budget per batch
            budget = s.max_steps - jax.random.randint(k_budget, (), 0, s.budget_jitter + 1)
        if s.grad == "unrolled" and s.budget_jitter:
            z, stats = unrolled_budget(parts.cell, params["cell"], x, z0, solver, s.max_steps,
                                       budget)
        else:
            opts = dataclasses.replace(options, max_steps=budget)
            z, stats = eq.fixed_point(parts.cell, params["cell"], x, z0, opts)
        logits = model.readout(z)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        loss = ce
        if jac.weight:
            reg = eq.jacobian_frobenius(parts.cell, params["cell"], x,
                                        jax.lax.stop_gradient(z), k_jac, jac.samples)
            loss = loss + jac.weight * reg.mean()
        correct = logits.argmax(-1) == labels
        axes = tuple(range(1, correct.ndim))
        metrics = {
            "loss": loss, "cross_entropy": ce,
            "element_accuracy": correct.mean(),
            "exact_accuracy": correct.all(axis=axes).mean(),
            "forward_steps": stats.steps.mean(),
            "forward_residual": jnp.nanmean(stats.rel_residual),
        }
        return loss, metrics

    return loss_fn


def make_step(parts: Parts, config: ConfigDict) -> Callable:
    """Jitted (params, opt_state, step, progress, inputs, labels, key) -> (params, opt_state,
    metrics). A non-finite loss or gradient leaves the parameters unchanged (counted)."""
    oc = config.optimizer
    loss_fn = make_loss(parts, config)
    parts_tx = [optax.scale_by_adam()]
    if oc.weight_decay:
        parts_tx.append(optax.add_decayed_weights(
            oc.weight_decay, mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p)))
    if oc.grad_clip_norm:
        parts_tx.insert(0, optax.clip_by_global_norm(oc.grad_clip_norm))
    tx = optax.chain(*parts_tx)

    def step(params, opt_state, step, progress, inputs, labels, key):
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, inputs, labels,
                                                                      key)
        updates, new_opt = tx.update(grads, opt_state, params)
        lr = _learning_rate(oc, step, progress)
        new_params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
        finite = jnp.isfinite(metrics["loss"]) & jnp.all(jnp.array(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
        metrics = {**metrics, "finite": finite.astype(jnp.float32), "learning_rate": lr}
        return keep(new_params, params), keep(new_opt, opt_state), metrics

    return jax.jit(step, donate_argnums=(0, 1)), tx


# Models of a population that differ only in seed share one compiled step.
_STEPS: dict[tuple, tuple[Callable, Any]] = {}
_NOT_IN_STEP = ("seed", "regime", "experiment", "eval", "population", "steps", "max_seconds",
                "log_every")


def cached_step(parts: Parts, config: ConfigDict) -> tuple[Callable, Any]:
    """`make_step`, reused for configs that differ only in what the step does not read."""
    relevant = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_STEP}
    key = (parts.graphdef, json.dumps(relevant, sort_keys=True, default=str))
    if key not in _STEPS:
        _STEPS.clear()  # keep one: compiled steps hold memory
        _STEPS[key] = make_step(parts, config)
    return _STEPS[key]


@dataclasses.dataclass
class TrainResult:
    parts: Parts
    params: Any
    info: dict[str, Any]


def train(config: ConfigDict, log: Callable[[str], None] | None = print) -> TrainResult:
    """Trains `config`'s model from its seed; returns the parameters and a record of the run.

    info: steps_run, seconds (wall time of the whole loop, compilation included), cpu_seconds,
    stopped_by (steps | time), skipped_steps (non-finite loss or gradient), the last logged
    metrics (`final`) and the logged curve.
    """
    validate(config)
    parts, params = Parts.of(build_model(config))
    step_fn, tx = cached_step(parts, config)
    opt_state = tx.init(params)
    rng = np.random.default_rng([config.seed, 1])
    key = jax.random.key(config.seed)
    clock = time.process_time if config.get("time_limit", "cpu") == "cpu" else time.perf_counter
    start, cpu_start, clock_start = time.perf_counter(), time.process_time(), clock()
    curve: list[dict[str, float]] = []
    skipped, stopped_by, done = jnp.zeros(()), "steps", 0
    for i in range(config.steps):
        elapsed = clock() - clock_start
        if config.max_seconds and elapsed >= config.max_seconds:
            stopped_by = "time"
            break
        progress = max(i / config.steps,
                       elapsed / config.max_seconds if config.max_seconds else 0.0)
        inputs, labels = algorithmic.generate(config.task, rng, config.batch_size,
                                              config.train_size)
        key, sub = jax.random.split(key)
        params, opt_state, metrics = step_fn(params, opt_state, np.int32(i),
                                             np.float32(progress), inputs, labels, sub)
        done = i + 1
        skipped = skipped + (1.0 - metrics["finite"])  # stays on device: no sync per step
        if (i + 1) % config.log_every == 0 or i + 1 == config.steps:
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            row = {"step": i + 1, "seconds": time.perf_counter() - start,
                   "cpu_seconds": time.process_time() - cpu_start, **metrics}
            curve.append(row)
            if log:
                log(f"  step {i + 1:5d}  {row['seconds']:5.0f}s ({row['cpu_seconds']:.0f}s cpu)  "
                    f"loss {metrics['loss']:.4f}  "
                    f"elem {metrics['element_accuracy']:.4f}  "
                    f"exact {metrics['exact_accuracy']:.3f}  "
                    f"fwd steps {metrics['forward_steps']:.1f}  "
                    f"res {metrics['forward_residual']:.1e}")
    seconds = time.perf_counter() - start
    last = curve[-1] if curve else {}
    info = {
        "steps_run": done, "seconds": seconds, "stopped_by": stopped_by,
        "cpu_seconds": time.process_time() - cpu_start,
        "time_limit": config.get("time_limit", "cpu"),
        "skipped_steps": int(skipped),
        "final": {k: v for k, v in last.items() if k not in ("step", "seconds", "cpu_seconds")},
        "curve": curve,
        "parameter_count": int(sum(np.size(p) for p in jax.tree.leaves(params))),
    }
    if any(not math.isfinite(v) for v in info["final"].values()):
        info["diverged"] = True
    return TrainResult(parts, params, info)
