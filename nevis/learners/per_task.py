"""The per-task learner skeleton: one model per task, trained by `training.train_task`.

Every gradient-trained learner of the harness has the same shape (dm_nevis's example learner
shows it): for each training event, seed → initialise the task's model → carry over what the
strategy carries from earlier tasks → train with best-on-dev selection → remember the model;
for each prediction event, the task's model (with the carried parts as they are now) →
replicate → predict batch by batch, with the FLOPs of the batches it will run.

A learner fills in only what differs (`PerTaskLearner`): how to build a task's model, which
parameter sub-trees carry over, the loss and logits for training (plus any running
statistics and FLOP corrections), and, if it predicts more than logits, its predictor. See
`nevis/learners/example.py` for the smallest complete learner.

State between events (`init_state`): every task's parameters as trained (`models`), the latest
values of the carried parts (`backbone`, e.g. a ResNet trunk or a DEQ's trunk and cell) and
how often each task was trained. With strategy `finetune` a new task starts from, and an old
task is read through, the latest carried parts (which is where forgetting comes from); with
`independent` every task keeps its own model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from nevis import parallel
from nevis.learners import training
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
from nevis.learners.training import LogitsFn, LossFn
from nevis.models import init_params
from nevis.streams import PredictionEvent, TrainingEvent
from nevis.tasks import TaskSpec

STRATEGIES = ("independent", "finetune")


class Observer(Protocol):
    """Running statistics a learner keeps during a task, checkpointed with it."""

    def state(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


@dataclasses.dataclass(frozen=True)
class TaskTraining:
    """How a learner trains one task's model (made by `PerTaskLearner.training`)."""

    loss_fn: LossFn  # (params, batch, rng) -> (loss, {name: scalar}) for each step
    logits_fn: LogitsFn  # (params, images) -> logits, for validation on dev
    observers: Mapping[str, Observer] = dataclasses.field(default_factory=dict)
    # After training: (resources, info, ctx) -> amended (resources, info), e.g. what the
    # observers gathered and FLOPs that XLA's cost analysis cannot see.
    finish: Callable[[ResourceUsage, dict[str, Any], TrainContext],
                     tuple[ResourceUsage, dict[str, Any]]] | None = None


@dataclasses.dataclass(frozen=True)
class Predictor:
    """How a learner predicts one split (made by `PerTaskLearner.predictor`)."""

    batch_flops: float  # FLOPs of one batch of the batch size it was made for
    predictions: Callable[[], Iterator[Prediction]]


# (task, graphdef, replicated params, context, batch size) -> Predictor
MakePredictor = Callable[[TaskSpec, nnx.GraphDef, nnx.State, PredictContext, int], Predictor]


def logits_predictor(config: ConfigDict) -> MakePredictor:
    """The default predictor: the model's logits, one jitted call per batch."""

    def make(task: TaskSpec, graphdef: nnx.GraphDef, params: nnx.State, ctx: PredictContext,
             batch_size: int) -> Predictor:
        del task
        evaluator = training.Evaluator(lambda p, x: nnx.merge(graphdef, p)(x), ctx.mesh)

        def predictions() -> Iterator[Prediction]:
            for batch in ctx.batches(batch_size, config.image_size):
                logits = evaluator(params, batch)
                yield Prediction(logits=logits, index=batch["index"], mask=batch["mask"])

        return Predictor(evaluator.cost(params, batch_size, config.image_size), predictions)

    return make


@dataclasses.dataclass(frozen=True)
class PerTaskLearner:
    """What differs between per-task learners; `make_learner` supplies the rest."""

    build_model: Callable[[TaskSpec, int], nnx.Module]  # (task, seed) -> a fresh model
    carried_parts: Sequence[str]  # parameter sub-trees that carry over under `finetune`
    # (task, graphdef, initial params, seed) -> how to train it
    training: Callable[[TaskSpec, nnx.GraphDef, nnx.State, int], TaskTraining]
    predictor: MakePredictor | None = None  # None: `logits_predictor`


