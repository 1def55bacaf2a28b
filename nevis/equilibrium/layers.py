"""Cell layers whose gradients stay fast inside solver loops on XLA:CPU.

JAX emits a convolution's input-gradient as a conv with an HWOI kernel layout, which
XLA:CPU runs about 20x slower inside a while loop (jax-ml/jax#12868) -- exactly where
every implicit-gradient adjoint step runs. `conv2d` has a custom VJP whose
input-gradient is an ordinary HWIO convolution with the spatially flipped, in/out
swapped kernel (mathematically the same), which avoids that slow path; the kernel
gradient is a sum of per-offset matrix products for the same reason.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

Padding = str | tuple[tuple[int, int], tuple[int, int]]
_DN = ("NHWC", "HWIO", "NHWC")


def _explicit(padding: Padding, kh: int, kw: int) -> tuple[tuple[int, int], tuple[int, int]]:
    if padding == "SAME":
        return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    if padding == "VALID":
        return (0, 0), (0, 0)
    (a, b), (c, d) = padding
    return (int(a), int(b)), (int(c), int(d))


def _conv(x, kernel, pads):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=_DN)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_vjp(x, kernel, pads):
    return _conv(x, kernel, pads)


def _fwd(x, kernel, pads):
    return _conv(x, kernel, pads), (x, kernel)


def _bwd(pads, res, gy):
    x, kernel = res
    kh, kw = kernel.shape[:2]
    (top, bottom), (left, right) = pads
    flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)  # HWIO with I = out, O = in
    dx = _conv(gy, flipped, ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right)))
    # Kernel gradient as one small GEMM per kernel offset (JAX's own rule is also a
    # slow conv inside loops, which matters for unrolled/phantom gradients).
    xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    h, w = gy.shape[1:3]
    dk = jnp.stack([jnp.stack([jnp.einsum("bhwi,bhwo->io", xp[:, i:i + h, j:j + w], gy)
                               for j in range(kw)]) for i in range(kh)])
    return dx, dk.astype(kernel.dtype)


_conv_vjp.defvjp(_fwd, _bwd)


def conv2d(x: jax.Array, kernel: jax.Array, padding: Padding = "SAME") -> jax.Array:
    """Stride-1 2-D convolution, x NHWC and kernel HWIO, with the loop-friendly VJP.

    padding: "SAME", "VALID" or ((top, bottom), (left, right)). Reverse mode only.
    """
    pads = _explicit(padding, kernel.shape[0], kernel.shape[1])
    return _conv_vjp(x, kernel, pads)


def group_norm(x: jax.Array, num_groups: int, scale: jax.Array | None = None,
               bias: jax.Array | None = None, eps: float = 1e-5) -> jax.Array:
    """GroupNorm over NHWC (per example, so safe inside a per-example solver)."""
    n, h, w, c = x.shape
    xg = x.reshape(n, h, w, num_groups, c // num_groups)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=(1, 2, 4), keepdims=True)
    y = ((xg - mean) * jax.lax.rsqrt(var + eps)).reshape(n, h, w, c)
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y
