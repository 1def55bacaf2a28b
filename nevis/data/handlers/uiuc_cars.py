"""UIUC cars (Agarwal & Roth, "Learning a sparse representation for object detection", 2002).

A car-detection database recast as car / no-car classification, as in "A Single Classifier for
View-Invariant Multiple Object Class Recognition" (BMVC 2006), which classified the original
training images.

Raw file: `uiuc.tar.gz` from the PASCAL databases page (md5 published by the reference), the
UIUC `CarData/` folder: `TrainImages/pos-<n>.pgm` (550 side views of cars, 100×40 grey) and
`TrainImages/neg-<n>.pgm` (500 non-car windows), `TestImages/test-<n>.pgm` and
`TestImages_Scale/test-<n>.pgm` (street scenes with cars, for detection) and text files
(`README.txt`, `trueLocations*.txt`). This layout is the one of UIUC's own CarData archive, which
the reference's rules (skip `.txt` and `TestImages_Scale`, label by "pos" in the path) imply;
the PASCAL copy itself could not be inspected here. Any image file named `pos-<n>`/`neg-<n>`
anywhere in the archive is used, whatever its folder or image format.

Classes: neg (0, no car), pos (1, car). Label rule: the file name — `pos-*` is pos, `neg-*` is
neg. Recipe: no official split, random 56/12/12/20. Grey (1 channel); PGM is stored as PNG.

Deviation: the reference labels every image whose path lacks "pos" as neg and skips only
`TestImages_Scale` and `.txt` files, so its neg class also receives the 170 single-scale
`TestImages` scenes — each of which contains cars. Following the reference's stated intent (the
original training set, which has positives and negatives), only `pos-*`/`neg-*` images are used;
the metadata counts the images left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

ARCHIVE = "uiuc.tar.gz"
CLASS_NAMES = ("neg", "pos")
_IMAGE = re.compile(r"\.(pgm|png|jpe?g|bmp|tiff?)$", re.I)
_TRAIN_IMAGE = re.compile(r"^(pos|neg)-\d+\.", re.I)


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items, left_out = [], 0
    for path in sorted(root.rglob("*")):
        if not (path.is_file() and _IMAGE.search(path.name)):
            continue
        match = _TRAIN_IMAGE.match(path.name)
        if not match:
            left_out += 1
            continue
        label = CLASS_NAMES.index(match.group(1).lower())
        items.append(recipes.Item(path, label, name=path.relative_to(root).as_posix()))
    for label, class_name in enumerate(CLASS_NAMES):
        if not any(item.label == label for item in items):
            raise ValueError(f"uiuc_cars: no {class_name}-<n> images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1,
                 metadata={"test_images_left_out": left_out})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2002)
    members: dict[str, bytes | str] = {}
    for kind in ("pos", "neg"):
        for n in range(6):
            members[f"CarData/TrainImages/{kind}-{n}.pgm"] = fixtures.image_bytes(
                rng, "PGM", (8, 20), "L")
    for scale, count in (("TestImages", 2), ("TestImages_Scale", 1)):
        for n in range(count):
            members[f"CarData/{scale}/test-{n}.pgm"] = fixtures.image_bytes(
                rng, "PGM", (16, 24), "L")
    members["CarData/README.txt"] = "UIUC Image Database for Car Detection : README File\n"
    members["CarData/trueLocations.txt"] = "0: (4,2)\n1: (6,3) (2,10)\n"
    members["CarData/trueLocations_Scale.txt"] = "0: (3,4,20)\n"
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="uiuc_cars",
    name="UIUC cars",
    year=2002,
    sources=(
        Url("http://host.robots.ox.ac.uk/pascal/VOC/download/uiuc.tar.gz",
            md5="716c6078f57839bb440967fa74116da3"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://host.robots.ox.ac.uk/pascal/VOC/databases.html#UIUC",
    num_classes=2,
)
