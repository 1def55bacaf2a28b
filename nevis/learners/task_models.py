"""Learner state shared by learners with a per-task model: which parts carry over.

The state holds every task's parameters as trained (`models`), the latest values of the
parts that carry over between tasks (`backbone`, e.g. a ResNet trunk or a DEQ's stem and
cell) and how often each task was trained. With strategy `finetune` a new task starts from,
and an old task is read through, the latest backbone (which is where forgetting comes from);
with `independent` every task keeps its own model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from flax import nnx

from nevis.learners.base import LearnerState
from nevis.tasks import TaskSpec

STRATEGIES = ("independent", "finetune")


def init() -> LearnerState:
    return {"backbone": {}, "models": {}, "trained": {}}


def occurrence(state: LearnerState, task: TaskSpec) -> int:
    """How many times `task` was trained before (repeats in a stream train it again)."""
    return int(state["trained"].get(task.key, 0))


def carry_backbone(params: nnx.State, state: LearnerState, strategy: str) -> None:
    """Overwrites `params`' backbone parts with the latest ones under `finetune`."""
    if strategy == "finetune":
        for part, values in state["backbone"].items():
            nnx.replace_by_pure_dict(params[part], values)


def after_training(state: LearnerState, task: TaskSpec, params: nnx.State,
                   backbone_parts: Sequence[str]) -> LearnerState:
    pure = nnx.to_pure_dict(params)
    return {
        "backbone": {part: pure[part] for part in backbone_parts},
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
    carry_backbone(params, state, strategy)
    return graphdef, params


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {strategy!r}; valid choices: {', '.join(STRATEGIES)}."
        )
