"""CMU AMP face expression database (Liu, Chen & Kumar, "Face Authentication for Multiple Subjects
Using Eigenflow", Pattern Recognition 2003): 13 subjects × 75 grey 64×64 images with varying
expressions.

Raw file: `faceExpressionDatabase.zip` (Tsuhan Chen's lab at Cornell, md5 published by the
reference): `A00.bmp` … `M74.bmp` at the top of the archive (letter = subject A..M, two digits =
image 0..74) and a `readme.txt`.

Label rule (identity): the subject letter (class names `A` … `M`, label = letter - `A`).
Recipe (bespoke, `explicit`, the reference's fixed ratios): per subject, a permutation of the
image numbers 0..74 — one seed-1 generator (`np.random.default_rng(1)`) drawing one
permutation per subject in order A..M — gives its first 41 numbers to train, the next 9 to dev,
the next 9 to dev_test and the last 16 to test (the reference's 80/20 test cut and 70/15/15 cut
of the rest, truncated to whole images). The assignment is by file name, so it is the
reference's exactly. Images not named `<A..M><00..74>.bmp` stop the build; other files are not
read.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "faceExpressionDatabase.zip"
NUM_SUBJECTS = 13
IMAGES_PER_SUBJECT = 75
CLASS_NAMES = tuple(chr(ord("A") + i) for i in range(NUM_SUBJECTS))
# Images per subject in train, dev, dev_test; the rest (16) go to test.
SPLIT_SIZES = {"train": 41, "dev": 9, "dev_test": 9}
SEED = 1
_IMAGE = re.compile(r"^([A-Z])(\d{2})\.bmp$", re.IGNORECASE)


@functools.cache
def split_of_images() -> dict[str, str]:
    """File name (e.g. `C17.bmp`) -> stored split, for all 13 × 75 images."""
    rng = np.random.default_rng(SEED)
    splits: dict[str, str] = {}
    for subject in CLASS_NAMES:
        order = rng.permutation(IMAGES_PER_SUBJECT)
        start = 0
        for split, size in (*SPLIT_SIZES.items(), ("test", IMAGES_PER_SUBJECT)):
            for number in order[start : start + size]:
                splits[f"{subject}{int(number):02d}.bmp"] = split
            start += size
    return splits


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    splits = split_of_images()
    items, unknown = [], []
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file() or path.suffix.lower() != ".bmp" or path.name.startswith("._"):
            continue
        match = _IMAGE.match(path.name)
        key = f"{match.group(1).upper()}{match.group(2)}.bmp" if match else None
        if key not in splits:
            unknown.append(path.name)
            continue
        label = CLASS_NAMES.index(key[0])
        items.append(recipes.Item(path, label, split=splits[key],
                                  name=path.relative_to(root).as_posix()))
    if unknown:
        raise PrepareError(f"cmu_amp_expression: images not named <A..M><00..74>.bmp: "
                           f"{sorted(unknown)[:5]} ({len(unknown)}).")
    if not items:
        raise PrepareError(f"cmu_amp_expression: no <A..M><00..74>.bmp images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.explicit(), channels=1,
                 metadata={"images": len(items), "split_sizes_per_subject":
                           {**SPLIT_SIZES, "test": IMAGES_PER_SUBJECT - sum(SPLIT_SIZES.values())}})


def write_fixture(folder: Path) -> None:
    """Per subject 2 train, 1 dev, 1 dev_test and 2 test images (8×8 grey BMPs), chosen by the
    real assignment, plus the readme."""
    rng = np.random.default_rng(2003)
    wanted = {"train": 2, "dev": 1, "dev_test": 1, "test": 2}
    members: dict[str, bytes | str] = {"readme.txt": "CMU AMP face expression database\n"}
    for subject in CLASS_NAMES:
        taken = dict.fromkeys(wanted, 0)
        for number in range(IMAGES_PER_SUBJECT):
            name = f"{subject}{number:02d}.bmp"
            split = split_of_images()[name]
            if taken[split] < wanted[split]:
                taken[split] += 1
                members[name] = fixtures.image_bytes(rng, "BMP", (8, 8), "L")
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="cmu_amp_expression",
    name="CMU AMP expression",
    year=2003,
    sources=(
        Url("http://chenlab.ece.cornell.edu/_download/FaceAuthentication/"
            "faceExpressionDatabase.zip", md5="f6c2fdf87c095c17e2527c36a0528966"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://chenlab.ece.cornell.edu/projects/FaceAuthentication/Default.html",
    num_classes=13,
)
