"""Shared conv DEQ cell for the equilibrium benchmarks (JAX side).

Cell (environment.md section 9): z <- GroupNorm(relu(conv3x3(z) + inject)), 16x16 state with
32 channels, where inject = conv3x3(image) is computed once per step outside the solve.
Head: spatial mean -> linear 32 -> 10, softmax cross-entropy, plain SGD. The torchdeq worker
builds the identical model from the same .npz weights.

Two forms of the cell: a function of a params dict (`cell`, with a choice of conv), and a
Flax NNX module (`NNXCell`) built with a given conv module class -- `flax.nnx.Conv`, what a
user writes first, or its drop-in `nevis.equilibrium.Conv`.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nevis import equilibrium as eq
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


CONV_MODULES = {"nnx.Conv": nnx.Conv, "eq.Conv": eq.Conv}


class NNXCell(nnx.Module):
    """The benchmark cell as an NNX module: GroupNorm(relu(conv(z) + inject))."""

    def __init__(self, conv_cls: type[nnx.Conv], weights: dict[str, np.ndarray]):
        self.conv = conv_cls(CH, CH, (3, 3), use_bias=False,
                             kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0))
        self.conv.kernel = nnx.Param(jnp.asarray(weights["w"]))
        self.gn_scale = nnx.Param(jnp.asarray(weights["gn_scale"]))
        self.gn_bias = nnx.Param(jnp.asarray(weights["gn_bias"]))

    def __call__(self, inject: jax.Array, z: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.conv(z) + inject)
        return group_norm(h, GROUPS, self.gn_scale[...], self.gn_bias[...])


def nnx_model(conv: str, weights: dict[str, np.ndarray]):
    """(cell function f(cell_params, inject, z), params with the cell's NNX state under "cell")."""
    graphdef, cell_params = nnx.split(NNXCell(CONV_MODULES[conv], weights), nnx.Param)

    def f(p, inject, z):
        return nnx.merge(graphdef, p)(inject, z)

    params = {"cell": cell_params, **{k: jnp.asarray(weights[k])
                                      for k in ("w_in", "head_w", "head_b")}}
    return f, params


def nnx_loss(f, params, x, y, deq_options):
    """Cross-entropy of the NNX-cell DEQ (same head and injection as `loss_fn`)."""
    inject = conv2d(x, params["w_in"])
    z, stats = fixed_point(f, params["cell"], inject, jnp.zeros_like(inject), **deq_options)
    logits = z.mean(axis=(1, 2)) @ params["head_w"] + params["head_b"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), stats


def make_nnx_train_step(f, deq_options: dict):
    """Jitted SGD step of the NNX-cell DEQ returning (params, loss)."""

    @functools.partial(jax.jit, donate_argnums=0)
    def step(params, x, y):
        (loss, _), grads = jax.value_and_grad(
            lambda p: nnx_loss(f, p, x, y, deq_options), has_aux=True)(params)
        return jax.tree.map(lambda p, g: p - LR * g, params, grads), loss

    return step
