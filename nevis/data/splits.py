"""Seeded, stratified train/dev/dev_test/test assignment for datasets without official splits.

The reference assigns each example independently (seed-0 multinomial, 56/12/12/20), which can
leave a class out of a split. Here each class is permuted with one seeded generator and cut at
exact largest-remainder counts, so every class with at least one example is in train and split
sizes match the fractions as closely as integers allow. Multi-label tasks have no single class
per example and are cut as one group. Indices within a split keep generation order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SPLIT_FRACTIONS = {"train": 0.56, "dev": 0.12, "dev_test": 0.12, "test": 0.20}


def split_counts(n: int, fractions: Mapping[str, float] = SPLIT_FRACTIONS) -> dict[str, int]:
    """Largest-remainder rounding of `n * fractions`; ties go to the earlier split."""
    raw = np.array([n * f for f in fractions.values()]) / sum(fractions.values())
    counts = np.floor(raw).astype(int)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - counts.sum()]:
        counts[i] += 1
    return dict(zip(fractions, counts.tolist(), strict=True))


def assign_splits(
    num_examples: int,
    labels: Sequence[int] | None = None,
    *,
    seed: int = 0,
    fractions: Mapping[str, float] = SPLIT_FRACTIONS,
) -> dict[str, np.ndarray]:
    """Sorted example indices per split; stratified by `labels` when given (single-label)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [np.arange(num_examples)]
    else:
        labels = np.asarray(labels)
        if labels.shape != (num_examples,):
            raise ValueError(f"Expected {num_examples} labels, got shape {labels.shape}.")
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: dict[str, list[np.ndarray]] = {s: [] for s in fractions}
    for group in groups:
        shuffled = rng.permutation(group)
        start = 0
        for split, count in split_counts(len(group), fractions).items():
            parts[split].append(shuffled[start : start + count])
            start += count
    return {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}
