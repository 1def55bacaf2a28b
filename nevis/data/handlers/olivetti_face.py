"""Olivetti faces — the ORL Database of Faces (Samaria & Harter, "Parameterisation of a stochastic
model for human face identification", WACV 1994), in its Kaggle copy "The ORL Database for
Training and Testing" (tavarez/the-orl-database-for-training-and-testing).

Raw file: `the-orl-database-for-training-and-testing.zip` (Kaggle; md5 published by the
reference) with grey face images named `<image number>_<subject>.<ext>` (e.g. `ORL/1_1.jpg`).
The Kaggle copy has 410 images: the 400 ORL images of subjects 1..40 and ten images of an added
41st subject (`401_41` … `410_41`), hence the catalog's 41 classes "for 40 subjects".

Label rule (identity, the reference's): subject - 1 (class names `s1` … `s41`, ORL's folder
names); the folder in the archive is not read. A file of another name pattern stops the build.
Recipe: no official split → random 56/12/12/20 (`random_split()`).

Unverified: the archive's folder and image format (the Kaggle page could not be read here; the
layout above is that of projects using this copy). Any image format is accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

KAGGLE_REF = "tavarez/the-orl-database-for-training-and-testing"
ARCHIVE = "the-orl-database-for-training-and-testing.zip"
NUM_SUBJECTS = 41
CLASS_NAMES = tuple(f"s{i}" for i in range(1, NUM_SUBJECTS + 1))
_IMAGE = re.compile(r"^(\d+)_(\d+)\.(?:jpe?g|png|pgm|bmp|gif|tiff?)$", re.IGNORECASE)
_NOT_IMAGES = {"thumbs.db", ".ds_store"}


def subject_of(filename: str) -> int:
    """The label (subject - 1) of `<image number>_<subject>.<ext>`."""
    match = _IMAGE.match(filename)
    if match is None:
        raise PrepareError(f"olivetti_face: {filename!r} is not <image>_<subject>.<ext>.")
    subject = int(match.group(2))
    if not 1 <= subject <= NUM_SUBJECTS:
        raise PrepareError(f"olivetti_face: {filename!r} names subject {subject}, outside "
                           f"1..{NUM_SUBJECTS}.")
    return subject - 1


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items = []
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file() or path.name.lower() in _NOT_IMAGES or path.name.startswith("._"):
            continue
        items.append(recipes.Item(path, subject_of(path.name),
                                  name=path.relative_to(root).as_posix()))
    if not items:
        raise PrepareError(f"olivetti_face: no images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1,
                 metadata={"images": len(items),
                           "subjects_with_images": len({i.label for i in items})})


def write_fixture(folder: Path) -> None:
    """Subjects 1–7 and the added 41st, 6 images each (20×16 grey JPEGs), numbered as Kaggle's."""
    rng = np.random.default_rng(1994)
    members = {}
    for subject in (1, 2, 3, 4, 5, 6, 7, 41):
        for i in range(6):
            number = (subject - 1) * 10 + i + 1
            members[f"ORL/{number}_{subject}.jpg"] = fixtures.image_bytes(rng, "JPEG", (20, 16),
                                                                          "L")
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="olivetti_face",
    name="Olivetti Face Dataset",
    year=1994,
    sources=(Kaggle(KAGGLE_REF, md5="09871495160825a485b0f2595ba2bb34"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/tavarez/the-orl-database-for-training-and-testing",
    num_classes=41,
)
