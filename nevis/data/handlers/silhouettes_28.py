"""Caltech 101 Silhouettes, 28×28 (Marlin, Swersky, Chen & de Freitas, "Inductive Principles
for Restricted Boltzmann Machine Learning", AISTATS 2010): binary silhouettes of the Caltech-101
object outlines.

Raw files (Benjamin Marlin's data page, md5 published by the reference), MATLAB .mat files:
- `caltech101_silhouettes_28.mat`: `X` (one image a row), `Y` (labels) and `classnames`
  (a cell array of the class names, index + 1 = label);
- `caltech101_silhouettes_28_split1.mat`: the authors' split, `train_data`/`train_labels`,
  `val_data`/`val_labels`, `test_data`/`test_labels` (rows of 784 values in [0, 1], labels
  1-based, one a row).

Label rule: label - 1; class names from `classnames` of the first file (computed at
extraction; the dataset documents 101 classes). Each row is reshaped to 28×28 in row-major
order, as the reference does (not checked against MATLAB's column-major layout: a transposed
silhouette is what the reference stores too), scaled by 255 and stored as a grey uint8 array.
Recipe: official train → 80/20 train/dev; official val → dev_test; official test → test
(`official_val_test()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

SIDE = 28
DATA_FILE = f"caltech101_silhouettes_{SIDE}.mat"
SPLIT_FILE = f"caltech101_silhouettes_{SIDE}_split1.mat"
_BASE_URL = "https://people.cs.umass.edu/~marlin/data/"


def class_names_of(mat: dict) -> list[str]:
    """The `classnames` cell array as a list of strings."""
    names = []
    for cell in np.asarray(mat["classnames"]).reshape(-1):
        value = np.asarray(cell).reshape(-1)
        names.append(str(value[0]) if value.size else "")
    return names


def _to_uint8(rows: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(rows, np.float64) * 255.0), 0, 255).astype(np.uint8)


def build(ctx: BuildContext) -> Built:
    class_names = class_names_of(scipy.io.loadmat(ctx.path(DATA_FILE)))
    split = scipy.io.loadmat(ctx.path(SPLIT_FILE))
    items = []
    for part in ("train", "val", "test"):
        data = np.asarray(split[f"{part}_data"])
        labels = np.asarray(split[f"{part}_labels"]).astype(np.int64).reshape(-1) - 1
        if data.shape != (len(labels), SIDE * SIDE):
            raise ValueError(f"{SPLIT_FILE}: {part}_data has shape {data.shape}, expected "
                             f"({len(labels)}, {SIDE * SIDE}).")
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise ValueError(f"{SPLIT_FILE}: {part}_labels outside 1..{len(class_names)}.")
        images = _to_uint8(data).reshape(-1, SIDE, SIDE)
        items.extend(recipes.Item(images[i], int(label), group=part, name=f"{part}[{i}]")
                     for i, label in enumerate(labels))
    return Built(class_names, items, recipes.official_val_test(), channels=1,
                 metadata={"images_per_split": {p: sum(i.group == p for i in items)
                                                for p in ("train", "val", "test")}})


def write_fixture(folder: Path) -> None:
    """8 classes: 5 train, 2 val and 2 test silhouettes each; `X`/`Y` hold them all."""
    rng = np.random.default_rng(101)
    names = np.empty((1, 8), dtype=object)
    names[0, :] = [f"fixture_class_{c}" for c in range(8)]
    split: dict[str, np.ndarray] = {"classnames": names}
    for part, per_class in (("train", 5), ("val", 2), ("test", 2)):
        labels = np.repeat(np.arange(1, 9), per_class)
        split[f"{part}_data"] = (rng.random((len(labels), SIDE * SIDE)) < 0.5).astype(np.float64)
        split[f"{part}_labels"] = labels.reshape(-1, 1).astype(np.float64)
    everything = {
        "X": np.concatenate([split[f"{p}_data"] for p in ("train", "val", "test")]),
        "Y": np.concatenate([split[f"{p}_labels"] for p in ("train", "val", "test")]).T,
        "classnames": names,
    }
    scipy.io.savemat(folder / DATA_FILE, everything, do_compression=True)
    scipy.io.savemat(folder / SPLIT_FILE, split, do_compression=True)


HANDLER = Handler(
    key="silhouettes_28",
    name="Caltech 101 Silhouettes",
    year=2010,
    sources=(
        Url(_BASE_URL + DATA_FILE, md5="1432d2809e8bf111f1104a234731ddb1"),
        Url(_BASE_URL + SPLIT_FILE, md5="4483e9c14b188fd09937f9ea6f9ea777"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://people.cs.umass.edu/~marlin/data.shtml",
    num_classes=None,
)
