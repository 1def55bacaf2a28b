"""Cell layers whose gradients stay fast inside solver loops on XLA:CPU.

JAX emits a convolution's input-gradient as a conv with the kernel's in/out feature axes
swapped (an HWOI layout), which XLA:CPU runs about 15-20x slower inside a while loop
(jax-ml/jax#12868) -- exactly where every implicit-gradient adjoint step runs. The
convolutions here have a custom VJP whose input-gradient is an ordinary channels-last
(HWIO) convolution with the spatially flipped, in/out swapped kernel (mathematically the
same), which avoids that slow path; the kernel gradient is a sum of per-offset matrix
products for the same reason.

Write equilibrium cells with these instead of `jax.lax.conv_general_dilated` /
`flax.nnx.Conv`:

- `Conv`: a drop-in for `flax.nnx.Conv` (same arguments, same parameters);
- `conv_general_dilated`: a drop-in for `jax.lax.conv_general_dilated`;
- `conv2d`: stride-1 NHWC/HWIO convolution of plain arrays.

`check_cell` finds the slow path in an existing cell: it inspects the VJP in z of
f(params, x, z) and warns (`SlowAdjointWarning`) for each convolution XLA:CPU would run
slowly inside the adjoint loop.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.extend as jex
import jax.numpy as jnp
from flax import nnx

Padding = str | Sequence[tuple[int, int]]
Pads = tuple[tuple[int, int], ...]


def _channels_last(ndim: int) -> jax.lax.ConvDimensionNumbers:
    """Dimension numbers of N...C inputs/outputs and spatial...IO kernels."""
    spatial = tuple(range(1, ndim - 1))
    return jax.lax.ConvDimensionNumbers(
        lhs_spec=(0, ndim - 1, *spatial), rhs_spec=(ndim - 1, ndim - 2, *range(ndim - 2)),
        out_spec=(0, ndim - 1, *spatial))


def _conv(x, kernel, pads: Pads, precision=None):
    return jax.lax.conv_general_dilated(x, kernel, (1,) * len(pads), pads,
                                        dimension_numbers=_channels_last(x.ndim),
                                        precision=precision)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_vjp(x, kernel, pads: Pads, precision):
    return _conv(x, kernel, pads, precision)


def _fwd(x, kernel, pads, precision):
    return _conv(x, kernel, pads, precision), (x, kernel)


def _bwd(pads, precision, res, gy):
    x, kernel = res
    sizes = kernel.shape[:-2]
    spatial = tuple(range(len(sizes)))
    # The input gradient as a channels-last conv: flip the window, swap in/out features.
    flipped = jnp.swapaxes(jnp.flip(kernel, spatial), -1, -2)
    back = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(sizes, pads, strict=True))
    dx = _conv(gy, flipped, back, precision)
    # Kernel gradient as one small GEMM per kernel offset (JAX's own rule is also a
    # slow conv inside loops, which matters for unrolled/phantom gradients).
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out = gy.shape[1:-1]
    rows = []
    for offset in itertools.product(*(range(k) for k in sizes)):
        window = tuple(slice(o, o + n) for o, n in zip(offset, out, strict=True))
        rows.append(jnp.einsum("b...i,b...o->io", xp[(slice(None), *window)], gy,
                               precision=precision))
    dk = jnp.stack(rows).reshape(kernel.shape)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


_conv_vjp.defvjp(_fwd, _bwd)


def _explicit(padding: Padding, in_shape: Sequence[int], window: Sequence[int]) -> Pads:
    if isinstance(padding, str):
        pads = jax.lax.padtype_to_pads(in_shape, window, (1,) * len(window), padding)
    else:
        pads = padding
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if len(pads) != len(window):
        raise ValueError(f"padding {padding!r} needs one (low, high) pair per spatial "
                         f"dimension ({len(window)}).")
    return pads


def conv2d(x: jax.Array, kernel: jax.Array, padding: Padding = "SAME") -> jax.Array:
    """Stride-1 2-D convolution, x NHWC and kernel HWIO, with the loop-friendly VJP.

    padding: "SAME", "VALID" or ((top, bottom), (left, right)), each pad at most the
    kernel size - 1. Reverse mode only.
    """
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"conv2d needs x NHWC and kernel HWIO (4-D); got shapes {x.shape} "
                         f"and {kernel.shape}. Use conv_general_dilated for 1-D or 3-D.")
    pads = _explicit(padding, x.shape[1:3], kernel.shape[:2])
    if not _pads_supported(pads, kernel.shape[:2]):
        raise ValueError(f"conv2d padding {pads} must lie in [0, kernel size - 1] per side; "
                         "use conv_general_dilated for other paddings.")
    return _conv_vjp(x, kernel, pads, None)


def _pads_supported(pads: Pads, window: Sequence[int]) -> bool:
    return all(0 <= p <= k - 1 for (lo, hi), k in zip(pads, window, strict=True)
               for p in (lo, hi))


def _all_one(values: Any) -> bool:
    return values is None or all(int(v) == 1 for v in values)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: Padding, lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None, **kwargs: Any) -> jax.Array:
    """`jax.lax.conv_general_dilated` with the loop-friendly VJP where it applies.

    Stride-1, undilated, ungrouped channels-last convolutions (1-D, 2-D or 3-D; e.g.
    NHWC x HWIO) take the custom VJP; every other call (strides, dilation, groups,
    channels-first layouts, padding beyond the window) is passed to lax unchanged, so
    this is safe as a drop-in, but those calls keep JAX's own VJP.
    """
    dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    n = lhs.ndim
    window = rhs.shape[:-2]
    fast = (dn == _channels_last(n) and 3 <= n <= 5 and _all_one(window_strides)
            and _all_one(lhs_dilation) and _all_one(rhs_dilation)
            and feature_group_count == 1 and batch_group_count == 1
            and preferred_element_type is None and kwargs.get("out_sharding") is None)
    if fast:
        pads = _explicit(padding, lhs.shape[1:-1], window)
        if _pads_supported(pads, window):
            return _conv_vjp(lhs, rhs, pads, precision)
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type, **kwargs)


class Conv(nnx.Conv):
    """`flax.nnx.Conv` whose gradients stay fast inside equilibrium solver loops.

    Same constructor, parameters (`kernel`, `bias`) and outputs as `nnx.Conv`; only the
    convolution primitive is `nevis.equilibrium.conv_general_dilated`, so stride-1
    channels-last convolutions get the loop-friendly VJP. Use it for the convolutions of
    a cell passed to `fixed_point`; outside solver loops it is no faster than nnx.Conv.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("conv_general_dilated", conv_general_dilated)
        super().__init__(*args, **kwargs)


