"""Chest X-ray pneumonia (Kermany et al., "Identifying Medical Diagnoses and Treatable Diseases
by Image-Based Deep Learning", Cell 2018): about 5,860 paediatric chest X-rays, normal or pneumonia.

Raw file: the Kaggle dataset `paultimothymooney/chest-xray-pneumonia` (`chest-xray-pneumonia.zip`,
md5 published by the reference), read in place. It holds the data twice, at
`chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg` and at
`chest_xray/chest_xray/{train,val,test}/…`, plus `__MACOSX/` resource forks and `.DS_Store`
files; as the reference, only the `chest_xray/chest_xray/` copy is read.

Classes: NORMAL, PNEUMONIA (the reference's order); label rule: the image's folder. Grey (the few
RGB files are converted). Recipe (`official_val_test()`): train → 80/20 train/dev; val (16
images) → dev_test; test → test.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

ARCHIVE = "chest-xray-pneumonia.zip"
CLASS_NAMES = ("NORMAL", "PNEUMONIA")
_IMAGE = re.compile(r"^chest_xray/chest_xray/(train|val|test)/(NORMAL|PNEUMONIA)/"
                    r"([^/]+\.(?:jpe?g|png))$", re.IGNORECASE)


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    items, counts = [], {"train": 0, "val": 0, "test": 0}
    for name in zm.files(archive):
        match = _IMAGE.match(name)
        if not match or match.group(3).startswith("._"):
            continue
        group, class_name = match.group(1), match.group(2)
        items.append(recipes.Item(zm.reader(archive, name), CLASS_NAMES.index(class_name),
                                  group=group, name=name))
        counts[group] += 1
    if not counts["train"] or not counts["test"]:
        raise PrepareError(f"pneumonia_chest_xray: no chest_xray/chest_xray/{{train,test}}/ "
                           f"images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.official_val_test(), channels=1,
                 metadata={"images_per_official_split": counts})


def write_fixture(folder: Path) -> None:
    """Both copies of the tree (train 6, val 1, test 2 per class), __MACOSX and .DS_Store."""
    rng = np.random.default_rng(2018)
    members: dict[str, bytes | str] = {}
    for group, count in (("train", 6), ("val", 1), ("test", 2)):
        for class_name in CLASS_NAMES:
            for i in range(count):
                stem = (f"IM-{100 + i:04d}-0001" if class_name == "NORMAL"
                        else f"person{i}_bacteria_{i + 1}")
                image = fixtures.image_bytes(rng, "JPEG", (20, 24),
                                             "RGB" if i == 1 else "L")
                for root in ("chest_xray", "chest_xray/chest_xray"):
                    members[f"{root}/{group}/{class_name}/{stem}.jpeg"] = image
                members[f"__MACOSX/chest_xray/{group}/{class_name}/._{stem}.jpeg"] = b"\0\5\26\7"
            members[f"chest_xray/chest_xray/{group}/{class_name}/.DS_Store"] = b"\0\0\0\1Bud1"
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="pneumonia_chest_xray",
    name="Pneumonia Chest X-ray",
    year=2018,
    sources=(Kaggle("paultimothymooney/chest-xray-pneumonia",
                    md5="930763e3580e76de9c2c849ec933b5d6"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia",
    num_classes=2,
)
