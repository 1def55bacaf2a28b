"""15 Scenes (Lazebnik, Schmid & Ponce, "Beyond bags of features", CVPR 2006).

Fifteen scene categories (Fei-Fei & Perona's 13, of which the 8 "MIT" ones are Oliva &
Torralba's, plus industrial and store added by Lazebnik et al.), about 4,500 grey images.

Raw file: `scene_categories.zip`, the original UIUC download as archived by the Wayback Machine
(md5 published by the reference), with one folder per category at the zip's root:
`<category>/image_<n>.jpg`.

Classes: the reference's label list (folder names, in its order, not sorted), index = label.
Label rule: the image's folder. Recipe: no official split, random 56/12/12/20. Grey (1 channel),
as the reference converts to L.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

ARCHIVE = "scene_categories.zip"
CLASS_NAMES = (
    "PARoffice", "kitchen", "MITinsidecity", "MITforest", "MITcoast", "MITstreet", "store",
    "industrial", "bedroom", "MITmountain", "MIThighway", "MITopencountry", "CALsuburb",
    "MITtallbuilding", "livingroom",
)
_IMAGE = re.compile(r"\.(jpe?g|png|pgm|bmp|gif|tiff?)$", re.I)


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items = []
    for path in sorted(root.rglob("*")):
        if not (path.is_file() and _IMAGE.search(path.name)) or path.name.startswith("._"):
            continue
        folder = path.parent.name
        if folder not in CLASS_NAMES:
            raise ValueError(f"scenes15: {path.relative_to(root)} is in an unknown category "
                             f"folder {folder!r}.")
        items.append(recipes.Item(path, CLASS_NAMES.index(folder),
                                  name=path.relative_to(root).as_posix()))
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1)


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(15)
    members = {
        f"{category}/image_{n:04d}.jpg": fixtures.image_bytes(rng, "JPEG", (16, 16), "L")
        for category in CLASS_NAMES
        for n in range(1, 7)
    }
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="scenes15",
    name="15 Scenes",
    year=2006,
    sources=(
        Url("https://web.archive.org/web/20070829035029/http://www-cvr.ai.uiuc.edu/ponce_grp/"
            "data/scene_categories/scene_categories.zip",
            md5="58828019197b2ad0a7efb472e7a85c2a"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://web.archive.org/web/2007/http://www-cvr.ai.uiuc.edu/ponce_grp/data/",
    num_classes=15,
)
