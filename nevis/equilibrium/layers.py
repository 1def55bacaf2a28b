"""Cell layers whose gradients stay fast inside solver loops on XLA:CPU.

JAX emits a convolution's input-gradient as a conv with the kernel's in/out feature axes
swapped (an HWOI layout), which XLA:CPU runs about 15-20x slower inside a while loop
(jax-ml/jax#12868) -- exactly where every implicit-gradient adjoint step runs. The
convolutions here have a custom VJP whose input-gradient is an ordinary channels-last
(HWIO) convolution with the spatially flipped, in/out swapped kernel (mathematically the
same), which avoids that slow path; the kernel gradient is a sum of per-offset matrix
products for the same reason.

`fixed_point` gives a cell's own convolutions (flax.nnx.Conv, jax.lax) this VJP by
itself (`loop_friendly`: a jaxpr-level rewrite, option loop_friendly=True). Where you
differentiate inside loops of your own, write cells with these instead:

- `Conv`: a drop-in for `flax.nnx.Conv` (same arguments, same parameters);
- `conv_general_dilated`: a drop-in for `jax.lax.conv_general_dilated` (any layout:
  channels-first convolutions, also slow in loops, are transposed to channels-last);
- `conv2d`: stride-1 NHWC/HWIO convolution of plain arrays;
- `loop_friendly(f)`: f with all of its eligible convolutions rewritten.

`group_norm` is GroupNorm written so that XLA:CPU runs it (and its VJP) fast.

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
import numpy as np
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


def _fast_pads(lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Padding,
               lhs_dilation: Any, rhs_dilation: Any, dimension_numbers: Any,
               feature_group_count: int, batch_group_count: int, preferred_element_type: Any,
               out_sharding: Any) -> tuple[Pads, jax.lax.ConvDimensionNumbers] | None:
    """(explicit pads, dimension numbers) when the convolution can take the
    loop-friendly VJP (any layout), else None."""
    n = lhs.ndim
    if not (3 <= n <= 5 and rhs.ndim == n):
        return None
    dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    fast = (_all_one(window_strides) and _all_one(lhs_dilation) and _all_one(rhs_dilation)
            and feature_group_count == 1 and batch_group_count == 1
            and preferred_element_type is None and out_sharding is None)
    if not fast:
        return None
    window = tuple(rhs.shape[d] for d in dn.rhs_spec[2:])
    pads = _explicit(padding, tuple(lhs.shape[d] for d in dn.lhs_spec[2:]), window)
    return (pads, dn) if _pads_supported(pads, window) else None


def _fast_conv(lhs: jax.Array, rhs: jax.Array, pads: Pads, dn: jax.lax.ConvDimensionNumbers,
               precision: Any) -> jax.Array:
    """The convolution through `_conv_vjp`, transposed to channels-last and back.

    Other layouts (e.g. NCHW x OIHW, or NHWC x OIHW) run 10-50x slower than NHWC x HWIO
    inside loops on XLA:CPU, forward and backward (measured: NCHW 20 ms vs 2 ms per call
    at batch 64, 16x16x32); the transposes cost a copy each, and none for channels-last.
    """
    lhs_perm = (dn.lhs_spec[0], *dn.lhs_spec[2:], dn.lhs_spec[1])
    rhs_perm = (*dn.rhs_spec[2:], dn.rhs_spec[1], dn.rhs_spec[0])
    out_axes = (dn.out_spec[0], *dn.out_spec[2:], dn.out_spec[1])
    out_perm = tuple(sorted(range(len(out_axes)), key=out_axes.__getitem__))

    def permute(a: jax.Array, perm: Sequence[int]) -> jax.Array:
        return a if tuple(perm) == tuple(range(a.ndim)) else jnp.transpose(a, perm)

    y = _conv_vjp(permute(lhs, lhs_perm), permute(rhs, rhs_perm), pads, precision)
    return permute(y, out_perm)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: Padding, lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None, **kwargs: Any) -> jax.Array:
    """`jax.lax.conv_general_dilated` with the loop-friendly VJP where it applies.

    Stride-1, undilated, ungrouped convolutions (1-D, 2-D or 3-D) take the custom VJP, in
    any layout: channels-last ones (e.g. NHWC x HWIO) directly, others (e.g. NCHW x OIHW)
    transposed to channels-last and back, which XLA:CPU also runs far faster inside loops.
    Every other call (strides, dilation, groups, padding beyond the window) is passed to
    lax unchanged, so this is safe as a drop-in, but those calls keep JAX's own VJP.
    """
    plan = _fast_pads(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                      dimension_numbers, feature_group_count, batch_group_count,
                      preferred_element_type, kwargs.get("out_sharding"))
    if plan is not None:
        return _fast_conv(lhs, rhs, *plan, precision)
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type, **kwargs)


class Conv(nnx.Conv):
    """`flax.nnx.Conv` whose gradients stay fast inside equilibrium solver loops.

    Same constructor, parameters (`kernel`, `bias`) and outputs as `nnx.Conv`; only the
    convolution primitive is `nevis.equilibrium.conv_general_dilated`, so stride-1
    convolutions get the loop-friendly VJP. `fixed_point` already gives a cell's nnx.Conv
    that VJP (`loop_friendly`); use this where you differentiate inside your own loops.
    Outside solver loops it is no faster than nnx.Conv.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("conv_general_dilated", conv_general_dilated)
        super().__init__(*args, **kwargs)


