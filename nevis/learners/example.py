"""The smallest complete learner: a one-hidden-layer MLP on pixels, a fresh one per task.

A template to copy: a new per-task learner is this file (its model, its loss) plus a config
in `experiments/` whose `name` is registered in `nevis.learners.FACTORIES`. Seeding,
carrying parts between tasks, training with best-on-dev selection, checkpoints, prediction
and FLOP counting all come from `nevis.learners.per_task`.
"""

from __future__ import annotations

import jax
from flax import nnx
from ml_collections import ConfigDict

from nevis.learners import per_task, training
from nevis.learners.base import Learner
from nevis.tasks import TaskSpec


class MLP(nnx.Module):
    def __init__(self, in_features: int, hidden: int, num_classes: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(in_features, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(jax.nn.relu(self.hidden(images.reshape(images.shape[0], -1))))


def make_learner(config: ConfigDict) -> Learner:
    pixels = config.image_size * config.image_size * 3

    def build_model(task: TaskSpec, seed: int) -> MLP:
        return MLP(pixels, config.hidden, task.num_classes, rngs=nnx.Rngs(seed))

    def task_training(task: TaskSpec, graphdef, params, seed: int) -> per_task.TaskTraining:
        def logits_fn(params, images):
            return nnx.merge(graphdef, params)(images)

        def loss_fn(params, batch, rng):
            logits = logits_fn(params, batch["image"])
            return training.classification_loss(logits, batch, task.kind,
                                                config.label_smoothing), {}

        return per_task.TaskTraining(loss_fn=loss_fn, logits_fn=logits_fn)

    return per_task.make_learner(config, per_task.PerTaskLearner(
        build_model=build_model, carried_parts=("hidden",), training=task_training))
