"""A convolutional deep-equilibrium classifier body in Flax NNX.

An explicit ResNet trunk maps images to features x (downsampled, so the equilibrium is small
and sees a large receptive field); x is injected into every cell step; the cell f(x, z) is a
two-convolution block with GroupNorm (never BatchNorm: an equilibrium must not depend on which
examples share its batch). Convolutions use `nevis.equilibrium.conv2d`, whose input
gradient avoids XLA:CPU's slow transposed-kernel convolution inside solver loops.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nevis import equilibrium as eq
from nevis.models.resnet import ResNet, group_count

NORMS = ("group", "none")


class DEQCell(nnx.Module):
    """z ← relu(x + norm2(conv2(relu(norm1(conv1(z)))))), or with `convs=1` the cheaper
    z ← relu(x + norm1(conv1(z))) (half the cost of every solver iteration and VJP).

    The input injection is added after the last normalisation, as in a ResNet block's
    shortcut, so the equilibrium keeps the input's per-example signal for the readout.

    `init_scale` multiplies the initial kernels (large values make f expansive, which is
    how tests provoke divergence); `weight_norm` reparametrises both kernels as g·v/‖v‖;
    `spectral_norm` > 0 clips each kernel's spectral norm (of its [9·C, C] matrix form) to at
    most that value, estimated by `SPECTRAL_ITERS` power iterations from a fixed start at every
    call. Stateless on purpose: the carried power vector of `nevis.equilibrium.spectral_norm`
    would be learner state outside the parameters; a few iterations of a 288×32 matrix cost
    nothing next to the convolutions.
    """

    SPECTRAL_ITERS = 8

    def __init__(self, width: int, *, groups: int = 8, norm: str = "group",
                 weight_norm: bool = False, init_scale: float = 1.0,
                 spectral_norm: float = 0.0, convs: int = 2, rngs: nnx.Rngs):
        if norm not in NORMS:
            raise ValueError(f"Unknown cell norm {norm!r}; valid choices: {', '.join(NORMS)}.")
        if convs not in (1, 2):
            raise ValueError(f"A DEQ cell has 1 or 2 convolutions, not convs={convs}.")
        init = nnx.initializers.lecun_normal()
        shape = (3, 3, width, width)
        self.convs = convs
        self.v1 = nnx.Param(init_scale * init(rngs.params(), shape))
        if convs == 2:
            self.v2 = nnx.Param(init_scale * init(rngs.params(), shape))
        self.weight_norm = weight_norm
        self.spectral_norm = spectral_norm
        if weight_norm:
            self.g1 = nnx.Param(eq.weight_norm_scale(self.v1[...]))
            if convs == 2:
                self.g2 = nnx.Param(eq.weight_norm_scale(self.v2[...]))
        self.norm = norm
        self.groups = group_count(width, groups)
        if norm == "group":
            self.scale1, self.bias1 = nnx.Param(jnp.ones(width)), nnx.Param(jnp.zeros(width))
            if convs == 2:
                self.scale2 = nnx.Param(jnp.ones(width))
                self.bias2 = nnx.Param(jnp.zeros(width))

    def _kernels(self) -> tuple[jax.Array, ...]:
        names = ("v1", "v2")[:self.convs]
        if self.weight_norm:
            kernels = tuple(eq.weight_norm(getattr(self, v), getattr(self, "g" + v[1]))
                            for v in names)
        else:
            kernels = tuple(getattr(self, v)[...] for v in names)
        if self.spectral_norm:
            start = jnp.full((kernels[0][..., 0].size,), kernels[0][..., 0].size ** -0.5)
            kernels = tuple(eq.spectral_norm(k, start, n_iters=self.SPECTRAL_ITERS,
                                             target_norm=self.spectral_norm, clip=True)[0]
                            for k in kernels)
        return kernels

    def _norm(self, y: jax.Array, scale, bias) -> jax.Array:
        if self.norm == "none":
            return y
        return eq.group_norm(y, self.groups, scale[...], bias[...])

    def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
        kernels = self._kernels()
        out = self._norm(eq.conv2d(z, kernels[0]), getattr(self, "scale1", None),
                         getattr(self, "bias1", None))
        if self.convs == 2:
            out = self._norm(eq.conv2d(nnx.relu(out), kernels[1]),
                             getattr(self, "scale2", None), getattr(self, "bias2", None))
        return nnx.relu(x + out)


INJECTIONS = ("block", "conv")


class DEQClassifier(nnx.Module):
    """Trunk, equilibrium cell and one linear head; the solve itself lives in the learner.

    `injection` says how the trunk reaches the cell's width and resolution: "block" ends the
    trunk with a full ResNet block at the cell's width (widths = stem_widths + (width,));
    "conv" ends it at stem_widths[-1] and maps to the cell with one strided 3×3 convolution
    and GroupNorm, so the cell itself does that stage's work (a lighter trunk; on the embedded
    stream the cell then runs more iterations, so the training FLOPs came out about equal).
    """

    def __init__(self, *, width: int, stem_widths: tuple[int, ...], stem_stride: int,
                 groups: int, norm: str, weight_norm: bool, init_scale: float,
                 num_classes: int, rngs: nnx.Rngs, spectral_norm: float = 0.0,
                 cell_convs: int = 2, injection: str = "block"):
        if injection not in INJECTIONS:
            raise ValueError(f"Unknown injection {injection!r}; valid choices: "
                             f"{', '.join(INJECTIONS)}.")
        widths = (*stem_widths, width) if injection == "block" else tuple(stem_widths)
        self.trunk = ResNet(widths=widths, blocks=(1,) * len(widths), norm_groups=groups,
                            stem_stride=stem_stride, rngs=rngs)
        if injection == "conv":
            self.injection = nnx.Conv(widths[-1], width, (3, 3), strides=2, use_bias=False,
                                      rngs=rngs)
            self.injection_norm = nnx.GroupNorm(width, num_groups=group_count(width, groups),
                                                rngs=rngs)
        self.cell = DEQCell(width, groups=groups, norm=norm, weight_norm=weight_norm,
                            init_scale=init_scale, spectral_norm=spectral_norm,
                            convs=cell_convs, rngs=rngs)
        self.head = nnx.Linear(width, num_classes, rngs=rngs)

    def stem(self, images: jax.Array) -> jax.Array:
        features = self.trunk.features(images)
        if hasattr(self, "injection"):
            return self.injection_norm(self.injection(features))
        return features

    def readout(self, z: jax.Array) -> jax.Array:
        return self.head(z.mean(axis=(1, 2)))
