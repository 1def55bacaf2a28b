"""A small pre-activation-free ResNet family in Flax NNX, sized by config.

GroupNorm instead of the reference's BatchNorm: outputs then do not depend on batch
composition, so padding, device count and evaluation batch size cannot change a result.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx


def group_count(channels: int, max_groups: int) -> int:
    """The largest number of GroupNorm groups ≤ max_groups that divides `channels`."""
    g = min(max_groups, channels)
    while channels % g:
        g -= 1
    return g


class BasicBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=stride, use_bias=False, rngs=rngs)
        self.norm1 = nnx.GroupNorm(cout, num_groups=group_count(cout, groups), rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), use_bias=False, rngs=rngs)
        self.norm2 = nnx.GroupNorm(cout, num_groups=group_count(cout, groups), rngs=rngs)
        self.project = (
            nnx.Conv(cin, cout, (1, 1), strides=stride, use_bias=False, rngs=rngs)
            if stride != 1 or cin != cout
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        shortcut = x if self.project is None else self.project(x)
        return nnx.relu(y + shortcut)


class ResNet(nnx.Module):
    """Stem (3×3, no max-pool, as the reference's CifarResNet) + stages + mean pool.

    `stem_stride=2` quarters the cost for small CPU budgets; the reference uses 1 at 64×64.
    """

    def __init__(
        self,
        *,
        widths: Sequence[int] = (16, 32, 64),
        blocks: Sequence[int] = (1, 1, 1),
        norm_groups: int = 8,
        stem_stride: int = 1,
        rngs: nnx.Rngs,
    ):
        if len(widths) != len(blocks):
            raise ValueError(f"widths {tuple(widths)} and blocks {tuple(blocks)} differ in length.")
        self.stem = nnx.Conv(
            3, widths[0], (3, 3), strides=stem_stride, use_bias=False, rngs=rngs
        )
        self.stem_norm = nnx.GroupNorm(
            widths[0], num_groups=group_count(widths[0], norm_groups), rngs=rngs
        )
        layers = []
        cin = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for b in range(count):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(cin, width, stride, norm_groups, rngs=rngs))
                cin = width
        self.blocks = nnx.List(layers)
        self.num_features = cin

    def features(self, x: jax.Array) -> jax.Array:
        """The last stage's feature map [B, H, W, C], before pooling."""
        x = nnx.relu(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.features(x).mean(axis=(1, 2))
