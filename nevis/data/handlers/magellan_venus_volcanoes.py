"""Magellan Venus Volcanoes (Burl, Asker, Smyth, Fayyad, Perona, Crumpler & Aubele, "Learning to
Recognize Volcanoes on Venus", Machine Learning 1998; the JARtool experiment at UCI).

Raw file: `volcanoes.tar.gz` (UCI repository, md5 published by the reference) holding
`package/Images/img<N>.sdt` (N = 1..134): 1024×1024 grey Magellan SAR images as raw unsigned
bytes, no header (the `.spr` next to each one is its VIEW header, not read), and
`package/GroundTruths/img<N>.lxyr`: one volcano a line, `<confidence> <x> <y> <radius>` with
confidence 1 ("definitely") … 4 ("only a pit is visible"). Other folders (`Chips`, `FOA`,
`Programs`, `Tables`) and the README are not read.

Label rule (the reference's recast of the counting task into a binary one): 1 "pos" when some
line of the image's ground truth has confidence 1, else 0 "neg". An image without a ground-truth
file stops the build (the reference fails on it too, so every real image has one; whether the
file of a volcano-free image is empty could not be checked). Images are stored as grey arrays;
the side is taken from the file size (a square of raw bytes): 1024 for every real image.
Recipe: no official split → random 56/12/12/20 (`random_split()`).

Deviation: the reference takes a line's first space-separated field; here the first
whitespace-separated field (the same unless a line starts with a blank).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "volcanoes.tar.gz"
CLASS_NAMES = ("neg", "pos")  # no definite volcano / at least one definite volcano


def label_of(ground_truth: str) -> int:
    """1 when some volcano of an `.lxyr` file has confidence 1 ("definitely"), else 0."""
    for line in ground_truth.splitlines():
        fields = line.split()
        if fields and fields[0] == "1":
            return 1
    return 0


def read_sdt(path: Path) -> np.ndarray:
    """A raw square grey image (no header) as a uint8 array."""
    data = path.read_bytes()
    side = math.isqrt(len(data))
    if side == 0 or side * side != len(data):
        raise PrepareError(f"magellan_venus_volcanoes: {path.name} holds {len(data)} bytes, "
                           "not a square image of raw bytes.")
    return np.frombuffer(data, dtype=np.uint8).reshape(side, side)


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    truths = {p.stem: p for p in root.rglob("*.lxyr") if p.parent.name == "GroundTruths"}
    images = sorted((p for p in root.rglob("*.sdt") if p.parent.name == "Images"),
                    key=lambda p: p.relative_to(root).as_posix())
    if not images:
        raise PrepareError(f"magellan_venus_volcanoes: no Images/*.sdt in {ARCHIVE}.")
    missing = [p.name for p in images if p.stem not in truths]
    if missing:
        raise PrepareError(f"magellan_venus_volcanoes: no GroundTruths/<image>.lxyr for "
                           f"{missing[:5]} ({len(missing)} images).")
    items = []
    for path in images:
        label = label_of(truths[path.stem].read_text(errors="replace"))
        items.append(recipes.Item(functools.partial(read_sdt, path), label,
                                  name=path.relative_to(root).as_posix()))
    positives = sum(item.label for item in items)
    metadata = {"images": len(items), "positives": positives, "negatives": len(items) - positives}
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1, metadata=metadata)


def write_fixture(folder: Path) -> None:
    """12 volcano-free and 12 volcano images (32×32 raw bytes), the real folder layout."""
    rng = np.random.default_rng(1998)
    side = 32
    members: dict[str, bytes | str] = {
        "package/README": "Volcanoes on Venus - JARtool experiment (fixture)\n",
        "package/Tables/experiments.txt": "A1 1 2 3\n",
        # A chip file that must not be read as an image.
        "package/Chips/exp_A1_Ctrn.sdt": rng.integers(0, 256, 15 * 15 * 3, np.uint8).tobytes(),
    }
    for n in range(1, 25):
        pixels = rng.integers(0, 256, (side, side), dtype=np.uint8)
        members[f"package/Images/img{n}.sdt"] = pixels.tobytes()
        members[f"package/Images/img{n}.spr"] = f"0\n{side}\n0.0\n1.0\n{side}\n0.0\n1.0\n0\n"
        if n % 2:  # a definite volcano among less certain ones
            lines = ["3 10.50 12.00 4.20", "1 20.00 8.25 6.10"]
        elif n % 4 == 0:  # less certain volcanoes only
            lines = ["2 5.00 6.00 3.00", "4 15.00 16.00 2.50"]
        else:  # no volcano at all: an empty file
            lines = []
        members[f"package/GroundTruths/img{n}.lxyr"] = "".join(f"{line}\n" for line in lines)
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="magellan_venus_volcanoes",
    name="Magellan Venus Volcanoes",
    year=1998,
    sources=(
        Url("http://archive.ics.uci.edu/ml/machine-learning-databases/volcanoes-mld/"
            "volcanoes.tar.gz", md5="55143a4ec42b626126c9b4ed618f59f8"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://archive.ics.uci.edu/ml/datasets/volcanoes+on+venus+-+jartool+experiment",
    num_classes=2,
)
