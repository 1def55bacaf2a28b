"""Oxford Flowers 17 (Nilsback & Zisserman, "A Visual Vocabulary for Flower Classification",
CVPR 2006): 17 flower species common in the UK, 80 colour images each (1,360).

Raw files (VGG, Oxford; md5 published by the reference): `17flowers.tgz` with
`jpg/image_0001.jpg` … `jpg/image_1360.jpg` (and `jpg/files.txt`, not read), and
`datasplits.mat` with three official splits, `trn1`/`val1`/`tst1` … `trn3`/`val3`/`tst3`, each a
row of 1-based image numbers (40 / 20 / 20 per class).

Label rule: the images are sorted by class, 80 each: label = (number - 1) // 80; class names in
that order as VGG lists them (CLASS_NAMES; the reference gives none). Recipe
(`official_val_test()`, split 1 as the reference): `trn1` → 80/20 train/dev; `val1` → dev_test;
`tst1` → test. Images in none of the three lists are not used (the metadata counts them); an
image in two lists stops the build.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "17flowers.tgz"
SPLITS_FILE = "datasplits.mat"
IMAGES_PER_CLASS = 80
CLASS_NAMES = (
    "daffodil", "snowdrop", "lily valley", "bluebell", "crocus", "iris", "tigerlily", "tulip",
    "fritillary", "sunflower", "daisy", "colts' foot", "dandelion", "cowslip", "buttercup",
    "windflower", "pansy",
)
# group -> variable of datasplits.mat (official split 1)
SPLIT_VARIABLES = {"train": "trn1", "val": "val1", "test": "tst1"}
_IMAGE = re.compile(r"^image_(\d+)\.jpg$")


def read_splits(path: Path) -> dict[int, str]:
    """Image number -> group ("train", "val", "test") from datasplits.mat."""
    data = scipy.io.loadmat(path)
    group_of: dict[int, str] = {}
    for group, variable in SPLIT_VARIABLES.items():
        if variable not in data:
            raise PrepareError(f"oxford_flowers_17: {path.name} has no {variable!r}.")
        for number in np.asarray(data[variable]).reshape(-1):
            number = int(number)
            if number in group_of:
                raise PrepareError(f"oxford_flowers_17: image {number} is in both "
                                   f"{SPLIT_VARIABLES[group_of[number]]} and {variable}.")
            group_of[number] = group
    return group_of


def build(ctx: BuildContext) -> Built:
    group_of = read_splits(ctx.path(SPLITS_FILE))
    root = ctx.extract(ARCHIVE)
    items, unused = [], 0
    for path in sorted(root.rglob("image_*.jpg"), key=lambda p: p.name):
        match = _IMAGE.match(path.name)
        if match is None or path.parent.name != "jpg":
            continue
        number = int(match.group(1))
        label = (number - 1) // IMAGES_PER_CLASS
        if not 0 <= label < len(CLASS_NAMES):
            raise PrepareError(f"oxford_flowers_17: {path.name} is beyond the 17 × 80 images.")
        if number not in group_of:
            unused += 1
            continue
        items.append(recipes.Item(path, label, group=group_of[number],
                                  name=path.relative_to(root).as_posix()))
    if not items:
        raise PrepareError(f"oxford_flowers_17: no listed jpg/image_NNNN.jpg in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.official_val_test(), channels=3,
                 metadata={"images": len(items), "images_in_no_split": unused})


def write_fixture(folder: Path) -> None:
    """Per class 5 trn, 1 val and 1 tst image (16×20 JPEGs) at their real numbers, one unlisted
    image, and a datasplits.mat with the three splits' variables."""
    rng = np.random.default_rng(2006)
    lists: dict[str, list[int]] = {f"{kind}{s}": [] for s in (1, 2, 3)
                                   for kind in ("trn", "val", "tst")}
    members: dict[str, bytes | str] = {}
    for label in range(len(CLASS_NAMES)):
        numbers = [label * IMAGES_PER_CLASS + i for i in range(1, 8)]
        lists["trn1"] += numbers[:5]
        lists["val1"].append(numbers[5])
        lists["tst1"].append(numbers[6])
        lists["trn2"] += numbers[2:7]  # other splits: read by nobody, shuffled differently
        lists["val2"].append(numbers[0])
        lists["tst2"].append(numbers[1])
        lists["trn3"] += numbers[1:6]
        lists["val3"].append(numbers[6])
        lists["tst3"].append(numbers[0])
        for number in numbers:
            members[f"jpg/image_{number:04d}.jpg"] = fixtures.image_bytes(rng, "JPEG", (16, 20))
    members["jpg/image_0080.jpg"] = fixtures.image_bytes(rng, "JPEG", (16, 20))  # unlisted
    members["jpg/files.txt"] = "".join(f"{Path(m).name}\n" for m in sorted(members))
    fixtures.write_tar(folder / ARCHIVE, members)
    variables = {name: np.asarray(sorted(v), dtype=np.float64).reshape(1, -1)
                 for name, v in lists.items()}
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables)
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, nevis fixture".ljust(116)  # no creation time
    (folder / SPLITS_FILE).write_bytes(bytes(data))


_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/"

HANDLER = Handler(
    key="oxford_flowers_17",
    name="Oxford Flowers",
    year=2006,
    sources=(
        Url(_URL + ARCHIVE, md5="b59a65d8d1a99cd66944d474e1289eab"),
        Url(_URL + SPLITS_FILE, md5="4828cddfd0d803c5abbdebcb1e148a1e"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.robots.ox.ac.uk/~vgg/data/flowers/17/",
    num_classes=17,
)
