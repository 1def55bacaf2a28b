"""Split recipes for NEVIS'22 datasets: items in, train/dev/dev_test/test lists out.

A handler lists its dataset as `Item`s (where the image is, its label, and the official split or
domain it came from) and names a recipe; the preparation pipeline removes exact duplicates and
applies the recipe. Recipes follow the reference (`shared/references/nevis22.md` §5):

| recipe                 | fractions                                                              |
|------------------------|------------------------------------------------------------------------|
| `random_split()`       | all items → train .56 / dev .12 / dev_test .12 / test .20              |
| `official_test()`      | group "train" → .70/.15/.15 train/dev/dev_test; "test" → test          |
| `official_val_test()`  | group "train" → .80/.20 train/dev; "val" → dev_test; "test" → test      |
| `held_out(domains)`    | other groups → .80/.20 train/dev; held-out domains → ½ dev_test, ½ test |
| `explicit()`           | each item carries its split (bespoke recipes: Brodatz, LFW, …)          |

Deviation from the reference, on purpose: the reference assigns examples independently (a seed-0
multinomial), which can leave a class out of a split and lets split sizes drift. Here every random
cut (seed 0) has exact global counts and is stratified: each class lands within one example of its
share in every split (see `_cut`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nevis.data import splits

STORED_SPLITS = ("train", "dev", "dev_test", "test")

# What an item's image is: a file, encoded bytes (PNG/JPEG/...), a uint8 array, or a function
# returning one of those (read lazily, e.g. a member of a large archive).
ImageRef = Path | bytes | np.ndarray | Callable[[], "bytes | np.ndarray"]


@dataclasses.dataclass(frozen=True)
class Item:
    """One example before splitting.

    label: a class index (single-label) or a sequence of class indices (multi-label).
    group: where the item comes from in the source — an official split ("train", "val",
        "test") or a domain ("sketch"); recipes read it.
    split: the stored split, for `explicit()` recipes only.
    name: a short description used in error messages (e.g. the file name in the archive).
    """

    image: ImageRef
    label: int | Sequence[int]
    group: str = "all"
    split: str | None = None
    name: str = ""


def read_image(item: Item) -> bytes | np.ndarray:
    """The item's image as encoded bytes or a uint8 array."""
    image = item.image
    if callable(image) and not isinstance(image, np.ndarray):
        image = image()
    if isinstance(image, Path):
        return image.read_bytes()
    if isinstance(image, bytes | np.ndarray):
        return image
    raise TypeError(f"{item.name or item}: unsupported image reference {type(image).__name__}")


