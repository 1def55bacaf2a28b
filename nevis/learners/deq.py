"""`--learner=deq`: convolutional deep-equilibrium classifiers, with path independence and
test-time compute measured on every prediction.

Training solves z* = f(z*, x) with `nevis.equilibrium.fixed_point` (Anderson forward,
implicit-function-theorem gradients by default). Prediction runs the solver for a fixed
number of iterations (1×, 2× and 4× the training budget, each from zero), so results do not
depend on stopping tolerances or batch composition, and scores each budget's equilibrium for
path independence: the asymptotic alignment (AA) between z* and the state re-solved for the
same input from another example's z* (Algorithm 1 of Anil et al., as transcribed by McLeish
& Tran-Thanh). Partners come from a seeded derangement of the whole split (never padding),
so an example's AA does not depend on the evaluation batch size or the device count: a first
pass solves every example and keeps its z* on the host, a second re-solves each batch from
its partners' z*.

Nothing lost is averaged away unseen: a training event's `info` counts the per-example adjoint
solves (`backward_solves`), the share that did not converge (`backward_not_converged`) and
how many were non-finite (`backward_nonfinite`); per-example prediction scores keep NaN where
a state or a re-solve overflowed and mark it in `aa_nonfinite`, `aa_2x_nonfinite`,
`aa_4x_nonfinite` (1.0 where that budget's AA is NaN).

FLOPs: XLA's cost analysis prices a while loop's body once, so the learner adds the
iterations its solver loops actually ran (a batch's loop runs until its slowest example
stops) times the cost of one iteration, measured on exactly what an iteration evaluates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from nevis import equilibrium as eq
from nevis import parallel
from nevis.budgets import BUDGETS, aa_name, logits_name
from nevis.learners import flops, per_task, training
from nevis.learners.base import (
    Learner,
    PredictContext,
    Prediction,
    ResourceUsage,
    TrainContext,
)
from nevis.models.deq import DEQClassifier
from nevis.tasks import TaskSpec


def build_model(config: ConfigDict, task: TaskSpec, seed: int) -> DEQClassifier:
    model = {**config.model, "stem_widths": tuple(config.model.stem_widths)}
    return DEQClassifier(**model, num_classes=task.num_classes, rngs=nnx.Rngs(seed))


@dataclasses.dataclass
class _Parts:
    """The model split into pure functions of its parameter sub-trees."""

    graphdef: Any
    cell_def: Any

    def cell(self, cell_params, x, z):
        return nnx.merge(self.cell_def, cell_params)(x, z)

    def stem_and_readout(self, params):
        model = nnx.merge(self.graphdef, params)
        return model.stem, model.readout

    def injection(self, params, image_size: int):
        """The shape of the cell's input injection for a batch size."""
        def shape(batch: int) -> jax.ShapeDtypeStruct:
            images = jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.float32)
            return jax.eval_shape(lambda p, im: self.stem_and_readout(p)[0](im), params, images)
        return shape


def deq_options(config: ConfigDict, **overrides: Any) -> eq.DEQOptions:
    """`config.deq` as the library's options (same names), with its solver's options."""
    return eq.DEQOptions(**{**config.deq, "solver_options": solver_options(config),
                            **overrides})


def solver_options(config: ConfigDict) -> dict[str, Any]:
    return dict(config.solver_options.get(config.deq.solver, {}))


def validate_config(config: ConfigDict) -> None:
    deq_options(config)
    eq.initial_state(config.init, jnp.zeros((2, 1)), key=jax.random.key(0))
    if config.model.norm not in ("group", "none"):
        raise ValueError(f"Unknown model.norm {config.model.norm!r}; valid: group, none.")
    if not 0 <= config.budget_jitter < config.deq.max_steps:
        raise ValueError("budget_jitter must be in [0, deq.max_steps).")
    if config.budget_jitter and config.deq.grad == "unrolled":
        raise ValueError("deq.grad=unrolled needs a fixed budget: set budget_jitter=0.")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout={config.dropout} must be in [0, 1).")
    if config.correction.n_states:
        if config.deq.grad not in eq.CORRECTION_GRADS or config.budget_jitter:
            raise ValueError(
                "correction.n_states > 0 (fixed-point correction) supervises intermediate "
                f"states: it needs deq.grad in {eq.CORRECTION_GRADS} and budget_jitter=0 "
                f"(got deq.grad={config.deq.grad!r}, budget_jitter={config.budget_jitter}).")
        eq.uniform_indices(config.deq.max_steps, config.correction.n_states)
    if config.reversible_beta and (config.correction.n_states
                                   or not 0 < config.reversible_beta < 1):
        raise ValueError("reversible_beta must be in (0, 1) and excludes correction.n_states.")


