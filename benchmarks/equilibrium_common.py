"""Shared conv DEQ cell for the equilibrium benchmarks (JAX side).

Cell (environment.md section 9): z <- GroupNorm(relu(conv3x3(z) + inject)), 16x16 state with
32 channels, where inject = conv3x3(image) is computed once per step outside the solve.
Head: spatial mean -> linear 32 -> 10, softmax cross-entropy, plain SGD. The torchdeq worker
builds the identical model from the same .npz weights.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from nevis.equilibrium import conv2d, fixed_point, group_norm

BATCH, SIZE, CH, IN_CH, CLASSES, GROUPS = 64, 16, 32, 3, 10, 8
LR = 0.05


def make_weights(seed: int = 0, batch: int = BATCH) -> dict[str, np.ndarray]:
    """Initial weights (HWIO kernels) and one fixed batch of data, float32."""
    rng = np.random.default_rng(seed)

    def he(*shape, gain=1.0):
        fan_in = np.prod(shape[:-1])
        return (gain * rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    return {
        "w_in": he(3, 3, IN_CH, CH),
        "w": he(3, 3, CH, CH, gain=0.5),
        "gn_scale": np.ones(CH, np.float32),
        "gn_bias": np.zeros(CH, np.float32),
        "head_w": he(CH, CLASSES),
        "head_b": np.zeros(CLASSES, np.float32),
        "x": rng.standard_normal((batch, SIZE, SIZE, IN_CH)).astype(np.float32),
        "y": rng.integers(0, CLASSES, batch).astype(np.int32),
    }


def split(arrays: dict[str, np.ndarray]) -> tuple[dict, jax.Array, jax.Array]:
    params = {k: jnp.asarray(v) for k, v in arrays.items() if k not in ("x", "y")}
    return params, jnp.asarray(arrays["x"]), jnp.asarray(arrays["y"])


def cell(params: dict, inject: jax.Array, z: jax.Array, conv=conv2d) -> jax.Array:
    h = jax.nn.relu(conv(z, params["w"]) + inject)
    return group_norm(h, GROUPS, params["gn_scale"], params["gn_bias"])


def lax_conv(x, w):
    """Plain lax conv (JAX's own VJP), to show the section 9 slowdown."""
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def loss_fn(params, x, y, deq_options, conv=conv2d):
    inject = conv2d(x, params["w_in"])
    z0 = jnp.zeros(inject.shape, inject.dtype)
    f = functools.partial(cell, conv=conv)
    z, stats = fixed_point(f, params, inject, z0, **deq_options)
    logits = z.mean(axis=(1, 2)) @ params["head_w"] + params["head_b"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), stats


def make_train_step(deq_options: dict, conv=conv2d):
    """Jitted SGD step returning (params, loss, forward steps per example)."""

    @functools.partial(jax.jit, donate_argnums=0)
    def step(params, x, y):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, x, y, deq_options, conv)
        params = jax.tree.map(lambda p, g: p - LR * g, params, grads)
        return params, loss, stats.steps

    return step


def time_steps(step, params, x, y, n: int):
    """Run n steps (after the caller warmed up); return (params, seconds, mean fwd steps)."""
    t0 = time.perf_counter()
    steps = []
    for _ in range(n):
        params, loss, s = step(params, x, y)
        steps.append(s)
    jax.block_until_ready(params)
    dt = time.perf_counter() - t0
    return params, dt, float(np.mean([np.max(np.asarray(s)) for s in steps]))
