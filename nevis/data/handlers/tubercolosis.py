"""Tuberculosis chest X-rays (Rahman et al., "Reliable Tuberculosis Detection Using Chest X-Ray
With Deep Learning, Segmentation and Visualization", IEEE Access 2020): 4,200 chest X-rays, 3,500
normal and 700 with tuberculosis. ("Tubercolosis" is the catalog's spelling.)

Raw file: the Kaggle dataset `tawsifurrahman/tuberculosis-tb-chest-xray-dataset`
(`tuberculosis-tb-chest-xray-dataset.zip`, md5 published by the reference), read in place:
`TB_Chest_Radiography_Database/{Normal,Tuberculosis}/<class>-<n>.png` (512×512) beside
`Normal.metadata.xlsx`, `Tuberculosis.metadata.xlsx` and `README.md.txt` (not read).

Classes: Normal, Tuberculosis (the reference's order); label rule: the image's folder. Stored as
RGB, as the reference. Recipe: random 56/12/12/20.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

ARCHIVE = "tuberculosis-tb-chest-xray-dataset.zip"
CLASS_NAMES = ("Normal", "Tuberculosis")
_IMAGE = re.compile(r"(?:^|/)(Normal|Tuberculosis)/([^/]+\.(?:png|jpe?g))$", re.IGNORECASE)


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    items = []
    for name in zm.files(archive):
        match = _IMAGE.search(name)
        if match and not name.startswith("__MACOSX/") and not match.group(2).startswith("._"):
            label = [c.lower() for c in CLASS_NAMES].index(match.group(1).lower())
            items.append(recipes.Item(zm.reader(archive, name), label, name=name))
    if not items:
        raise PrepareError(f"tubercolosis: no Normal/ or Tuberculosis/ images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3)


def write_fixture(folder: Path) -> None:
    """6 grey PNGs per class and the metadata files."""
    rng = np.random.default_rng(2020)
    root = "TB_Chest_Radiography_Database"
    members: dict[str, bytes | str] = {f"{root}/README.md.txt": "fixture\n"}
    for class_name in CLASS_NAMES:
        for i in range(1, 7):
            members[f"{root}/{class_name}/{class_name}-{i}.png"] = fixtures.image_bytes(
                rng, "PNG", (16, 16), "L" if i > 1 else "RGB")
        members[f"{root}/{class_name}.metadata.xlsx"] = b"PK\5\6" + bytes(18)
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="tubercolosis",
    name="Tubercolosis",
    year=2020,
    sources=(Kaggle("tawsifurrahman/tuberculosis-tb-chest-xray-dataset",
                    md5="3abdda8a1100ff97c9dce7cc2413d941"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/tawsifurrahman/tuberculosis-tb-chest-xray-dataset",
    num_classes=2,
)