_INLINED_CALLS = ("pjit", "jit", "closed_call", "core_call")


def _eval_rewritten(jaxpr: jex.core.Jaxpr, consts: Sequence[Any], args: Sequence[Any]) -> list:
    """Evaluate a jaxpr, binding each eligible convolution through `_conv_vjp`.

    Calls of jitted functions are inlined so that their convolutions are rewritten too;
    every other equation (custom_jvp/vjp calls, control flow, callbacks, remat) is bound
    unchanged, so convolutions inside those keep JAX's own VJP.
    """
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jex.core.Literal) else env[v]

    for var, val in itertools.chain(zip(jaxpr.constvars, consts, strict=True),
                                    zip(jaxpr.invars, args, strict=True)):
        env[var] = val
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        plan = None
        if name == "conv_general_dilated":
            p = eqn.params
            plan = _fast_pads(*invals, p["window_strides"], p["padding"], p["lhs_dilation"],
                              p["rhs_dilation"], p["dimension_numbers"],
                              p["feature_group_count"], p["batch_group_count"],
                              p["preferred_element_type"], p.get("out_sharding"))
        if plan is not None:
            outs = [_fast_conv(*invals, *plan, eqn.params["precision"])]
        elif name in _INLINED_CALLS and "jaxpr" in eqn.params:
            inner = eqn.params["jaxpr"]
            if isinstance(inner, jex.core.ClosedJaxpr):
                outs = _eval_rewritten(inner.jaxpr, inner.consts, invals)
            else:
                outs = _eval_rewritten(inner, (), invals)
        else:
            bound = eqn.primitive.get_bind_params(eqn.params)  # older JAX: (subfuns, params)
            subfuns, bind_params = bound if isinstance(bound, tuple) else ((), bound)
            with eqn.ctx.manager:
                outs = eqn.primitive.bind(*subfuns, *invals, **bind_params)
            if not eqn.primitive.multiple_results:
                outs = [outs]
        for var, val in zip(eqn.outvars, outs, strict=True):
            if not isinstance(var, jex.core.DropVar):
                env[var] = val
    return [read(v) for v in jaxpr.outvars]


