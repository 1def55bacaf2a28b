"""COIL-20 (Nene, Nayar & Murase 1996): 20 objects on a turntable, 72 grey views each.

Raw file: `coil-20-proc.zip` with `coil-20-proc/obj<N>__<view>.png` (N = 1..20, view 0..71),
128×128 grey PNGs. Label = N - 1. No official split: random 56/12/12/20.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

ARCHIVE = "coil-20-proc.zip"
_MEMBER = re.compile(r"coil-20-proc/obj(\d+)__\d+\.png$")
CLASS_NAMES = tuple(f"obj{i}" for i in range(1, 21))


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items = []
    for path in sorted(root.rglob("*.png")):
        match = _MEMBER.search(path.relative_to(root).as_posix())
        if match:
            items.append(recipes.Item(path, int(match.group(1)) - 1, name=path.name))
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1)


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(20)
    members = {
        f"coil-20-proc/obj{obj}__{view}.png": fixtures.image_bytes(rng, "PNG", (16, 16), "L")
        for obj in range(1, 21)
        for view in range(5)
    }
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="coil20",
    name="COIL 20",
    year=1996,
    sources=(
        Url(
            "http://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/coil-20/"
            "coil-20-proc.zip",
            md5="464dec76a6abfcd00e8de6cf1e7d0acc",
        ),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.cs.columbia.edu/CAVE/software/softlib/coil-20.php",
    num_classes=20,
)
