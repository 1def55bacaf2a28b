"""Backbones by registered name; configs name a model, never hold a callable."""

from __future__ import annotations

from typing import Any

from flax import nnx

from nevis.models.resnet import ResNet

BACKBONES = {"resnet": ResNet}


def make_backbone(name: str, kwargs: dict[str, Any], seed: int) -> nnx.Module:
    if name not in BACKBONES:
        raise ValueError(f"Unknown model {name!r}; valid choices: {', '.join(BACKBONES)}.")
    return BACKBONES[name](**kwargs, rngs=nnx.Rngs(seed))
