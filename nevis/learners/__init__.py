"""Learners by registered name: a learner config's `name` picks the factory.

A factory takes the learner's config and returns a `Learner` (nevis.learners.base). Learners
with one model per task fill in the skeleton of `nevis.learners.per_task`; `example.py` is the
smallest one.
"""

from __future__ import annotations

from collections.abc import Callable

from ml_collections import ConfigDict

from nevis.learners import baseline, deq, dynamic, example
from nevis.learners.base import Learner

FACTORIES: dict[str, Callable[[ConfigDict], Learner]] = {
    "baseline": baseline.make_learner,  # independent / finetune (config.strategy)
    "deq": deq.make_learner,
    "dynamic": dynamic.make_learner,  # k-NN-chosen initialisation + per-task search
    "example": example.make_learner,
}


def make_learner(config: ConfigDict) -> Learner:
    if config.name not in FACTORIES:
        raise ValueError(
            f"Unknown learner factory {config.name!r} (learner.name); valid choices: "
            f"{', '.join(sorted(FACTORIES))}."
        )
    return FACTORIES[config.name](config)