def make_learner(config: ConfigDict, spec: PerTaskLearner) -> Learner:
    """A `Learner` from the skeleton; `config` needs the keys `training.train_task` reads
    plus `seed`, `strategy`, `eval_batch_size` and `image_size`."""
    check_strategy(config.strategy)
    training.validate_config(config)
    make_predictor = spec.predictor or logits_predictor(config)

    def train(event: TrainingEvent, state: LearnerState, ctx: TrainContext) -> TrainOutput:
        task = event.task
        seed = task_seed(config.seed, task, occurrence(state, task))
        graphdef, params = init_params(lambda: spec.build_model(task, seed))
        carry_over(params, state, config.strategy)
        plan = spec.training(task, graphdef, params, seed)
        best, resources, info = training.train_task(
            task=task, params=params, loss_fn=plan.loss_fn, logits_fn=plan.logits_fn,
            config=config, ctx=ctx, seed=seed, observers=dict(plan.observers),
        )
        if plan.finish is not None:
            resources, info = plan.finish(resources, info, ctx)
        return TrainOutput(after_training(state, task, best, spec.carried_parts), resources,
                           info)

    def predict(event: PredictionEvent, state: LearnerState, ctx: PredictContext) -> PredictOutput:
        task = event.task
        abstract = nnx.eval_shape(lambda: spec.build_model(task, 0))
        graphdef, params = params_for_prediction(state, task, abstract, config.strategy)
        params = parallel.replicate(params, ctx.mesh)
        batch_size = parallel.round_batch_size(config.eval_batch_size, ctx.mesh)
        predictor = make_predictor(task, graphdef, params, ctx, batch_size)
        num_batches = -(-ctx.num_examples // batch_size)
        return PredictOutput(predictor.predictions(),
                             ResourceUsage(inference_flops=predictor.batch_flops * num_batches))

    return Learner(name=config.name, init=init_state, train=train, predict=predict)


# -- seeds and state ---------------------------------------------------------------------------


def task_seed(seed: int, task: TaskSpec, occurrence: int) -> int:
    """A seed per (task, occurrence) that does not depend on where the stream was resumed."""
    digest = sum((i + 1) * ord(c) for i, c in enumerate(task.key))
    return int(seed * 1_000_003 + digest * 101 + occurrence) % (2**31)


def init_state() -> LearnerState:
    return {"backbone": {}, "models": {}, "trained": {}}


def occurrence(state: LearnerState, task: TaskSpec) -> int:
    """How many times `task` was trained before (repeats in a stream train it again)."""
    return int(state["trained"].get(task.key, 0))


def carry_over(params: nnx.State, state: LearnerState, strategy: str) -> None:
    """Overwrites `params`' carried parts with their latest values under `finetune`."""
    if strategy == "finetune":
        for part, values in state["backbone"].items():
            nnx.replace_by_pure_dict(params[part], values)


def after_training(state: LearnerState, task: TaskSpec, params: nnx.State,
                   carried_parts: Sequence[str]) -> LearnerState:
    pure = nnx.to_pure_dict(params)
    return {
        "backbone": {part: pure[part] for part in carried_parts},
        "models": {**state["models"], task.key: pure},
        "trained": {**state["trained"], task.key: np.int64(occurrence(state, task) + 1)},
    }


def params_for_prediction(state: LearnerState, task: TaskSpec, abstract: nnx.Module,
                          strategy: str) -> tuple[Any, nnx.State]:
    """(graphdef, params) of the model that predicts `task` now."""
    if task.key not in state["models"]:
        raise ValueError(f"Task {task.key!r} is predicted before it was trained.")
    graphdef, params = nnx.split(abstract, nnx.Param)
    nnx.replace_by_pure_dict(params, state["models"][task.key])
    carry_over(params, state, strategy)
    return graphdef, params


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {strategy!r}; valid choices: {', '.join(STRATEGIES)}."
        )
