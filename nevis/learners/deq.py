"""`--learner=deq`: convolutional deep-equilibrium classifiers, with path independence and
test-time compute measured on every prediction.

Training solves z* = f(z*, x) with `nevis.equilibrium.fixed_point` (Anderson forward,
implicit-function-theorem gradients by default). Prediction runs the solver for a fixed
number of iterations (1×, 2× and 4× the training budget, each from zero), so results do not
depend on stopping tolerances or batch composition, and scores each budget's equilibrium for
path independence: the asymptotic alignment (AA) between z* and the state re-solved for the
same input from another example's z* (Algorithm 1 of Anil et al., as transcribed by McLeish
& Tran-Thanh).
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
from nevis.learners import task_models, training
from nevis.learners.base import (
    Learner,
    LearnerState,
    PredictContext,
    Prediction,
    PredictOutput,
    ResourceUsage,
    TrainContext,
    TrainOutput,
)
from nevis.learners.finetune import task_seed
from nevis.models import init_params
from nevis.models.deq import DEQClassifier
from nevis.streams import PredictionEvent, TrainingEvent
from nevis.tasks import TaskSpec

BUDGETS = (1, 2, 4)  # test-time multiples of the training budget


def build_model(config: ConfigDict, task: TaskSpec, seed: int) -> DEQClassifier:
    m = config.model
    return DEQClassifier(
        width=m.width, stem_widths=tuple(m.stem_widths), stem_stride=m.stem_stride,
        groups=m.groups, norm=m.norm,
        weight_norm=m.weight_norm, init_scale=m.init_scale, num_classes=task.num_classes,
        rngs=nnx.Rngs(seed),
    )


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


def _solver_options(config: ConfigDict) -> dict[str, Any]:
    s = config.solver
    options = {"m": s.anderson_memory, "lam": s.anderson_lambda} if s.name == "anderson" else {}
    return options


def validate_config(config: ConfigDict) -> None:
    training.validate_config(config)
    eq.DEQOptions(solver=config.solver.name, solver_options=_solver_options(config),
                  grad=config.solver.grad, max_steps=config.solver.max_steps)
    eq.initial_state(config.solver.init, jnp.zeros((2, 1)), key=jax.random.key(0))
    if config.model.norm not in ("group", "none"):
        raise ValueError(f"Unknown model.norm {config.model.norm!r}; valid: group, none.")
    task_models.check_strategy(config.strategy)
    if not 0 <= config.solver.budget_jitter < config.solver.max_steps:
        raise ValueError("solver.budget_jitter must be in [0, solver.max_steps).")
    if config.solver.budget_jitter and config.solver.grad == "unrolled":
        raise ValueError("solver.grad=unrolled needs a fixed budget: set solver.budget_jitter=0.")


def make_learner(config: ConfigDict) -> Learner:
    validate_config(config)
    sc = config.solver
    budget = sc.max_steps
    solver_options = _solver_options(config)

    def _parts(task: TaskSpec) -> _Parts:
        abstract = nnx.eval_shape(lambda: build_model(config, task, 0))
        return _Parts(nnx.graphdef(abstract), nnx.graphdef(abstract.cell))

    def train(event: TrainingEvent, state: LearnerState, ctx: TrainContext) -> TrainOutput:
        task = event.task
        seed = task_seed(config, task, task_models.occurrence(state, task))
        graphdef, params = init_params(lambda: build_model(config, task, seed))
        task_models.carry_backbone(params, state, config.strategy)
        parts = _Parts(graphdef, nnx.graphdef(nnx.eval_shape(
            lambda: build_model(config, task, seed)).cell))
        backward = _BackwardStats()
        options = eq.DEQOptions(
            solver=sc.name, solver_options=solver_options, tol=sc.tol, stop_mode="rel",
            max_steps=budget, grad=sc.grad, b_tol=sc.backward_tol,
            b_max_steps=sc.backward_max_steps, phantom_steps=sc.phantom_steps,
            phantom_tau=sc.phantom_tau, on_backward_failure="ignore",
            backward_callback=backward.add,
        )

        def solve(params, images, rng, max_steps):
            stem, readout = parts.stem_and_readout(params)
            x = stem(images)
            init_key, jac_key = jax.random.split(rng)
            z0 = eq.initial_state(sc.init, x, key=init_key)
            opts = dataclasses.replace(options, max_steps=max_steps)
            z, stats = eq.fixed_point(parts.cell, params["cell"], x, z0, opts)
            return x, z, stats, readout(z), jac_key

        def loss_fn(params, batch, rng):
            budget_key, rng = jax.random.split(rng)
            max_steps = budget
            if sc.budget_jitter:  # a random forward budget per batch promotes path independence
                max_steps = budget - jax.random.randint(budget_key, (), 0, sc.budget_jitter + 1)
            x, z, stats, logits, jac_key = solve(params, batch["image"], rng, max_steps)
            loss = training.classification_loss(logits, batch, task.kind, config.label_smoothing)
            if config.jacobian_reg.weight:
                reg = eq.jacobian_frobenius(parts.cell, params["cell"], x,
                                            jax.lax.stop_gradient(z), jac_key)
                loss = loss + config.jacobian_reg.weight * jnp.mean(reg)
            mask = batch["mask"]
            n = jnp.maximum(mask.sum(), 1)
            # The solver freezes an example whose iterate stops being finite, so the loss
            # can stay finite while the equilibrium is lost: report that as divergence.
            blown = ~jnp.isfinite(stats.abs_residual) & mask
            loss = jnp.where(jnp.any(blown), jnp.nan, loss)
            aux = {
                "forward_steps": (stats.steps * mask).sum() / n,
                "forward_residual": (stats.rel_residual * mask).sum() / n,
                "forward_not_converged": ((~stats.converged) * mask).sum() / n,
            }
            return loss, aux

        def logits_fn(params, images):
            stem, readout = parts.stem_and_readout(params)
            x = stem(images)
            z = eq.fixed_budget(parts.cell, params["cell"], x, jnp.zeros_like(x), budget,
                                sc.name, solver_options)
            return readout(z)

        best, resources, info = training.train_task(
            task=task, params=params, loss_fn=loss_fn, logits_fn=logits_fn, config=config,
            ctx=ctx, seed=seed, observers={"backward": backward},
        )
        info = {**info, **backward.summary()}
        resources = _add_loop_flops(resources, info, parts, params, config)
        new_state = task_models.after_training(state, task, best, ("trunk", "cell"))
        return TrainOutput(new_state, resources, info)

    def predict(event: PredictionEvent, state: LearnerState, ctx: PredictContext) -> PredictOutput:
        task = event.task
        parts = _parts(task)
        abstract = nnx.eval_shape(lambda: build_model(config, task, 0))
        _, params = task_models.params_for_prediction(state, task, abstract, config.strategy)
        params = parallel.replicate(params, ctx.mesh)

        def evaluate(params, images, steps):
            stem, readout = parts.stem_and_readout(params)
            x = stem(images)
            z = eq.fixed_budget(parts.cell, params["cell"], x, jnp.zeros_like(x), steps,
                                sc.name, solver_options)
            aa = eq.asymptotic_alignment(parts.cell, params["cell"], x, z, mode="derangement",
                                         steps=steps, solver=sc.name,
                                         solver_options=solver_options)
            fz = parts.cell(params["cell"], x, z)
            diff = jnp.linalg.norm((fz - z).reshape(len(z), -1), axis=-1)
            residual = diff / (jnp.linalg.norm(fz.reshape(len(z), -1), axis=-1) + 1e-9)
            cycle = eq.detect_limit_cycle(parts.cell, params["cell"], x, z)
            return readout(z), aa, residual, cycle.astype(jnp.float32)

        jitted = jax.jit(evaluate)  # `steps` is traced: one compilation serves every budget
        batch_size = parallel.round_batch_size(config.eval_batch_size, ctx.mesh)
        num_batches = -(-ctx.num_examples // batch_size)
        images = jax.ShapeDtypeStruct((batch_size, config.image_size, config.image_size, 3),
                                      jnp.float32)
        # Cost analysis prices each solver loop's body once; add the cell evaluations that the
        # fixed budgets run: a solve and an AA re-solve per budget.
        cell = _cell_flops(parts, params, config, batch_size)
        per_budget = training.lowered_flops(jitted.lower(params, images, 1))
        flops = num_batches * sum(per_budget + 2 * (budget * k - 1) * cell for k in BUDGETS)

        def predictions():
            for batch in ctx.batches(batch_size, config.image_size):
                x = parallel.shard_batch({"image": batch["image"]}, ctx.mesh)["image"]
                outs = {k: [parallel.to_host(a) for a in jitted(params, x, np.int32(budget * k))]
                        for k in BUDGETS}
                logits, aa, residual, cycle = outs[1]
                yield Prediction(
                    logits=logits,
                    extra_logits={f"budget_{k}x": outs[k][0] for k in BUDGETS[1:]},
                    scores={"aa": aa, "residual": residual, "limit_cycle": cycle,
                            **{f"aa_{k}x": outs[k][1] for k in BUDGETS[1:]}},
                )

        return PredictOutput(predictions(), ResourceUsage(inference_flops=flops))

    return Learner(name=config.name, init=task_models.init, train=train, predict=predict)


def _cell_flops(parts: _Parts, params, config: ConfigDict, batch: int, vjp: bool = False):
    """FLOPs of one cell evaluation (or its VJP in z) on a batch of equilibrium states."""
    size = config.image_size
    images = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    x = jax.eval_shape(lambda p, im: parts.stem_and_readout(p)[0](im), params, images)

    def cell(p, x, z):
        if not vjp:
            return parts.cell(p, x, z)
        out, pullback = jax.vjp(lambda zz: parts.cell(p, x, zz), z)
        return pullback(out)

    return training.lowered_flops(jax.jit(cell).lower(params["cell"], x, x))


def _add_loop_flops(resources: ResourceUsage, info: dict, parts: _Parts, params,
                    config: ConfigDict) -> ResourceUsage:
    """XLA's cost analysis counts a while loop's body once; add the solver steps taken.

    Training: mean forward and adjoint steps per training step × steps; validation: the
    fixed budget on every dev batch of every evaluation. Anderson's small mixing solves are
    not counted (they are a few percent of a convolution cell).
    """
    steps = info["steps_run"]
    fwd = _cell_flops(parts, params, config, config.batch_size)
    bwd = _cell_flops(parts, params, config, config.batch_size, vjp=True)
    train = steps * (info.get("forward_steps_mean", 0.0) * fwd
                     + info.get("backward_steps_mean", 0.0) * bwd)
    eval_batch = config.eval_batch_size
    validation = (info["evaluations"] * info["dev_batches"] * (config.solver.max_steps - 1)
                  * _cell_flops(parts, params, config, eval_batch))
    return dataclasses.replace(resources, train_flops=resources.train_flops + train,
                               validation_flops=resources.validation_flops + validation)


class _BackwardStats:
    """Collects the adjoint solves' statistics, which the implicit VJP reports by callback."""

    def __init__(self):
        self.steps: list[float] = []
        self.max_steps = 0
        self.residual: list[float] = []
        self.not_converged: list[float] = []

    def add(self, stats: eq.SolverStats) -> None:
        steps = np.asarray(stats.steps)
        self.steps.append(float(steps.mean()))
        self.max_steps = max(self.max_steps, int(steps.max()))
        self.residual.append(float(np.nanmean(np.asarray(stats.rel_residual))))
        self.not_converged.append(float(1 - np.asarray(stats.converged).mean()))

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "max_steps": self.max_steps, "residual": self.residual,
                "not_converged": self.not_converged}

    def load(self, state: dict[str, Any]) -> None:
        self.steps, self.residual = list(state.get("steps", [])), list(state.get("residual", []))
        self.not_converged = list(state.get("not_converged", []))
        self.max_steps = int(state.get("max_steps", 0))

    def summary(self) -> dict[str, float]:
        if not self.steps:
            return {}
        return {
            "backward_steps_mean": float(np.mean(self.steps)),
            "backward_steps_max": self.max_steps,
            "backward_residual_mean": float(np.mean(self.residual)),
            "backward_not_converged": float(np.mean(self.not_converged)),
        }
