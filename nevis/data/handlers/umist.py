"""UMIST face database (Graham & Allinson, "Characterising Virtual Eigensignatures for General
Purpose Face Recognition", in Face Recognition: From Theory to Applications, 1998): grey faces
of 20 people, each in a range of poses from profile to frontal (564 images).

Raw file: `face.tar.gz` (University of Lincoln repository, md5 published by the reference): one
folder per person, `1a` … `1t`, holding that person's PGM images (`<person>/<file>.pgm`).

Label rule (identity): the image's folder; class names and indices are the reference's list
(CLASS_NAMES, not alphabetical). Images in another folder stop the build.
Recipe: no official split → random 56/12/12/20 (`random_split()`).

Unverified: the images' file names and format (PGM assumed; any image file in a person's folder
is read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "face.tar.gz"
# The reference's label list (index = label).
CLASS_NAMES = (
    "1s", "1r", "1n", "1i", "1d", "1e", "1q", "1c", "1k", "1l", "1h", "1o", "1a", "1b", "1t",
    "1m", "1g", "1f", "1p", "1j",
)
_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}
_IMAGE_SUFFIXES = {".pgm", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif"}


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items, unknown = [], set()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file() or path.suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        person = path.parent.name
        if person not in _INDEX:
            unknown.add(path.parent.relative_to(root).as_posix())
            continue
        items.append(recipes.Item(path, _INDEX[person], name=path.relative_to(root).as_posix()))
    if unknown:
        raise PrepareError(f"umist: images outside the 20 person folders: {sorted(unknown)}.")
    if not items:
        raise PrepareError(f"umist: no <person>/<image> files in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1,
                 metadata={"images": len(items)})


def write_fixture(folder: Path) -> None:
    """20 people × 6 grey PGMs (16×14)."""
    rng = np.random.default_rng(1998)
    members = {
        f"{person}/{person}{n:03d}.pgm": fixtures.image_bytes(rng, "PGM", (16, 14), "L")
        for person in sorted(CLASS_NAMES)
        for n in range(6)
    }
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="umist",
    name="UMIST",
    year=1998,
    sources=(Url("http://eprints.lincoln.ac.uk/id/eprint/16081/1/face.tar.gz",
                 md5="11011ab5dded043f5e4331711c2407c8"),),
    build=build,
    write_fixture=write_fixture,
    homepage="http://eprints.lincoln.ac.uk/id/eprint/16081",
    num_classes=20,
)
