"""Learners by registered name. A config's `name` picks the factory."""

from __future__ import annotations

from collections.abc import Callable

from ml_collections import ConfigDict

from nevis.learners import deq, finetune
from nevis.learners.base import Learner

FACTORIES: dict[str, Callable[[ConfigDict], Learner]] = {
    "independent": finetune.make_learner,
    "finetune": finetune.make_learner,
    "deq": deq.make_learner,
}


def make_learner(config: ConfigDict) -> Learner:
    if config.name not in FACTORIES:
        raise ValueError(
            f"Unknown learner {config.name!r}; valid choices: {', '.join(sorted(FACTORIES))}."
        )
    return FACTORIES[config.name](config)
