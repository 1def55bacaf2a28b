"""The baselines: a ResNet backbone with one linear head per task.

Strategy `independent` starts every task from a fresh initialisation; `finetune` carries the
backbone of the previous task forward (the reference's "Previous" baseline). Both select the
checkpoint with the lowest `dev` error. Everything else is the per-task skeleton's.
"""

from __future__ import annotations

import jax
from flax import nnx
from ml_collections import ConfigDict

from nevis.learners import per_task, training
from nevis.learners.base import Learner
from nevis.models import BACKBONES, make_backbone
from nevis.tasks import TaskSpec


class TaskModel(nnx.Module):
    def __init__(self, backbone: nnx.Module, num_classes: int, *, rngs: nnx.Rngs):
        self.backbone = backbone
        self.head = nnx.Linear(backbone.num_features, num_classes, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(self.backbone(images))


def build_model(config: ConfigDict, task: TaskSpec, seed: int) -> TaskModel:
    backbone = make_backbone(config.model.name, dict(config.model.kwargs), seed)
    return TaskModel(backbone, task.num_classes, rngs=nnx.Rngs(seed + 1))


def make_learner(config: ConfigDict) -> Learner:
    if config.model.name not in BACKBONES:
        raise ValueError(
            f"Unknown model {config.model.name!r}; valid choices: {', '.join(BACKBONES)}."
        )

    def task_training(task: TaskSpec, graphdef, params, seed: int) -> per_task.TaskTraining:
        del params, seed

        def logits_fn(params, images):
            return nnx.merge(graphdef, params)(images)

        def loss_fn(params, batch, rng):
            del rng  # deterministic model
            logits = logits_fn(params, batch["image"])
            return training.classification_loss(logits, batch, task.kind,
                                                config.label_smoothing), {}

        return per_task.TaskTraining(loss_fn=loss_fn, logits_fn=logits_fn)

    return per_task.make_learner(config, per_task.PerTaskLearner(
        build_model=lambda task, seed: build_model(config, task, seed),
        carried_parts=("backbone",),
        training=task_training,
    ))
