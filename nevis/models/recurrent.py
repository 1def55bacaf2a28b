"""Weight-tied recurrent / equilibrium cells with input injection, for algorithmic tasks.

A model maps an input grid (1-D sequences [B, 1, L, C] or 2-D images [B, H, W, C], NHWC) to
per-element logits through a state z of the same spatial size:

    x = inject(inputs)          # once per input
    z <- cell(x, z)             # iterated, by a solver of `nevis.equilibrium`
    logits = readout(z)         # per element, 2 classes

Cells are fully convolutional with no normalisation across positions or examples, so the same
weights run on any size, and more iterations carry information further (each iteration
moves it by a few kernel radii). The solve itself lives in `nevis.upward`.

- `RecallCell` ("recall"): DT-Net-style recall (Bansal et al. 2022), as in Anil et al.'s
  PI-Net: every iteration convolves concat(z, raw input), then `blocks` residual blocks
  (conv-ReLU-conv + identity, ReLU). The input is re-injected each iteration, so the state
  never has to remember it. Optional output nonlinearity (`out`: relu | tanh) and
  per-position LayerNorm over channels (`norm`: none | layer; per position, so it is size
  independent).
- `TanhCell` ("tanh"): z <- tanh(scale · z + x) element-wise, a diagnostic with a known
  answer: contracting for scale < 1 (one fixed point, AA ≈ 1), bistable for scale > 1
  (each element settles at the sign of its start: AA ≈ 0 from another example's state).

1-D models store kernels as (1, k, in, out) and run them as 2-D convolutions of height 1,
through `nevis.equilibrium.conv2d`, whose gradient avoids XLA:CPU's slow transposed-kernel
convolution inside solver loops.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from nevis import equilibrium as eq

OUTS = ("relu", "tanh")
NORMS = ("none", "layer")
MODELS = ("recall", "tanh")


def as_grid(inputs: jax.Array) -> jax.Array:
    """[B, L, C] sequences → [B, 1, L, C]; [B, H, W, C] images unchanged."""
    if inputs.ndim == 3:
        return inputs[:, None]
    if inputs.ndim == 4:
        return inputs
    raise ValueError(f"inputs must be [B, L, C] or [B, H, W, C], got shape {inputs.shape}")


class _Conv(nnx.Module):
    """A stride-1 SAME convolution (1-D as height-1 2-D) with bias, via eq.conv2d."""

    def __init__(self, cin: int, cout: int, kernel: int, ndim: int, *, rngs: nnx.Rngs,
                 scale: float = 1.0):
        shape = (kernel if ndim == 2 else 1, kernel, cin, cout)
        init = nnx.initializers.variance_scaling(2.0 * scale, "fan_in", "truncated_normal")
        self.kernel = nnx.Param(init(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros(cout))

    def __call__(self, x: jax.Array) -> jax.Array:
        return eq.conv2d(x, self.kernel[...]) + self.bias[...]


class _Block(nnx.Module):
    def __init__(self, width: int, kernel: int, ndim: int, *, rngs: nnx.Rngs):
        self.conv1 = _Conv(width, width, kernel, ndim, rngs=rngs)
        # The second convolution starts small, so each block starts near the identity.
        self.conv2 = _Conv(width, width, kernel, ndim, rngs=rngs, scale=0.1)

    def __call__(self, h: jax.Array) -> jax.Array:
        return nnx.relu(h + self.conv2(nnx.relu(self.conv1(h))))


def _layer_norm(h: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    mean = h.mean(-1, keepdims=True)
    var = jnp.square(h - mean).mean(-1, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias


class RecallCell(nnx.Module):
    """z ← out(blocks(relu(conv(concat(z, inputs))))), optionally LayerNorm'd per position."""

    def __init__(self, width: int, in_channels: int, *, kernel: int = 3, blocks: int = 1,
                 ndim: int = 1, out: str = "relu", norm: str = "none", rngs: nnx.Rngs):
        if out not in OUTS:
            raise ValueError(f"unknown cell output {out!r}; valid choices: {', '.join(OUTS)}.")
        if norm not in NORMS:
            raise ValueError(f"unknown cell norm {norm!r}; valid choices: {', '.join(NORMS)}.")
        self.recall = _Conv(width + in_channels, width, kernel, ndim, rngs=rngs)
        self.blocks = nnx.List([_Block(width, kernel, ndim, rngs=rngs) for _ in range(blocks)])
        self.out, self.norm = out, norm
        if norm == "layer":
            self.scale, self.shift = nnx.Param(jnp.ones(width)), nnx.Param(jnp.zeros(width))

    def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
        h = nnx.relu(self.recall(jnp.concatenate([z, x], axis=-1)))
        for block in self.blocks:
            h = block(h)
        if self.norm == "layer":
            h = _layer_norm(h, self.scale[...], self.shift[...])
        return jnp.tanh(h) if self.out == "tanh" else h


