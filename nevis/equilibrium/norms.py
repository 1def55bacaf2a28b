"""Spectral normalisation of cell weights, and weight normalisation with a target or a clip.

Bounding the Lipschitz constant of an equilibrium cell's weights keeps f contractive enough
for its fixed point to exist and be found in few steps.

Spectral normalisation (Miyato et al., "Spectral Normalization for Generative Adversarial
Networks", ICLR 2018) divides a kernel by its largest singular value sigma, estimated by
power iteration whose vector is carried from one training step to the next (one or a few
iterations per step suffice because the weights change slowly); the gradient treats that
vector as a constant, as torch and torchdeq do. Two operators are supported:

- matrix (default): the kernel reshaped to [prod(shape[:-1]), out] -- the usual convention
  (torch.nn.utils.spectral_norm, torchdeq); for a conv kernel this is NOT the norm of the
  convolution, only a proxy for it;
- convolution (`spectral_norm_init(..., input_shape=(H, W, C_in))`): the operator norm of
  the stride-1 channels-last convolution of an input of that shape with the given padding
  (as Gouk et al., "Regularisation of Neural Networks by Enforcing Lipschitz Continuity",
  2021, and Farnia et al., "Generalizable Adversarial Training via Spectral Normalization",
  ICLR 2019), which is what bounds the cell's Lipschitz constant.

`target_norm` rescales to sigma = target_norm (a float or a learnable array: torchdeq's
`learn_scale`); `clip=True` only shrinks kernels whose norm is above the target (torchdeq's
`clip` with clip_value 1). Compute the normalised kernel ONCE per training step, outside
`fixed_point`, and pass it to the cell in params: the power iteration then does not run in
every solver step, and gradients flow back through the normalisation to the raw kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _tree
from .layers import _channels_last
from .regularizers import _value

Padding = str | Sequence[tuple[int, int]]


def _is_conv(kernel: jax.Array, v: jax.Array) -> bool:
    """Convolution mode when v is an input image ([spatial..., C_in]) rather than a vector."""
    if v.ndim == 1:
        return False
    if v.ndim != kernel.ndim - 1 or v.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"power-iteration vector of shape {v.shape} fits neither the matrix "
                         f"form nor a conv input of kernel {kernel.shape}")
    return True


def _conv_operator(kernel: jax.Array, v: jax.Array, padding: Padding) -> jax.Array:
    """Stride-1 channels-last convolution of one input v [spatial..., C_in].

    padding: "SAME" / "VALID" / explicit pairs (zeros outside the input), or "CIRCULAR"
    (periodic boundary, output the size of the input).
    """
    x = v[None]
    window = kernel.shape[:-2]
    if isinstance(padding, str) and padding.upper() == "CIRCULAR":
        pads = [(0, 0)] + [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in window] + [(0, 0)]
        x = jnp.pad(x, pads, mode="wrap")
        padding = "VALID"
    y = jax.lax.conv_general_dilated(x, kernel, (1,) * len(window), padding,
                                     dimension_numbers=_channels_last(x.ndim),
                                     precision=jax.lax.Precision.HIGHEST)
    return y[0]


def _operator(kernel: jax.Array, v: jax.Array, padding: Padding) -> jax.Array:
    if _is_conv(kernel, v):
        return _conv_operator(kernel, v, padding)
    return jnp.dot(v, kernel.reshape(-1, kernel.shape[-1]), precision=jax.lax.Precision.HIGHEST)


def spectral_norm_init(key: jax.Array, kernel: Any,
                       input_shape: Sequence[int] | None = None) -> jax.Array:
    """Random unit starting vector of the power iteration (the state to carry between steps).

    kernel: [in, out] dense or [spatial..., C_in, C_out] conv kernel (array or NNX Param).
    input_shape None: the matrix form, a vector of size prod(kernel.shape[:-1]).
    input_shape (spatial..., C_in): the convolution operator on inputs of that shape.
    """
    kernel = _value(kernel)
    if input_shape is None:
        shape: tuple[int, ...] = (int(np.prod(kernel.shape[:-1])),)
    else:
        shape = tuple(int(n) for n in input_shape)
        if len(shape) != kernel.ndim - 1 or shape[-1] != kernel.shape[-2]:
            raise ValueError(f"input_shape {shape} must be (spatial..., C_in) for kernel "
                             f"{kernel.shape}")
    v = _tree.normal(key, shape, kernel.dtype)
    return v / jnp.linalg.norm(v)


def spectral_norm_estimate(kernel: Any, v: jax.Array, n_iters: int = 1,
                           padding: Padding = "SAME", eps: float = 1e-12
                           ) -> tuple[jax.Array, jax.Array]:
    """(sigma, v_next): `n_iters` power iterations v <- A^T A v / ||A^T A v|| from v, then
    sigma = ||A v_next||, where A is the kernel's operator (see module docstring).

    sigma is differentiable in the kernel (d sigma / dW = u v^T with u = A v / ||A v||);
    v_next is a constant (stop_gradient), to be carried to the next call.
    """
    kernel = _value(kernel)
    v = jax.lax.stop_gradient(v.astype(kernel.dtype))
    w = jax.lax.stop_gradient(kernel)
    _, transpose = jax.vjp(lambda a: _operator(w, a, padding), v)

    def power_step(_, vec):
        out = transpose(_operator(w, vec, padding))[0]
        return out / jnp.maximum(jnp.linalg.norm(out), eps)

    v_next = jax.lax.stop_gradient(jax.lax.fori_loop(0, n_iters, power_step, v))
    sigma = jnp.linalg.norm(_operator(kernel, v_next, padding))
    return sigma, v_next


def spectral_norm(kernel: Any, v: jax.Array, *, n_iters: int = 1,
                  target_norm: float | jax.Array = 1.0, clip: bool = False,
                  padding: Padding = "SAME", eps: float = 1e-12
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(normalised kernel, v_next, sigma) with sigma the kernel's estimated spectral norm.

    The kernel is scaled by target_norm / sigma, so its norm becomes target_norm; with
    clip=True by min(1, target_norm / sigma), so only a norm above the target is brought
    down to it. Carry v_next into the next training step's call (it is a constant).
    """
    kernel = _value(kernel)
    sigma, v_next = spectral_norm_estimate(kernel, v, n_iters, padding, eps)
    factor = jnp.asarray(target_norm, kernel.dtype) / jnp.maximum(sigma, eps)
    if clip:
        factor = jnp.minimum(factor, 1.0)
    return kernel * factor, v_next, sigma


