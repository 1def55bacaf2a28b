"""Flickr Material Database, FMD (Sharan, Rosenholtz & Adelson, "Material perception: What can
you see in a brief glance?", Journal of Vision 2009; the reference cites their 2014 paper
"Accuracy and speed of material categorization in real-world images"): 10 materials × 100
colour photographs from Flickr, 512×384.

Raw file: `FMD.zip` (Ce Liu's page at MIT, md5 published by the reference):
`image/<material>/<material>_<moderate|object>_<NNN>_new.jpg` (e.g.
`image/wood/wood_object_021_new.jpg`), binary masks of the same names under `mask/`, and MATLAB
files (`.m`, `.asv`) and `Thumbs.db`; only the images under `image/` are read.

Label rule: the material folder, indices in the reference's order (CLASS_NAMES, alphabetical).
An image in another folder under `image/` stops the build. Images are stored in colour
(channels 3; the reference converts to RGB). Deviation: the reference asserts the 512×384 size;
here images keep their own size. Recipe: no official split → random 56/12/12/20
(`random_split()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "FMD.zip"
CLASS_NAMES = (
    "fabric", "foliage", "glass", "leather", "metal", "paper", "plastic", "stone", "water",
    "wood",
)
_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items, unknown = [], set()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        relative = path.relative_to(root).parts
        if (not path.is_file() or path.suffix.lower() not in _IMAGE_SUFFIXES
                or path.name.startswith("._") or len(relative) < 3 or relative[-3] != "image"):
            continue
        material = relative[-2]
        if material not in _INDEX:
            unknown.add(material)
            continue
        items.append(recipes.Item(path, _INDEX[material], name="/".join(relative)))
    if unknown:
        raise PrepareError(f"flickr_material_database: image folders of unknown materials "
                           f"{sorted(unknown)}.")
    if not items:
        raise PrepareError(f"flickr_material_database: no image/<material>/*.jpg in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3,
                 metadata={"images": len(items)})


def write_fixture(folder: Path) -> None:
    """10 materials × 6 JPEGs (24×18) under `image/`, a mask for each, MATLAB files and
    `Thumbs.db`."""
    rng = np.random.default_rng(2009)
    members: dict[str, bytes | str] = {}
    for material in CLASS_NAMES:
        for n in range(1, 7):
            kind = "object" if n % 2 else "moderate"
            name = f"{material}_{kind}_{n:03d}_new"
            members[f"image/{material}/{name}.jpg"] = fixtures.image_bytes(rng, "JPEG", (18, 24))
            members[f"mask/{material}/{name}.jpg"] = fixtures.image_bytes(rng, "JPEG", (18, 24),
                                                                          "L")
        members[f"image/{material}/Thumbs.db"] = b"\x00" * 16
    members["image/showimages.m"] = "% show the images\n"
    members["image/showimages.asv"] = "% autosave\n"
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="flickr_material_database",
    name="Flicker Material Dataset",
    year=2009,
    sources=(Url("http://people.csail.mit.edu/celiu/CVPR2010/FMD/FMD.zip",
                 md5="0721ba72cd981aa9599a81bbfaaebd75"),),
    build=build,
    write_fixture=write_fixture,
    homepage="http://people.csail.mit.edu/celiu/CVPR2010/FMD/index.html",
    num_classes=10,
)
