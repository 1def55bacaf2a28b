"""Butterflies (Lazebnik, Schmid & Ponce, "Semi-Local Affine Parts for Object Recognition",
BMVC 2004): 619 colour photographs of 7 butterfly species.

Raw file: `butterflies.zip` from the Ponce group's page at UIUC, which is gone; the reference
fetches the Wayback Machine's copy (md5 published by the reference). Layout:
`<class>/<prefix><number>.jpg`, one folder per class (`admiral`, `black_swallowtail`, `machaon`,
`monarch_closed`, `monarch_open`, `peacock`, `zebra`), e.g. `admiral/adm014.jpg`.

Label rule: the folder; class names sorted (the reference numbers the folders in set order,
which is not reproducible between runs; the names are the same). Recipe (`official_test()`): the
authors' test list (`butterflies_f_order.txt`, 10 image numbers per class, as the reference
copies it) → test; the other images → 70/15/15 train/dev/dev_test. Images of a folder outside
the seven, or whose name carries no number, stop the build.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "butterflies.zip"
_NUMBER = re.compile(r"^[a-z]+(\d+)\.jpg$", re.IGNORECASE)

# The authors' test images: per class, the numbers in the file names.
TEST_NUMBERS = {
    "admiral": {14, 103, 41, 86, 9, 53, 6, 55, 66, 92},
    "black_swallowtail": {25, 41, 2, 22, 31, 15, 28, 35, 4, 27},
    "machaon": {12, 24, 20, 52, 53, 29, 82, 25, 83, 14},
    "monarch_closed": {29, 9, 58, 72, 23, 44, 67, 36, 27, 28},
    "monarch_open": {46, 35, 58, 8, 76, 21, 34, 15, 83, 78},
    "peacock": {1, 96, 131, 124, 22, 59, 126, 52, 20, 86},
    "zebra": {57, 18, 21, 26, 43, 78, 31, 90, 6, 75},
}
CLASS_NAMES = tuple(sorted(TEST_NUMBERS))


def image_number(filename: str) -> int:
    match = _NUMBER.match(filename)
    if match is None:
        raise PrepareError(f"butterflies: no image number in the file name {filename!r}.")
    return int(match.group(1))


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items, unknown = [], set()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file() or path.suffix.lower() != ".jpg" or path.name.startswith("._"):
            continue
        folder = path.parent.name
        if folder not in TEST_NUMBERS:
            unknown.add(folder)
            continue
        group = "test" if image_number(path.name) in TEST_NUMBERS[folder] else "train"
        items.append(recipes.Item(path, CLASS_NAMES.index(folder), group=group,
                                  name=path.relative_to(root).as_posix()))
    if unknown:
        raise PrepareError(f"butterflies: images in folders outside the 7 classes: "
                           f"{sorted(unknown)}.")
    if not items:
        raise PrepareError(f"butterflies: no <class>/*.jpg images in {ARCHIVE}.")
    tests = sum(item.group == "test" for item in items)
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images": len(items), "official_test_images": tests})


def write_fixture(folder: Path) -> None:
    """Per class 6 training images and 2 of the listed test images (20×24 JPEGs)."""
    rng = np.random.default_rng(2004)
    members = {}
    for name in CLASS_NAMES:
        prefix = name.replace("_", "")[:3]
        test = sorted(TEST_NUMBERS[name])[:2]
        train = [n for n in range(1, 20) if n not in TEST_NUMBERS[name]][:6]
        for number in test + train:
            members[f"{name}/{prefix}{number:03d}.jpg"] = fixtures.image_bytes(rng, "JPEG",
                                                                             (20, 24))
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="butterflies",
    name="Butterfly dataset",
    year=2004,
    sources=(
        Url("https://web.archive.org/web/20070829035029/http://www-cvr.ai.uiuc.edu/ponce_grp/"
            "data/butterflies/butterflies.zip", md5="cc9bfe5e22f9001262b785ff33221581"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://web.archive.org/web/20070829035029/http://www-cvr.ai.uiuc.edu/ponce_grp/"
             "data/index.html",
    num_classes=7,
    notes="UIUC origin gone; fetched from the Wayback Machine copy, as the reference.",
)