def loop_friendly(f: Callable) -> Callable:
    """f with the loop-friendly VJP on every eligible convolution, whatever wrote it.

    Traces f (at each call, under the caller's trace) and re-evaluates its jaxpr with
    each stride-1, undilated, ungrouped `conv_general_dilated` -- e.g. the one inside
    `flax.nnx.Conv` or a plain `jax.lax.conv_general_dilated` -- bound as this module's
    `conv_general_dilated`: channels-last x HWIO with the custom VJP, whose input-gradient
    is an ordinary HWIO convolution instead of JAX's transposed-kernel one that XLA:CPU
    runs 15-20x slower inside solver loops (jax-ml/jax#12868); other layouts transposed
    to that one. Values are the same up to float rounding (channels-last: identical), and
    so are gradients. `fixed_point` applies this to the cell (option `loop_friendly`), so
    a cell written with nnx.Conv needs no change. Convolutions inside custom_jvp /
    custom_vjp functions, control flow or `jax.checkpoint` keep JAX's own rule.
    """

    def rewritten(*args: Any) -> Any:
        flat, tree = jax.tree.flatten(args)
        # Only array leaves are traced; others (Python flags, ints, strings) stay static,
        # as f saw them, so Python control flow on them still works.
        dynamic = [i for i, leaf in enumerate(flat)
                   if isinstance(leaf, (jax.Array, np.ndarray, np.generic))]

        def call(*values: Any) -> Any:
            leaves = list(flat)
            for i, v in zip(dynamic, values, strict=True):
                leaves[i] = v
            return f(*jax.tree.unflatten(tree, leaves))

        values = [flat[i] for i in dynamic]
        closed, out_shape = jax.make_jaxpr(call, return_shape=True)(*values)
        outs = _eval_rewritten(closed.jaxpr, closed.consts, values)
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return rewritten


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

    That is the case measured slow inside loops on XLA:CPU (jax-ml/jax#12868). Not
    flagged, though also slow in loops (forward too): channels-first convs (NCHW x OIHW,
    ~10x, issue #14), which `conv_general_dilated` / `loop_friendly` also route to HWIO.
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
    convolution costs 15-20x more inside the adjoint loop (jax-ml/jax#12868).
    `fixed_point` rewrites such convolutions itself (option loop_friendly, default on);
    elsewhere build the cell with `nevis.equilibrium.Conv` / `conv_general_dilated` /
    `conv2d`, or wrap it in `loop_friendly`.
    """
    found = slow_convolutions(f, params, x, z)
    if found and (platform or jax.default_backend()) == "cpu":
        warnings.warn(
            f"the cell's VJP in z has {len(found)} convolution(s) with a transposed kernel "
            f"layout ({found[0]}), which XLA:CPU runs about 15-20x slower inside the "
            "implicit-gradient adjoint loop (jax-ml/jax#12868); fixed_point rewrites it "
            "(loop_friendly=True, the default); in your own loops build the cell with "
            "nevis.equilibrium.Conv (drop-in for flax.nnx.Conv) or "
            "nevis.equilibrium.conv_general_dilated / conv2d.", SlowAdjointWarning,
            stacklevel=2)
    return found


def group_norm(x: jax.Array, num_groups: int, scale: jax.Array | None = None,
               bias: jax.Array | None = None, eps: float = 1e-5) -> jax.Array:
    """GroupNorm over channels-last x [N, ..., C] (per example, so safe inside a
    per-example solver).

    The statistics are taken as per-channel sums over the contiguous spatial axis first,
    then summed per group on the small [N, C] result: XLA:CPU runs that (and its VJP) 2-5x
    faster than one reduction over the strided (spatial, channel-in-group) axes, and a
    cell evaluates it at every solver step. Two passes (mean, then centred variance), as
    the textbook definition.
    """
    n, c = x.shape[0], x.shape[-1]
    if c % num_groups:
        raise ValueError(f"group_norm: {c} channels do not split into {num_groups} groups")
    k = c // num_groups
    xs = x.reshape(n, -1, c)
    count = xs.shape[1] * k

    def per_channel(sums: jax.Array) -> jax.Array:  # [N, C] channel sums -> group means
        means = sums.reshape(n, num_groups, k).sum(-1) / count
        return jnp.broadcast_to(means[:, :, None], (n, num_groups, k)).reshape(n, 1, c)

    d = xs - per_channel(jnp.sum(xs, axis=1))
    r = jax.lax.rsqrt(per_channel(jnp.sum(d * d, axis=1)) + eps)
    if scale is not None:
        r = r * scale
    y = d * r
    if bias is not None:
        y = y + bias
    return y.reshape(x.shape)
