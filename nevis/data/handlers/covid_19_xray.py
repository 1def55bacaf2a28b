"""COVID-19 Radiography Database (Chowdhury et al., "Can AI Help in Screening Viral and COVID-19
Pneumonia?", IEEE Access 2020; Rahman et al., Computers in Biology and Medicine 2021): chest
X-rays in four classes — COVID, lung opacity, normal, viral pneumonia.

Raw file: the Kaggle dataset `tawsifurrahman/covid19-radiography-database`
(`covid19-radiography-database.zip`, md5 published by the reference), read in place:
`COVID-19_Radiography_Dataset/<class>/<class>-<n>.png` (299×299) with `<class>.metadata.xlsx`
and `README.md.txt` beside them. Later Kaggle versions put the images in `<class>/images/` and
lung masks in `<class>/masks/`; both layouts are read (masks never).

Classes: COVID, Lung_Opacity, Normal, Viral Pneumonia (the reference's order); label rule: the
class folder. Grey. Recipe: random 56/12/12/20, after the pipeline's exact-duplicate removal
(the reference deduplicates this dataset too).

Unverified: which layout the reference's md5 belongs to (its label rule — the image's parent
folder — works only with the flat one).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

ARCHIVE = "covid19-radiography-database.zip"
CLASS_NAMES = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")
_IMAGE = re.compile(r"(?:^|/)(COVID|Lung_Opacity|Normal|Viral Pneumonia)/(?:images/)?"
                    r"([^/]+\.(?:png|jpe?g))$")


def label_of_member(name: str) -> int | None:
    """The class of an image member (None for masks and everything else)."""
    match = _IMAGE.search(name)
    if not match or name.startswith("__MACOSX/") or match.group(2).startswith("._"):
        return None
    return CLASS_NAMES.index(match.group(1))


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    items = []
    for name in zm.files(archive):
        label = label_of_member(name)
        if label is not None:
            items.append(recipes.Item(zm.reader(archive, name), label, name=name))
    if not items:
        raise PrepareError(f"covid_19_xray: no <class>/ images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1)


def write_fixture(folder: Path) -> None:
    """The flat layout: 6 PNGs per class (one RGB), one exact duplicate, metadata files."""
    rng = np.random.default_rng(2021)
    root = "COVID-19_Radiography_Dataset"
    members: dict[str, bytes | str] = {f"{root}/README.md.txt": "fixture\n"}
    for class_name in CLASS_NAMES:
        for i in range(1, 7):
            members[f"{root}/{class_name}/{class_name}-{i}.png"] = fixtures.image_bytes(
                rng, "PNG", (16, 16), "RGB" if i == 2 else "L")
        members[f"{root}/{class_name}.metadata.xlsx"] = b"PK\5\6" + bytes(18)
    members[f"{root}/Normal/Normal-7.png"] = members[f"{root}/Normal/Normal-1.png"]
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="covid_19_xray",
    name="covid-19 x-ray",
    year=2020,
    sources=(Kaggle("tawsifurrahman/covid19-radiography-database",
                    md5="1888824db56de7f47b886a536961b763"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database",
    num_classes=4,
)