def make_learner(config: ConfigDict) -> Learner:
    validate_config(config)
    budget = config.deq.max_steps
    solver, options_of_solver = config.deq.solver, solver_options(config)

    def parts_of(graphdef: nnx.GraphDef, task: TaskSpec) -> _Parts:
        abstract = nnx.eval_shape(lambda: build_model(config, task, 0))
        return _Parts(graphdef, nnx.graphdef(abstract.cell))

    def task_training(task: TaskSpec, graphdef, params, seed: int) -> per_task.TaskTraining:
        del seed
        parts = parts_of(graphdef, task)
        backward = _BackwardStats()
        options = deq_options(config, stop_mode="rel", on_backward_failure="ignore",
                              backward_callback=backward.add)

        def train_cell(rng, x):
            """(cell, its input) for a training solve. With variational dropout the cell's
            output is masked channel-wise, one mask per example for the whole solve (a fresh
            mask per iteration would move the fixed point); prediction never drops."""
            if not config.dropout:
                return parts.cell, x
            mask = eq.dropout_mask_2d(jax.random.fold_in(rng, 1), x.shape, config.dropout)
            return (lambda p, xm, z: eq.apply_dropout(parts.cell(p, xm[0], z), xm[1])), (x, mask)

        def solve(params, images, rng, max_steps):
            """(x, z*, stats, logits of every supervised state, Jacobian key, cell, input)."""
            stem, readout = parts.stem_and_readout(params)
            x = stem(images)
            init_key, jac_key = jax.random.split(rng)
            cell, cell_in = train_cell(rng, x)
            z0 = eq.initial_state(config.init, x, key=init_key)
            opts = dataclasses.replace(options, max_steps=max_steps)
            if config.correction.n_states:  # fixed-point correction: several states
                states, stats = eq.correction_states(
                    cell, params["cell"], cell_in, z0, opts,
                    n_states=config.correction.n_states, grad=config.deq.grad)
                return x, states[-1], stats, [readout(s) for s in states], jac_key, cell, cell_in
            if config.reversible_beta:  # exact gradients of the truncated solve, O(1) memory
                z, stats = eq.reversible_fixed_point(
                    cell, params["cell"], cell_in, z0, beta=config.reversible_beta,
                    max_steps=max_steps, tol=config.deq.tol)
            else:
                z, stats = eq.fixed_point(cell, params["cell"], cell_in, z0, opts)
            return x, z, stats, [readout(z)], jac_key, cell, cell_in

        def loss_fn(params, batch, rng):
            budget_key, rng = jax.random.split(rng)
            max_steps = budget
            if config.budget_jitter:  # a random forward budget per batch: path independence
                max_steps = budget - jax.random.randint(budget_key, (), 0,
                                                        config.budget_jitter + 1)
            x, z, stats, logits, jac_key, cell, cell_in = solve(params, batch["image"], rng,
                                                                max_steps)
            losses = [training.classification_loss(state_logits, batch, task.kind,
                                                   config.label_smoothing)
                      for state_logits in logits]
            loss = (losses[0] if len(losses) == 1
                    else eq.correction_loss(losses, gamma=config.correction.gamma))
            if config.jacobian_reg.weight:
                reg = eq.jacobian_frobenius(cell, params["cell"], cell_in,
                                            jax.lax.stop_gradient(z), jac_key)
                loss = loss + config.jacobian_reg.weight * jnp.mean(reg)
            mask = batch["mask"]
            n = jnp.maximum(mask.sum(), 1)
            # The solver freezes an example whose iterate stops being finite, so the loss
            # can stay finite while the equilibrium is lost: report that as divergence.
            blown = stats.nonfinite & mask
            loss = jnp.where(jnp.any(blown), jnp.nan, loss)
            aux = {
                "forward_steps": (stats.steps * mask).sum() / n,
                "forward_residual": (stats.rel_residual * mask).sum() / n,
                "forward_not_converged": ((~stats.converged) * mask).sum() / n,
                # What the batch's loop ran (its slowest example): what the step cost.
                "forward_iterations": stats.iterations.astype(jnp.float32),
            }
            return loss, aux

        def logits_fn(params, images):
            stem, readout = parts.stem_and_readout(params)
            x = stem(images)
            z = eq.fixed_budget(parts.cell, params["cell"], x, jnp.zeros_like(x), budget,
                                solver, options_of_solver)
            return readout(z)

        def finish(resources: ResourceUsage, info: dict, ctx: TrainContext):
            info = {**info, **backward.summary()}
            costs = flops.SolverLoopCosts(parts.cell, params["cell"],
                                          parts.injection(params, config.image_size), options)
            grad = "reversible" if config.reversible_beta else config.deq.grad
            train, validation = flops.solver_loop_flops(
                info, costs, grad=grad, batch_size=config.batch_size,
                eval_batch_size=parallel.round_batch_size(config.eval_batch_size, ctx.mesh),
                eval_iterations=budget)
            return dataclasses.replace(
                resources, train_flops=resources.train_flops + train,
                validation_flops=resources.validation_flops + validation), info

        return per_task.TaskTraining(loss_fn=loss_fn, logits_fn=logits_fn,
                                     observers={"backward": backward}, finish=finish)

    def predictor(task: TaskSpec, graphdef, params, ctx: PredictContext,
                  batch_size: int) -> per_task.Predictor:
        parts = parts_of(graphdef, task)
        n = ctx.num_examples
        # Partners by index over the whole split: the same for every batch size and device
        # count, never a padding row, the same at every prediction of the task.
        partner = eq.derangement(n, per_task.task_seed(config.seed, task, 0)) if n >= 2 else None

        @jax.jit
        def features(params, images):
            return parts.stem_and_readout(params)[0](images)

        @jax.jit  # `steps` is traced: one compilation serves every budget
        def equilibrium(params, x, steps):
            _, readout = parts.stem_and_readout(params)
            z, stats = eq.fixed_budget(parts.cell, params["cell"], x, jnp.zeros_like(x), steps,
                                       solver, options_of_solver, with_stats=True)
            cycle = eq.detect_limit_cycle(parts.cell, params["cell"], x, z)
            # A non-finite state has no cycle verdict: NaN, so that it is counted, not hidden.
            cycle = jnp.where(stats.nonfinite, jnp.nan, cycle.astype(jnp.float32))
            return readout(z), z, stats.rel_residual, cycle

        @jax.jit
        def alignment(cell_params, x, z_star, start, steps):
            return eq.asymptotic_alignment(parts.cell, cell_params, x, z_star, steps=steps,
                                           solver=solver, solver_options=options_of_solver,
                                           partner_states=start)

        costs = flops.SolverLoopCosts(
            parts.cell, params["cell"], parts.injection(params, config.image_size),
            eq.DEQOptions(solver=solver, solver_options=options_of_solver))
        batch_flops = _predict_flops(features, equilibrium,
                                     alignment if partner is not None else None, params,
                                     config, batch_size, costs)

        def first_pass():
            """Every budget's z* of every example, kept on the host by index.

            Host memory: split size × state size × 3 budgets float32 (12 KB per example at the
            default 4×4×64 state, so about 0.6 GB for a 50,000-example split).
            """
            states: dict[int, np.ndarray] = {}
            outputs = []
            for batch in ctx.batches(batch_size, config.image_size):
                x = features(params, _shard(batch["image"], ctx))
                rows = parallel.gather_rows({"index": batch["index"], "mask": batch["mask"]})
                index = rows["index"][rows["mask"]]
                out = {}
                for k in BUDGETS:
                    logits, z, residual, cycle = (parallel.to_host(a) for a in
                                                  equilibrium(params, x, np.int32(budget * k)))
                    if k not in states:
                        states[k] = np.full((n, *z.shape[1:]), np.nan, z.dtype)
                    # A lost equilibrium (the solve overflowed) is stored as NaN: it has no
                    # AA, and as a partner's start it makes that partner's AA NaN too.
                    lost = ~np.isfinite(residual).reshape((-1,) + (1,) * (z.ndim - 1))
                    states[k][index] = np.where(lost, np.nan, z)[rows["mask"]]
                    out[k] = (logits, residual, cycle)
                outputs.append((batch["index"], batch["mask"], out))
            return states, outputs

        def predictions():
            states, outputs = first_pass()
            batches = ctx.batches(batch_size, config.image_size)
            for batch, (index, mask, out) in zip(batches, outputs, strict=True):
                if not np.array_equal(batch["index"], index):
                    raise RuntimeError("PredictContext.batches served a different order twice.")
                aa = {k: np.full(len(out[k][0]), np.nan, np.float32) for k in BUDGETS}
                if partner is not None:
                    x = features(params, _shard(batch["image"], ctx))
                    own = np.where(mask, index, 0)
                    for k in BUDGETS:
                        start = _shard(states[k][partner[own]], ctx)
                        aa[k] = parallel.to_host(alignment(
                            params["cell"], x, _shard(states[k][own], ctx), start,
                            np.int32(budget * k)))
                scores = {"residual": out[1][1], "limit_cycle": out[1][2]}
                for k in BUDGETS:
                    scores[aa_name(k)] = aa[k]
                    # AA that is NaN (a re-solve or a partner's z* overflowed) is counted
                    # here, so an event's share of lost AA scores is never silently dropped.
                    scores[f"{aa_name(k)}_nonfinite"] = (~np.isfinite(aa[k])).astype(np.float32)
                yield Prediction(
                    logits=out[1][0], index=index, mask=mask,
                    extra_logits={logits_name(k): out[k][0] for k in BUDGETS[1:]},
                    scores=scores,
                )

        return per_task.Predictor(batch_flops, predictions)

    return per_task.make_learner(config, per_task.PerTaskLearner(
        build_model=lambda task, seed: build_model(config, task, seed),
        carried_parts=(("trunk", "injection", "injection_norm", "cell")
                       if config.model.injection == "conv"
                       else ("trunk", "cell")),
        training=task_training,
        predictor=predictor,
    ))