class SlowAdjointWarning(RuntimeWarning):
    """A cell's VJP contains a convolution that XLA:CPU runs slowly inside solver loops."""


def _walk(jaxpr: jex.core.Jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jex.core.jaxprs_in_params(eqn.params):
            yield from _walk(sub)


def _slow_layout(dn: jax.lax.ConvDimensionNumbers, ndim: int) -> bool:
    """The layout JAX's input-gradient rule emits for a channels-last conv: channels-last
    input and output, kernel axes (spatial..., out, in) instead of (spatial..., in, out).

    That is the case measured slow inside loops on XLA:CPU (jax-ml/jax#12868); other
    layouts (e.g. channels-first cells) are not flagged, their speed being unmeasured here.
    """
    canonical = _channels_last(ndim)
    swapped = (ndim - 2, ndim - 1, *range(ndim - 2))
    return (dn.lhs_spec == canonical.lhs_spec and dn.out_spec == canonical.out_spec
            and tuple(dn.rhs_spec) == swapped)


def slow_convolutions(f: Callable, params: Any, x: Any, z: Any) -> list[str]:
    """Describe each convolution in the VJP in z of f(params, x, z) on XLA:CPU's slow path.

    Only shapes matter (arrays or jax.ShapeDtypeStruct). The VJP in z is what every
    implicit-gradient adjoint step evaluates inside a while loop.
    """
    def vjp_in_z(p, xx, zz, ct):
        return jax.vjp(lambda v: f(p, xx, v), zz)[1](ct)

    ct = jax.eval_shape(f, params, x, z)
    closed = jax.make_jaxpr(vjp_in_z)(params, x, z, ct)
    found = []
    for eqn in _walk(closed.jaxpr):
        if eqn.primitive.name != "conv_general_dilated":
            continue
        dn = eqn.params["dimension_numbers"]
        lhs, rhs = (v.aval for v in eqn.invars[:2])
        if _slow_layout(dn, lhs.ndim):
            found.append(f"conv {tuple(lhs.shape)} x {tuple(rhs.shape)} with lhs/kernel/out "
                         f"specs {dn.lhs_spec}/{dn.rhs_spec}/{dn.out_spec}")
    return found


def check_cell(f: Callable, params: Any, x: Any, z: Any, *,
               platform: str | None = None) -> list[str]:
    """Warn once per call if the cell's adjoint would hit XLA:CPU's slow convolution path.

    Returns `slow_convolutions(f, params, x, z)`; warns (`SlowAdjointWarning`) when that
    is non-empty and the platform (default: JAX's default backend) is "cpu", where such a
    convolution costs 15-20x more inside the adjoint loop (jax-ml/jax#12868). The fix is
    to build the cell with `nevis.equilibrium.Conv` / `conv_general_dilated` / `conv2d`.
    """
    found = slow_convolutions(f, params, x, z)
    if found and (platform or jax.default_backend()) == "cpu":
        warnings.warn(
            f"the cell's VJP in z has {len(found)} convolution(s) with a transposed kernel "
            f"layout ({found[0]}), which XLA:CPU runs about 15-20x slower inside the "
            "implicit-gradient adjoint loop (jax-ml/jax#12868); build the cell with "
            "nevis.equilibrium.Conv (drop-in for flax.nnx.Conv) or "
            "nevis.equilibrium.conv_general_dilated / conv2d.", SlowAdjointWarning,
            stacklevel=2)
    return found


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
