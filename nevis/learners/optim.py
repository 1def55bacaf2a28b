"""Optimisers and schedules by registered name (configs hold names and numbers only)."""

from __future__ import annotations

import jax
import optax
from ml_collections import ConfigDict


def _schedule(config: ConfigDict, num_steps: int) -> optax.Schedule:
    warmup = min(int(config.warmup_steps), max(num_steps - 1, 0))
    if config.schedule == "constant":
        return optax.linear_schedule(0.0, config.learning_rate, warmup) if warmup else (
            lambda _: config.learning_rate
        )
    if config.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=config.learning_rate,
            warmup_steps=warmup,
            decay_steps=max(num_steps, warmup + 1),
            end_value=config.learning_rate * 1e-3,
        )
    raise ValueError(f"Unknown schedule {config.schedule!r}; valid choices: constant, cosine.")


def _decay_mask(params):
    """Weight decay on kernels only, not on biases or normalisation scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(config: ConfigDict, num_steps: int) -> optax.GradientTransformation:
    lr = _schedule(config, num_steps)
    if config.name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(config.weight_decay, mask=_decay_mask),
            optax.sgd(lr, momentum=config.momentum, nesterov=True),
        )
    elif config.name == "adamw":
        tx = optax.adamw(lr, weight_decay=config.weight_decay, mask=_decay_mask)
    else:
        raise ValueError(f"Unknown optimizer {config.name!r}; valid choices: sgd, adamw.")
    if config.get("grad_clip_norm"):
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
    return tx
