"""USPS handwritten digits (J. J. Hull, "A database for handwritten text recognition research",
IEEE TPAMI 1994), in the LIBSVM repository's copy.

Raw files: `usps.bz2` (official train, 7,291 digits) and `usps.t.bz2` (official test, 2,007),
bzip2-compressed text in LIBSVM format, one digit a line: `<label> 1:<v> 2:<v> … 256:<v>`, with
label 1..10 for digits 0..9 and 16×16 grey pixels scaled to [-1, 1], row by row.

Label rule: label - 1 (class names "0".."9"). Pixels are mapped back to 0..255 as the reference
does (`(v + 1) / 2 * 255`, truncated; clipped to the range first) and stored as 16×16 uint8
arrays. Pixel indices missing from a line (sparse format) count as 0.0, LIBSVM's convention.
Recipe: official train → 70/15/15 train/dev/dev_test; official test → test.
"""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

TRAIN_FILE = "usps.bz2"
TEST_FILE = "usps.t.bz2"
SIDE = 16
CLASS_NAMES = tuple(str(d) for d in range(10))
_BASE_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"


def parse_line(line: str) -> tuple[np.ndarray, int]:
    """One LIBSVM line → (16×16 uint8 image, label 0..9)."""
    label, *pairs = line.split()
    values = np.zeros(SIDE * SIDE, dtype=np.float64)
    for pair in pairs:
        index, value = pair.split(":")
        values[int(index) - 1] = float(value)
    pixels = np.clip((values + 1.0) / 2.0 * 255.0, 0.0, 255.0).astype(np.uint8)
    return pixels.reshape(SIDE, SIDE), int(float(label)) - 1


def read_file(path: Path, group: str) -> list[recipes.Item]:
    items = []
    with bz2.open(path, "rt", encoding="ascii") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                image, label = parse_line(line)
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path.name}, line {number}: not a USPS LIBSVM line ({e})") from e
            if not 0 <= label < len(CLASS_NAMES):
                raise ValueError(f"{path.name}, line {number}: label {label + 1} not in 1..10")
            items.append(recipes.Item(image, label, group=group, name=f"{path.name}:{number}"))
    return items


def build(ctx: BuildContext) -> Built:
    items = read_file(ctx.path(TRAIN_FILE), "train") + read_file(ctx.path(TEST_FILE), "test")
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=1)


def _format_line(rng: np.random.Generator, label: int) -> str:
    values = rng.uniform(-1.0, 1.0, SIDE * SIDE)
    values[rng.random(SIDE * SIDE) < 0.5] = -1.0  # mostly background, as real digits
    pairs = " ".join(f"{i}:{v:.6g}" for i, v in enumerate(values, 1))
    return f"{label + 1} {pairs} \n"  # trailing space: as the reference parser implies


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(71)
    for filename, per_class in ((TRAIN_FILE, 5), (TEST_FILE, 2)):
        lines = [_format_line(rng, label) for _ in range(per_class) for label in range(10)]
        (folder / filename).write_bytes(bz2.compress("".join(lines).encode("ascii")))


HANDLER = Handler(
    key="usps",
    name="USPS",
    year=1994,
    sources=(
        Url(_BASE_URL + TRAIN_FILE, md5="ec16c51db3855ca6c91edd34d0e9b197"),
        Url(_BASE_URL + TEST_FILE, md5="8ea070ee2aca1ac39742fdd1ef5ed118"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps",
    num_classes=10,
)
