"""Statlog (Landsat Satellite) from the UCI repository (Michie, Spiegelhalter & Taylor, "Machine
Learning, Neural and Statistical Classification", the Statlog project, 1994).

Raw files (UCI, md5 published by the reference): `sat.trn` (official train, 4,435 rows) and
`sat.tst` (official test, 2,000 rows), ASCII tables with one example a line: 36 integers (a 3×3
neighbourhood of Landsat MSS pixels, pixel by pixel row by row, the 4 spectral bands of each
pixel in turn) and the class 1..7 of the central pixel.

Label rule: class - 1, names as the UCI documentation (and the reference) lists them. Class 6
("mixture class") has no example in either file, as UCI documents; the task keeps its 7 classes.
Images: the 3×3 patch of the first three bands as a 3×3×3 uint8 array (the fourth band, near
infrared, is dropped, as the reference does). Recipe: official train → 70/15/15
train/dev/dev_test; official test → test (`official_test()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

TRAIN_FILE = "sat.trn"
TEST_FILE = "sat.tst"
SIDE, BANDS = 3, 4
CLASS_NAMES = (
    "red soil", "cotton crop", "grey soil", "damp grey soil", "soil with vegetation stubble",
    "mixture class", "very damp grey soil",
)
_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/satimage/"


def read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N×3×3×3 uint8 patches of the first three bands, N labels 0..6) of one table."""
    data = np.loadtxt(path, ndmin=2)
    columns = SIDE * SIDE * BANDS + 1
    if data.shape[1] != columns:
        raise PrepareError(f"landsat: {path.name} has {data.shape[1]} columns, not {columns}.")
    values, classes = data[:, :-1], data[:, -1]
    if values.min(initial=0) < 0 or values.max(initial=0) > 255 or (values % 1).any():
        raise PrepareError(f"landsat: {path.name} has pixel values outside the integers 0..255.")
    labels = classes.astype(np.int64) - 1
    if (classes % 1).any() or labels.min(initial=0) < 0 or labels.max(initial=0) >= 7:
        raise PrepareError(f"landsat: {path.name} has classes outside 1..7.")
    patches = values.reshape(-1, SIDE, SIDE, BANDS)[..., :3].astype(np.uint8)
    return patches, labels


def build(ctx: BuildContext) -> Built:
    items, counts = [], {}
    for filename, group in ((TRAIN_FILE, "train"), (TEST_FILE, "test")):
        patches, labels = read_table(ctx.path(filename))
        items.extend(recipes.Item(np.ascontiguousarray(patch), int(label), group=group,
                                  name=f"{filename}:{row + 1}")
                     for row, (patch, label) in enumerate(zip(patches, labels, strict=True)))
        counts[group] = np.bincount(labels, minlength=len(CLASS_NAMES)).tolist()
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"examples_per_class": counts})


def write_fixture(folder: Path) -> None:
    """8 train and 3 test rows per present class (1–5 and 7; none of class 6, as the real data)."""
    rng = np.random.default_rng(1994)
    for filename, per_class in ((TRAIN_FILE, 8), (TEST_FILE, 3)):
        rows = []
        for cls in (1, 2, 3, 4, 5, 7):
            for _ in range(per_class):
                values = rng.integers(20, 160, SIDE * SIDE * BANDS)
                rows.append(" ".join(str(v) for v in [*values, cls]))
        order = rng.permutation(len(rows))
        (folder / filename).write_text("".join(rows[i] + "\n" for i in order))


HANDLER = Handler(
    key="landsat",
    name="LandSat UCI repo",
    year=1994,
    sources=(
        Url(_URL + TRAIN_FILE, md5="2c5ba2900da0183cab2c41fdb279fa5b"),
        Url(_URL + TEST_FILE, md5="02c995991fecc864e809b2c4c42cd983"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://archive.ics.uci.edu/ml/datasets/Statlog+(Landsat+Satellite)",
    num_classes=7,
)