def image_digest(image: bytes | np.ndarray) -> bytes:
    """Identity of an image's content, for exact-duplicate detection."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(image, np.ndarray):
        h.update(repr((image.dtype.str, image.shape)).encode())
        h.update(np.ascontiguousarray(image).tobytes())
    else:
        h.update(image)
    return h.digest()


def _label_key(label: int | Sequence[int]) -> Any:
    return label if isinstance(label, int | np.integer) else tuple(sorted(int(c) for c in label))


@dataclasses.dataclass(frozen=True)
class Deduplicated:
    items: list[Item]
    removed: int  # exact duplicates (same image and label, same group) dropped
    conflicting: int  # same image under different labels in one group (first kept)


def deduplicate(items: Sequence[Item], digests: Sequence[bytes] | None = None) -> Deduplicated:
    """Drops exact duplicates within each group, keeping the first occurrence.

    Duplicates across groups (e.g. an image in both the official train and test sets) are kept:
    official test sets are not edited; the pipeline counts them in the dataset's metadata.
    `digests` (one `image_digest` per item, e.g. computed in parallel) saves reading them here.
    """
    if digests is None:
        digests = [image_digest(read_image(item)) for item in items]
    seen: dict[tuple[str, bytes], Any] = {}
    kept, removed, conflicting = [], 0, 0
    for item, digest in zip(items, digests, strict=True):
        key = (item.group, digest)
        if key in seen:
            removed += 1
            conflicting += seen[key] != _label_key(item.label)
            continue
        seen[key] = _label_key(item.label)
        kept.append(item)
    return Deduplicated(kept, removed, conflicting)


Recipe = Callable[[Sequence[Item]], dict[str, list[Item]]]


def _stratify_labels(items: Sequence[Item]) -> list[int] | None:
    labels = [item.label for item in items]
    if all(isinstance(label, int | np.integer) for label in labels):
        return [int(label) for label in labels]
    return None  # multi-label: cut as one group


def _cut(items: Sequence[Item], fractions: Mapping[str, float], seed: int) -> dict[str, list]:
    """Seeded stratified cut with exact global counts.

    Each class's items are spread evenly over [0, 1) in random order (rank + a random offset,
    over the class size); all items are sorted by that position and the sorted list is cut at
    the largest-remainder counts of the fractions. Every split gets its exact share overall and
    each class within one item of its share, even classes smaller than 1 / fraction (cutting
    each class separately would round a small class's dev_test share to zero every time).
    """
    n = len(items)
    counts = splits.split_counts(n, fractions)
    rng = np.random.default_rng(seed)
    labels = _stratify_labels(items)
    if labels is None:
        order = rng.permutation(n)
    else:
        labels_array = np.asarray(labels)
        position = np.empty(n)
        for c in np.unique(labels_array):
            members = rng.permutation(np.flatnonzero(labels_array == c))
            position[members] = (np.arange(len(members)) + rng.random()) / len(members)
        order = np.lexsort((rng.random(n), position))
    out, start = {}, 0
    for split, count in counts.items():
        out[split] = [items[i] for i in np.sort(order[start : start + count])]
        start += count
    return out


def _by_group(items: Sequence[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    return groups


def _check_groups(recipe: str, groups: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(groups) - set(allowed))
    if unknown:
        raise ValueError(
            f"recipe {recipe}: items in groups {unknown}; this recipe reads only {list(allowed)}."
        )


def random_split(seed: int = 0) -> Recipe:
    """No official split: train .56 / dev .12 / dev_test .12 / test .20 of everything."""

    def recipe(items: Sequence[Item]) -> dict[str, list[Item]]:
        return _cut(list(items), splits.SPLIT_FRACTIONS, seed)

    recipe.description = "random 56/12/12/20"  # type: ignore[attr-defined]
    return recipe


def official_test(seed: int = 0, train: str = "train", test: str = "test") -> Recipe:
    """Official train and test: train → .70/.15/.15 train/dev/dev_test; test → test."""

    def recipe(items: Sequence[Item]) -> dict[str, list[Item]]:
        groups = _by_group(items)
        _check_groups("official_test", groups, (train, test))
        out = _cut(groups.get(train, []), {"train": .70, "dev": .15, "dev_test": .15}, seed)
        return {**out, "test": groups.get(test, [])}

    recipe.description = "official train → 70/15/15; official test → test"  # type: ignore
    return recipe


def official_val_test(
    seed: int = 0, train: str = "train", val: str = "val", test: str = "test"
) -> Recipe:
    """Official train, val and test: train → .80/.20 train/dev; val → dev_test; test → test."""

    def recipe(items: Sequence[Item]) -> dict[str, list[Item]]:
        groups = _by_group(items)
        _check_groups("official_val_test", groups, (train, val, test))
        out = _cut(groups.get(train, []), {"train": .80, "dev": .20}, seed)
        return {**out, "dev_test": groups.get(val, []), "test": groups.get(test, [])}

    recipe.description = "official train → 80/20; val → dev_test; test → test"  # type: ignore
    return recipe


def held_out(domains: Sequence[str], seed: int = 0) -> Recipe:
    """Domain shift: other groups → .80/.20 train/dev; held-out domains → halves dev_test/test."""

    def recipe(items: Sequence[Item]) -> dict[str, list[Item]]:
        inside = [i for i in items if i.group not in domains]
        outside = [i for i in items if i.group in domains]
        out = _cut(inside, {"train": .80, "dev": .20}, seed)
        return {**out, **_cut(outside, {"dev_test": .50, "test": .50}, seed)}

    recipe.description = f"held-out {', '.join(domains)} → dev_test/test"  # type: ignore
    return recipe


def explicit() -> Recipe:
    """Each item names its split (bespoke recipes computed by the handler)."""

    def recipe(items: Sequence[Item]) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {split: [] for split in STORED_SPLITS}
        for item in items:
            if item.split not in out:
                raise ValueError(
                    f"item {item.name!r} has split {item.split!r}; explicit recipes need one "
                    f"of {STORED_SPLITS}."
                )
            out[item.split].append(item)
        return out

    recipe.description = "explicit (bespoke)"  # type: ignore[attr-defined]
    return recipe