def weight_norm_target(v: Any, g: Any | None = None, axis: int | tuple[int, ...] = -1, *,
                       target_norm: float = 1.0, clip: bool = False, eps: float = 1e-12
                       ) -> jax.Array:
    """Weight normalisation (Salimans & Kingma, NeurIPS 2016) with a fixed target or a clip.

    The norm of each output's weights (taken over all axes except `axis`, the output axis:
    -1 for [in, out] and HWIO kernels) is set to g (learnable, shaped like one entry per
    output) or, when g is None, to the constant `target_norm`. With clip=True the scale
    factor is capped at 1, so an output's norm becomes min(||v||, g or target_norm): large
    weights are brought down to the bound, small ones are left alone (torchdeq's `clip`
    with clip_value 1). `weight_norm(v, g)` in regularizers is the plain g * v / ||v||.
    """
    v = _value(v)
    keep = {a % v.ndim for a in ((axis,) if isinstance(axis, int) else axis)}
    reduce = tuple(a for a in range(v.ndim) if a not in keep)
    norm = jnp.sqrt(jnp.sum(v * v, axis=reduce, keepdims=True) + eps)
    scale = (jnp.asarray(target_norm, v.dtype) if g is None
             else jnp.reshape(_value(g), norm.shape))
    factor = scale / norm
    if clip:
        factor = jnp.minimum(factor, 1.0)
    return v * factor
