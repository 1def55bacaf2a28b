"""Semeion handwritten digits (Semeion Research Center of Sciences of Communication, Rome;
donated to the UCI Machine Learning Repository in 2008).

Raw file: `semeion.data` (UCI), plain text, one digit a line: 256 pixel values (written as
floats, 0.0000 or 1.0000; a 16×16 binary image row by row) followed by 10 integers, the one-hot
code of the digit. 1,593 digits written by about 80 people.

Label rule: the position of the largest of the 10 code values (argmax), class names "0".."9".
Pixels are truncated to integers and scaled by 255, as the reference; images are stored as
16×16 grey uint8 arrays. No official split: random 56/12/12/20.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

DATA_FILE = "semeion.data"
SIDE = 16
CLASS_NAMES = tuple(str(d) for d in range(10))


def parse_line(line: str) -> tuple[np.ndarray, int]:
    """One line → (16×16 uint8 image with values 0/255, label 0..9)."""
    fields = line.split()
    if len(fields) < SIDE * SIDE + len(CLASS_NAMES):
        raise ValueError(f"expected {SIDE * SIDE} pixels and {len(CLASS_NAMES)} code values, "
                         f"got {len(fields)} fields")
    pixels = np.array([int(float(v)) for v in fields[: SIDE * SIDE]], dtype=np.int64)
    code = [int(float(v)) for v in fields[SIDE * SIDE : SIDE * SIDE + len(CLASS_NAMES)]]
    image = (np.clip(pixels, 0, 1) * 255).astype(np.uint8).reshape(SIDE, SIDE)
    return image, int(np.argmax(code))


def build(ctx: BuildContext) -> Built:
    path = ctx.path(DATA_FILE)
    items = []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        try:
            image, label = parse_line(line)
        except ValueError as e:
            raise ValueError(f"{DATA_FILE}, line {number}: not a Semeion line ({e})") from e
        items.append(recipes.Item(image, label, name=f"{DATA_FILE}:{number}"))
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1)


def write_fixture(folder: Path) -> None:
    """6 digits per class, in the real text format (trailing space on every line)."""
    rng = np.random.default_rng(1593)
    lines = []
    for _ in range(6):
        for digit in range(10):
            pixels = (rng.random(SIDE * SIDE) < 0.4).astype(float)
            code = ["1" if d == digit else "0" for d in range(10)]
            lines.append(" ".join(f"{v:.4f}" for v in pixels) + " " + " ".join(code) + " \n")
    (folder / DATA_FILE).write_text("".join(lines), encoding="ascii")


HANDLER = Handler(
    key="semeion",
    name="Semeion",
    year=2008,
    sources=(
        Url("https://archive.ics.uci.edu/ml/machine-learning-databases/semeion/semeion.data",
            md5="cb545d371d2ce14ec121470795a77432"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://archive.ics.uci.edu/dataset/178/semeion+handwritten+digit",
    num_classes=10,
)
