"""Colorectal histology MNIST ("Path MNIST" in NEVIS'22; Kather et al., "Multi-class texture
analysis in colorectal cancer histology", Scientific Reports 2016): 5,000 H&E tissue tiles in 8
classes, 625 each, at 28×28 RGB.

Raw file: the Kaggle dataset `kmader/colorectal-histology-mnist`
(`colorectal-histology-mnist.zip`, md5 published by the reference), which holds the original
tiles (`Kather_texture_2016_image_tiles_5000.zip`, …) and MNIST-like CSVs; only
`hmnist_28_28_RGB.csv` is read: a header `pixel0000,…,pixel2351,label`, then one tile a row,
pixel k at (row, column, channel) with k = 3·(28·row + column) + channel, label 1–8.

Classes (label - 1): Kather's eight tissue types in their published order (01_TUMOR … 08_EMPTY):
tumour epithelium, simple stroma, complex stroma, immune cells (lymphocytes), debris, normal
mucosal glands, adipose tissue, background. The reference gives no names, only 8 classes; the
mapping of CSV label k to Kather's k-th class is the dataset's documented numbering but was not
checked against the images. Images are uint8 arrays. Recipe: random 56/12/12/20.

This is not MedMNIST's PathMNIST (NCT-CRC-HE-100K, 9 classes), which the reference does not use.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from nevis.data import recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

ARCHIVE = "colorectal-histology-mnist.zip"
CSV = "hmnist_28_28_RGB.csv"
SIDE = 28
PIXELS = [f"pixel{i:04d}" for i in range(SIDE * SIDE * 3)]
CLASS_NAMES = ("tumor", "stroma", "complex", "lympho", "debris", "mucosa", "adipose", "empty")


def read_tiles(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(images N×28×28×3 uint8, labels 0..7) from the CSV's bytes."""
    frame = pd.read_csv(io.BytesIO(data))
    missing = [c for c in (*PIXELS[:1], PIXELS[-1], "label") if c not in frame.columns]
    if missing:
        raise PrepareError(f"path_mnist: {CSV} lacks the columns {missing}.")
    pixels = frame[PIXELS].to_numpy()
    if pixels.min() < 0 or pixels.max() > 255:
        raise PrepareError(f"path_mnist: {CSV} has pixel values outside 0..255.")
    labels = frame["label"].to_numpy().astype(np.int64) - 1
    if labels.min() < 0 or labels.max() >= len(CLASS_NAMES):
        raise PrepareError(f"path_mnist: {CSV} has labels outside 1..{len(CLASS_NAMES)}.")
    return pixels.astype(np.uint8).reshape(-1, SIDE, SIDE, 3), labels


def _member(archive: Path) -> str:
    for name in zm.files(archive):
        if name.rsplit("/", 1)[-1] == CSV:
            return name
    raise PrepareError(f"path_mnist: no {CSV} in {ARCHIVE}.")


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    images, labels = read_tiles(zm.read(archive, _member(archive)))
    items = [recipes.Item(images[i], int(labels[i]), name=f"{CSV}[{i}]")
             for i in range(len(images))]
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3)


def _csv(images: np.ndarray, labels: np.ndarray) -> str:
    lines = [",".join(PIXELS + ["label"])]
    flat = images.reshape(len(images), -1)
    lines += [",".join(map(str, row)) + f",{label}" for row, label in zip(flat, labels,
                                                                          strict=True)]
    return "\n".join(lines) + "\n"


def write_fixture(folder: Path) -> None:
    """4 tiles per class in hmnist_28_28_RGB.csv, a grey CSV and a stub tile archive beside it."""
    rng = np.random.default_rng(2016)
    labels = np.repeat(np.arange(1, 9), 4)
    base = rng.integers(0, 256, (len(labels), 1, 1, 3))
    images = np.clip(base + rng.integers(-4, 5, (len(labels), SIDE, SIDE, 3)), 0, 255)
    grey = images[:8].mean(axis=3).astype(int)
    grey_csv = ",".join(f"pixel{i:04d}" for i in range(SIDE * SIDE)) + ",label\n" + "".join(
        ",".join(map(str, row)) + f",{label}\n" for row, label in zip(grey.reshape(8, -1),
                                                                      labels[:8], strict=True))
    with zipfile.ZipFile(folder / ARCHIVE, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(CSV, _csv(images, labels))
        zf.writestr("hmnist_28_28_L.csv", grey_csv)
        zf.writestr("Kather_texture_2016_image_tiles_5000.zip", b"PK\5\6" + bytes(18))


HANDLER = Handler(
    key="path_mnist",
    name="Path MNIST",
    year=2016,
    sources=(Kaggle("kmader/colorectal-histology-mnist", md5="e03501016bd54719567dfb954fe982fe"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/kmader/colorectal-histology-mnist",
    num_classes=8,
)
