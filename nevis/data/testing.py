"""Tiny synthetic datasets for tests of any layer (write in well under a second)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from nevis.data import storage_writer
from nevis.tasks import TaskKind, TaskSpec

DEFAULT_SIZES = {"train": 23, "dev": 7, "dev_test": 5, "test": 6}


def toy_examples(
    kind: TaskKind,
    num_classes: int,
    sizes: Mapping[str, int] = DEFAULT_SIZES,
    *,
    channels: int = 1,
    seed: int = 0,
) -> dict[str, list[dict]]:
    """Random images of varying size (6-11 px per side) with random labels, per split."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict]] = {}
    for split, n in sizes.items():
        examples = []
        for _ in range(n):
            shape = (int(rng.integers(6, 12)), int(rng.integers(6, 12)))
            image = rng.integers(0, 256, shape + ((channels,) if channels == 3 else ()), np.uint8)
            if kind == TaskKind.MULTI_LABEL:
                count = int(rng.integers(1, min(3, num_classes) + 1))
                target = {"labels": sorted(rng.choice(num_classes, count, replace=False).tolist())}
            else:
                target = {"label": int(rng.integers(num_classes))}
            examples.append({"image": image, **target})
        out[split] = examples
    return out


def toy_spec(key: str, kind: TaskKind = TaskKind.SINGLE_LABEL, num_classes: int = 3) -> TaskSpec:
    return TaskSpec(key, key.replace("_", " ").title(), 2000, kind, num_classes, "custom")


def write_toy_dataset(
    data_dir: str | os.PathLike,
    key: str = "toy",
    kind: TaskKind = TaskKind.SINGLE_LABEL,
    num_classes: int = 3,
    sizes: Mapping[str, int] = DEFAULT_SIZES,
    *,
    channels: int = 1,
    seed: int = 0,
) -> tuple[TaskSpec, dict[str, list[dict]]]:
    """Writes a toy dataset; returns its spec and the examples written, for comparisons."""
    spec = toy_spec(key, kind, num_classes)
    examples = toy_examples(kind, num_classes, sizes, channels=channels, seed=seed)
    storage_writer.write_dataset(spec, examples, data_dir, progress=False)
    return spec, examples
