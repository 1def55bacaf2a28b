"""Seeded procedural image tasks for the embedded stream (no downloads, same pixels every run).

Shapes are drawn with Pillow at twice the output size and box-downsampled (anti-aliasing), on
noisy backgrounds with random position, scale, rotation and colour, so that a small CNN learns
them in a few hundred steps without reaching 100% accuracy.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32
_SCALE = 2  # Draw at SIZE * _SCALE, then downsample.

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": 0.0, "green": 1 / 3, "blue": 2 / 3}  # hue centres
OBJECTS = ("circle", "square", "triangle", "cross", "ring", "frame", "diamond", "star")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind in ("square", "frame"):
        radii, angles = [r] * 4, [math.pi / 4 + k * math.pi / 2 for k in range(4)]
    elif kind == "triangle":
        radii, angles = [r] * 3, [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
    elif kind == "diamond":
        radii, angles = [r, 0.6 * r, r, 0.6 * r], [k * math.pi / 2 for k in range(4)]
    elif kind == "star":
        radii = [r if k % 2 == 0 else 0.45 * r for k in range(10)]
        angles = [-math.pi / 2 + k * math.pi / 5 for k in range(10)]
    elif kind == "cross":
        w = 0.33 * r
        corners = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r)]
        corners += [(-x, -y) for x, y in corners]
        radii = [math.hypot(x, y) for x, y in corners]
        angles = [math.atan2(y, x) for x, y in corners]
    else:
        raise ValueError(f"Unknown polygon {kind!r}.")
    pairs = zip(radii, angles, strict=True)
    return [(cx + q * math.cos(a + angle), cy + q * math.sin(a + angle)) for q, a in pairs]


def _draw_object(draw: ImageDraw.ImageDraw, kind: str, cx, cy, r, angle, fill) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "ring":
        draw.ellipse(box, outline=fill, width=max(3, round(r / 3)))
    elif kind == "frame":
        draw.polygon(_polygon(kind, cx, cy, r, angle), outline=fill, width=max(3, round(r / 3)))
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=fill)


def _background(rng: np.random.Generator, values: tuple[float, float] = (0.15, 0.7)) -> Image.Image:
    """Low-saturation colour gradient: clutter that carries no label information."""
    size = SIZE * _SCALE
    hsv = rng.random(), rng.uniform(0, 0.3), rng.uniform(*values)
    top = np.array(colorsys.hsv_to_rgb(*hsv))
    bottom = np.clip(top + rng.normal(0, 0.15, 3), 0, 1)
    ramp = np.linspace(0, 1, size)[:, None, None]
    if rng.random() < 0.5:
        ramp = ramp.transpose(1, 0, 2)
    pixels = (top * (1 - ramp) + bottom * ramp) * 255
    return Image.fromarray(np.broadcast_to(pixels, (size, size, 3)).astype(np.uint8))


def _finish(image: Image.Image, rng: np.random.Generator, noise: float) -> np.ndarray:
    small = np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BOX), np.float32)
    small = small + rng.normal(0, noise, small.shape)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _colour(
    rng: np.random.Generator, hue: float | None = None, darkest: float = 0.55
) -> tuple[int, int, int]:
    hue = rng.random() if hue is None else (hue + rng.uniform(-0.07, 0.07)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(darkest, 1.0))
    return tuple(int(round(c * 255)) for c in rgb)


def coloured_shapes(n: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    """RGB shape x colour classification; label = shape_index * len(COLOURS) + colour_index."""
    rng = np.random.default_rng(seed)
    hues = list(COLOURS.values())
    images, labels = [], []
    for i in range(n):
        label = i % (len(SHAPES) * len(hues))
        shape, hue = SHAPES[label // len(hues)], hues[label % len(hues)]
        image = _background(rng)
        draw = ImageDraw.Draw(image)
        if rng.random() < 0.5:  # distractor stroke of a random grey
            grey = int(rng.integers(0, 256))
            draw.line(tuple(rng.uniform(0, SIZE * _SCALE, 4)), fill=(grey,) * 3, width=2)
        r = rng.uniform(7, 16)
        cx, cy = rng.uniform(r, SIZE * _SCALE - r, 2)
        _draw_object(draw, shape, cx, cy, r, rng.uniform(-0.4, 0.4), _colour(rng, hue))
        images.append(_finish(image, rng, noise=18))
        labels.append(label)
    return images, labels


def multilabel_shapes(n: int, seed: int) -> tuple[list[np.ndarray], list[list[int]]]:
    """RGB images with 1-3 objects of distinct OBJECTS types; targets are the types present."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    limit = SIZE * _SCALE
    for _ in range(n):
        kinds = rng.choice(len(OBJECTS), size=int(rng.integers(1, 4)), replace=False)
        image = _background(rng, values=(0.1, 0.45))  # contrast for small objects
        draw = ImageDraw.Draw(image)
        placed: list[tuple[float, float, float]] = []
        for kind in kinds:
            for _attempt in range(100):  # rejection sampling for non-overlapping objects
                r = rng.uniform(8, 13)
                cx, cy = rng.uniform(r, limit - r, 2)
                if all(math.hypot(cx - x, cy - y) > r + q + 2 for x, y, q in placed):
                    break
            placed.append((cx, cy, r))
            angle = rng.uniform(-0.25, 0.25)
            _draw_object(draw, OBJECTS[kind], cx, cy, r, angle, _colour(rng, darkest=0.8))
        images.append(_finish(image, rng, noise=10))
        targets.append(sorted(int(k) for k in kinds))
    return images, targets


def _glyph_strokes(rng: np.random.Generator) -> list[np.ndarray]:
    """A class prototype: 2-4 strokes of 2-3 points each, in [0, 1] coordinates."""
    count = int(rng.integers(2, 5))
    return [rng.uniform(0.18, 0.82, (int(rng.integers(2, 4)), 2)) for _ in range(count)]


def glyphs(n: int, num_classes: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    """Grey many-class task: fixed random stroke glyphs per class with affine and point jitter."""
    prototypes = [_glyph_strokes(np.random.default_rng([seed, c])) for c in range(num_classes)]
    rng = np.random.default_rng([seed, num_classes])
    size = SIZE * _SCALE
    images, labels = [], []
    for i in range(n):
        label = i % num_classes
        angle, scale = rng.uniform(-0.2, 0.2), rng.uniform(0.85, 1.1)
        cos, sin = np.cos(angle), np.sin(angle)
        rotation = scale * np.array([[cos, -sin], [sin, cos]])
        shift = rng.uniform(-0.08, 0.08, 2) + 0.5
        image = Image.fromarray(np.full((size, size), int(rng.integers(0, 70)), np.uint8))
        draw = ImageDraw.Draw(image)
        ink, width = int(rng.integers(150, 256)), int(rng.integers(3, 7))
        strokes = list(prototypes[label])
        if rng.random() < 0.3:  # a stray stroke that belongs to no class
            strokes.append(rng.uniform(0.1, 0.9, (2, 2)))
        for stroke in strokes:
            points = (stroke - 0.5) @ rotation.T + shift + rng.normal(0, 0.025, stroke.shape)
            draw.line([tuple(p) for p in points * size], fill=ink, width=width, joint="curve")
        images.append(_finish(image, rng, noise=20))
        labels.append(label)
    return images, labels