class RecurrentModel(nnx.Module):
    """inject → weight-tied cell (iterated elsewhere) → per-element two-class head.

    The state has `width` channels on the input's grid; `inject` returns the raw input as a
    grid (the cell re-reads it every iteration).
    """

    def __init__(self, *, in_channels: int, width: int = 32, kernel: int = 3, blocks: int = 1,
                 ndim: int = 1, out: str = "relu", norm: str = "none",
                 head_widths: Sequence[int] = (32,), rngs: nnx.Rngs):
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 (sequences) or 2 (images), got {ndim}.")
        self.width, self.ndim = width, ndim
        self.cell = RecallCell(width, in_channels, kernel=kernel, blocks=blocks, ndim=ndim,
                               out=out, norm=norm, rngs=rngs)
        widths = (width, *head_widths, 2)
        self.head = nnx.List([_Conv(a, b, kernel, ndim, rngs=rngs)
                              for a, b in zip(widths[:-1], widths[1:], strict=True)])

    def inject(self, inputs: jax.Array) -> jax.Array:
        return as_grid(inputs)

    def state_like(self, x: jax.Array) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(x.shape[:-1] + (self.width,), x.dtype)

    def readout(self, z: jax.Array) -> jax.Array:
        """Logits [B, *spatial, 2] (the height-1 axis of sequences removed)."""
        h = z
        for i, conv in enumerate(self.head):
            h = conv(h) if i == len(self.head) - 1 else nnx.relu(conv(h))
        return h[:, 0] if self.ndim == 1 else h


class TanhCell(nnx.Module):
    def __init__(self, scale: float):
        self.scale = nnx.Param(jnp.asarray(scale, jnp.float32))

    def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.scale[...] * z + x)


class TanhModel(nnx.Module):
    """Diagnostic: z ← tanh(scale · z + x) per element, x = `gain` · (2 · input − 1).

    Contracting when scale < 1; for scale > 1 and |x| small each element has two stable
    fixed points (one per sign), so the end state remembers the start. Readout: class 1
    where z > 0.
    """

    def __init__(self, *, in_channels: int, scale: float = 0.5, gain: float = 0.1,
                 width: int = 8, ndim: int = 1, rngs: nnx.Rngs | None = None):
        del rngs  # no random parameters
        self.cell = TanhCell(scale)
        self.gain, self.width, self.ndim = gain, width, ndim

    def inject(self, inputs: jax.Array) -> jax.Array:
        grid = as_grid(inputs)
        x = self.gain * (2.0 * grid[..., :1] - 1.0)
        return jnp.broadcast_to(x, grid.shape[:-1] + (self.width,))

    def state_like(self, x: jax.Array) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(x.shape, x.dtype)

    def readout(self, z: jax.Array) -> jax.Array:
        m = z.mean(-1)
        logits = jnp.stack([-m, m], axis=-1)
        return logits[:, 0] if self.ndim == 1 else logits


def build(name: str, *, in_channels: int, ndim: int, seed: int, **kwargs) -> nnx.Module:
    """A model by registered name ("recall" or "tanh") with its keyword options."""
    if name == "recall":
        return RecurrentModel(in_channels=in_channels, ndim=ndim, rngs=nnx.Rngs(seed), **kwargs)
    if name == "tanh":
        return TanhModel(in_channels=in_channels, ndim=ndim, **kwargs)
    raise ValueError(f"unknown recurrent model {name!r}; valid choices: {', '.join(MODELS)}.")