def _shard(array: np.ndarray, ctx: PredictContext) -> jax.Array:
    return parallel.shard_batch({"a": array}, ctx.mesh)["a"]


def _predict_flops(features, equilibrium, alignment, params, config: ConfigDict, batch: int,
                   costs: flops.SolverLoopCosts) -> float:
    """FLOPs of one evaluation batch: both passes, every budget, loops counted in full."""
    size = config.image_size
    images = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    x = jax.eval_shape(features, params, images)
    steps = jax.ShapeDtypeStruct((), jnp.int32)
    stem = flops.lowered_flops(features.lower(params, images))
    solve = flops.lowered_flops(equilibrium.lower(params, x, steps))
    align = (flops.lowered_flops(alignment.lower(params["cell"], x, x, x, steps))
             if alignment is not None else 0.0)
    passes = 1 if alignment is None else 2
    iteration = costs("forward", batch)
    total = passes * stem
    for k in BUDGETS:
        loop = (config.deq.max_steps * k - 1) * iteration  # beyond the body XLA counted
        total += solve + loop
        if alignment is not None:
            total += align + loop
    return total


class _BackwardStats:
    """Collects the adjoint solves' statistics, which the implicit VJP reports by callback.

    Per training step: the adjoint loop's iterations (its cost) and, per example, steps,
    convergence and whether the adjoint was lost (non-finite: excluded from the gradient).
    Non-converged and non-finite adjoints are counted, never dropped from a mean unseen.
    """

    def __init__(self):
        self.steps: list[float] = []
        self.iterations: list[int] = []
        self.max_steps = 0
        self.residual: list[float] = []
        self.solves = 0
        self.not_converged = 0
        self.nonfinite = 0

    def add(self, stats: eq.SolverStats) -> None:
        steps = np.asarray(stats.steps)
        rel = np.asarray(stats.rel_residual)
        finite = np.isfinite(rel)
        self.steps.append(float(steps.mean()))
        self.iterations.append(int(np.asarray(stats.iterations)))
        self.max_steps = max(self.max_steps, int(steps.max()))
        if finite.any():
            self.residual.append(float(rel[finite].mean()))
        self.solves += int(rel.size)
        self.not_converged += int(np.sum(~np.asarray(stats.converged)))
        self.nonfinite += int(np.sum(~finite))

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "iterations": self.iterations, "max_steps": self.max_steps,
                "residual": self.residual, "solves": self.solves,
                "not_converged": self.not_converged, "nonfinite": self.nonfinite}

    def load(self, state: dict[str, Any]) -> None:
        self.steps, self.residual = list(state.get("steps", [])), list(state.get("residual", []))
        self.iterations = [int(i) for i in state.get("iterations", [])]
        self.max_steps = int(state.get("max_steps", 0))
        self.solves = int(state.get("solves", 0))
        self.not_converged = int(state.get("not_converged", 0))
        self.nonfinite = int(state.get("nonfinite", 0))

    def summary(self) -> dict[str, float]:
        """Info keys: `backward_not_converged` is the fraction of per-example adjoint solves
        that did not converge (non-finite ones included), `backward_nonfinite` how many of
        them were non-finite, `backward_residual_mean` the mean over the finite ones."""
        if not self.steps:
            return {}
        return {
            "backward_steps_mean": float(np.mean(self.steps)),
            "backward_steps_max": self.max_steps,
            "backward_iterations_mean": float(np.mean(self.iterations)),
            "backward_residual_mean": float(np.mean(self.residual)) if self.residual else None,
            "backward_solves": self.solves,
            "backward_not_converged": self.not_converged / self.solves,
            "backward_not_converged_count": self.not_converged,
            "backward_nonfinite": self.nonfinite,
        }
