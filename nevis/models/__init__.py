"""Backbones by registered name; configs name a model, never hold a callable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from nevis.models.resnet import ResNet

BACKBONES = {"resnet": ResNet}


def make_backbone(name: str, kwargs: dict[str, Any], seed: int) -> nnx.Module:
    if name not in BACKBONES:
        raise ValueError(f"Unknown model {name!r}; valid choices: {', '.join(BACKBONES)}.")
    return BACKBONES[name](**kwargs, rngs=nnx.Rngs(seed))


def init_params(build: Callable[[], nnx.Module]) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, params) of the module `build()` makes, initialised in one compiled call.

    Eager initialisation compiles one random-number kernel per layer, and an optimised
    compile of threefry for a whole model takes ~10 s on a small CPU; initialisation runs once
    per task, so it is compiled without backend optimisation (~1 s).
    """
    graphdef = nnx.graphdef(nnx.eval_shape(build))
    lowered = jax.jit(lambda: nnx.state(build(), nnx.Param)).lower()
    params = lowered.compile(compiler_options={"xla_backend_optimization_level": 0})()
    return graphdef, params
