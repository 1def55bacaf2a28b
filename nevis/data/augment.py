"""Vectorised train-time augmentation on uint8 batches: random crop after padding, optional flip.

Parameters are sampled per global batch from a generator the loader seeds with (seed, batch
index), so a resumed run sees the same augmented pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Mirroring changes the class of characters and digits; flip stays off for keys containing these.
NOT_FLIP_INVARIANT = (
    "digit",
    "mnist",
    "glyph",
    "char",
    "letter",
    "text",
    "svhn",
    "font",
    "omniglot",
    "writer",
    "kanji",
    "hand",
)


@dataclasses.dataclass(frozen=True)
class Augment:
    """`crop_padding`: pixels of reflect padding before the random crop (None: image_size // 8).
    `flip`: random horizontal flip (None: `flip_default(task key)`)."""

    crop_padding: int | None = None
    flip: bool | None = None

    def padding(self, size: int) -> int:
        pad = size // 8 if self.crop_padding is None else self.crop_padding
        return max(0, min(pad, size - 1))

    def sample(self, rng: np.random.Generator, n: int, size: int) -> dict[str, np.ndarray]:
        pad = self.padding(size)
        return {
            "dy": rng.integers(0, 2 * pad + 1, n),
            "dx": rng.integers(0, 2 * pad + 1, n),
            "flip": rng.random(n) < 0.5 if self.flip else np.zeros(n, bool),
        }


def flip_default(key: str) -> bool:
    """Whether horizontal flips preserve the labels of task `key` (a name-based guess)."""
    return not any(word in key.lower() for word in NOT_FLIP_INVARIANT)


def resolve_augment(augment: bool | Augment | None, key: str) -> Augment | None:
    if augment is False or augment is None:
        return None
    config = Augment() if augment is True else augment
    if not isinstance(config, Augment):
        raise TypeError(f"augment must be a bool or an Augment, got {type(augment).__name__}.")
    if config.flip is None:
        config = dataclasses.replace(config, flip=flip_default(key))
    return config


def augment_batch(images: np.ndarray, params: dict[str, np.ndarray], pad: int) -> np.ndarray:
    """Crops each [S, S, 3] image at offset (dy, dx) of its reflect-padded copy; flips some.

    A per-image slice copy beats one fancy-indexing gather about fourfold (about 1 ms for
    128 x 32 x 32 x 3).
    """
    size = images.shape[1]
    pad = min(pad, size - 1)  # reflect padding cannot exceed the image
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.empty_like(images)
    for i, (dy, dx, flip) in enumerate(
        zip(params["dy"], params["dx"], params["flip"], strict=True)
    ):
        window = padded[i, dy : dy + size, dx : dx + size]
        out[i] = window[:, ::-1] if flip else window
    return out
