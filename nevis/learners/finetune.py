"""Baseline learners: a ResNet backbone with one linear head per task.

`independent` starts every task from a fresh initialisation; `finetune` carries the backbone
of the previous task forward (the reference's "Previous" baseline). Both select the
checkpoint with the lowest `dev` error.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx
from ml_collections import ConfigDict

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
from nevis.models import BACKBONES, init_params, make_backbone
from nevis.streams import PredictionEvent, TrainingEvent
from nevis.tasks import TaskSpec


class TaskModel(nnx.Module):
    def __init__(self, backbone: nnx.Module, num_classes: int, *, rngs: nnx.Rngs):
        self.backbone = backbone
        self.head = nnx.Linear(backbone.num_features, num_classes, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(self.backbone(images))


def task_seed(config: ConfigDict, task: TaskSpec, occurrence: int) -> int:
    """A seed per (task, occurrence) that does not depend on where the stream was resumed."""
    digest = sum((i + 1) * ord(c) for i, c in enumerate(task.key))
    return int(config.seed * 1_000_003 + digest * 101 + occurrence) % (2**31)


def build_task_model(config: ConfigDict, task: TaskSpec, seed: int) -> TaskModel:
    backbone = make_backbone(config.model.name, dict(config.model.kwargs), seed)
    return TaskModel(backbone, task.num_classes, rngs=nnx.Rngs(seed + 1))


def init_task_model(config: ConfigDict, task: TaskSpec, seed: int) -> tuple[Any, Any]:
    return init_params(lambda: build_task_model(config, task, seed))


def make_learner(config: ConfigDict) -> Learner:
    task_models.check_strategy(config.strategy)
    training.validate_config(config)
    if config.model.name not in BACKBONES:
        raise ValueError(
            f"Unknown model {config.model.name!r}; valid choices: {', '.join(BACKBONES)}."
        )

    def train(event: TrainingEvent, state: LearnerState, ctx: TrainContext) -> TrainOutput:
        task = event.task
        seed = task_seed(config, task, task_models.occurrence(state, task))
        graphdef, params = init_task_model(config, task, seed)
        task_models.carry_backbone(params, state, config.strategy)

        def logits_fn(params, images):
            return nnx.merge(graphdef, params)(images)

        def loss_fn(params, batch, rng):
            del rng  # deterministic model
            logits = logits_fn(params, batch["image"])
            loss = training.classification_loss(logits, batch, task.kind, config.label_smoothing)
            return loss, {}

        best, resources, info = training.train_task(
            task=task, params=params, loss_fn=loss_fn, logits_fn=logits_fn, config=config,
            ctx=ctx, seed=seed,
        )
        new_state = task_models.after_training(state, task, best, ("backbone",))
        return TrainOutput(new_state, resources, info)

    def predict(event: PredictionEvent, state: LearnerState, ctx: PredictContext) -> PredictOutput:
        task = event.task
        abstract = nnx.eval_shape(lambda: build_task_model(config, task, 0))
        graphdef, params = task_models.params_for_prediction(state, task, abstract,
                                                             config.strategy)
        params = parallel.replicate(params, ctx.mesh)
        evaluator = training.Evaluator(lambda p, x: nnx.merge(graphdef, p)(x), ctx.mesh)
        batch_size = parallel.round_batch_size(config.eval_batch_size, ctx.mesh)
        num_batches = -(-ctx.num_examples // batch_size)
        flops = evaluator.cost(params, batch_size, config.image_size) * num_batches

        def predictions():
            for batch in ctx.batches(batch_size, config.image_size):
                logits = evaluator(params, batch)
                yield Prediction(logits=logits, index=batch["index"], mask=batch["mask"])

        return PredictOutput(predictions(), ResourceUsage(inference_flops=flops))

    return Learner(name=config.name, init=task_models.init, train=train, predict=predict)
