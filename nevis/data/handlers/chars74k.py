"""Chars74K, English characters (de Campos, Babu & Varma, "Character Recognition in Natural
Images", VISAPP 2009): 62 classes, the digits and the Latin letters in both cases.

Raw files (University of Surrey, md5 published by the reference), one archive per kind of image:
- `EnglishImg.tgz`: characters cropped from street photographs,
  `English/Img/{GoodImg,BadImag}/Bmp/Sample<NNN>/img<NNN>-<MMMMM>.png` (RGB; the `Msk/` folders
  next to `Bmp/` hold segmentation masks, not used);
- `EnglishHnd.tgz`: characters drawn on a tablet, `English/Hnd/Img/Sample<NNN>/*.png` (the
  stroke trajectories under `Trj/` are not used);
- `EnglishFnt.tgz`: characters rendered in computer fonts, `English/Fnt/Sample<NNN>/*.png`
  (grey).

Label rule: Sample<NNN> → NNN - 1, with class names "0".."9", "A".."Z", "a".."z" (Sample001–010
digits, 011–036 upper case, 037–062 lower case). All three kinds are used, as the reference;
images are stored RGB (channels=3). The pipeline removes exact duplicates (the reference
deduplicates too). Recipe: random 56/12/12/20 of everything.

Deviation: the reference also fetches `Lists.tgz` (the authors' train/test lists) but only uses
it to order the examples before its random split of all of them; it is not fetched here.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

CLASS_NAMES = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)
# Archive → the member paths that are examples (the label is the Sample number).
ARCHIVES = {
    "EnglishImg.tgz": re.compile(r"(?:^|/)Img/(?:GoodImg|BadImag)/Bmp/Sample(\d{3})/[^/]+\.png$"),
    "EnglishHnd.tgz": re.compile(r"(?:^|/)Hnd/Img/Sample(\d{3})/[^/]+\.png$"),
    "EnglishFnt.tgz": re.compile(r"(?:^|/)Fnt/Sample(\d{3})/[^/]+\.png$"),
}
_BASE_URL = "http://www.ee.surrey.ac.uk/CVSSP/demos/chars74k/"


def build(ctx: BuildContext) -> Built:
    items = []
    per_archive = {}
    for archive, member in ARCHIVES.items():
        root = ctx.extract(archive)
        found = 0
        for path in sorted(root.rglob("*.png")):
            relative = path.relative_to(root).as_posix()
            match = member.search(relative)
            if not match or not path.is_file():
                continue
            label = int(match.group(1)) - 1
            if not 0 <= label < len(CLASS_NAMES):
                raise ValueError(f"{archive}: {relative} names Sample{match.group(1)}, outside "
                                 f"Sample001..Sample{len(CLASS_NAMES):03d}.")
            items.append(recipes.Item(path, label, name=f"{archive}:{relative}"))
            found += 1
        if not found:
            raise ValueError(f"{archive}: no images matching {member.pattern} — has the layout "
                             "changed?")
        per_archive[archive] = found
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3,
                 metadata={"images_per_archive": per_archive})


def write_fixture(folder: Path) -> None:
    """8 of the 62 classes (digits, upper and lower case): 3 photos (2 good, 1 bad, with their
    masks), 2 tablet drawings (with a trajectory file) and 2 font renderings each."""
    rng = np.random.default_rng(74)
    samples = (1, 10, 11, 20, 36, 37, 50, 62)
    img: dict[str, bytes] = {}
    hnd: dict[str, bytes] = {}
    fnt: dict[str, bytes] = {}
    for n in samples:
        for quality, count in (("GoodImg", 2), ("BadImag", 1)):
            for i in range(1, count + 1):
                name = f"Sample{n:03d}/img{n:03d}-{i:05d}.png"
                img[f"English/Img/{quality}/Bmp/{name}"] = fixtures.image_bytes(
                    rng, "PNG", (14, 10), "RGB")
                img[f"English/Img/{quality}/Msk/{name}"] = fixtures.image_bytes(
                    rng, "PNG", (14, 10), "L")
        for i in range(1, 3):
            hnd[f"English/Hnd/Img/Sample{n:03d}/img{n:03d}-{i:03d}.png"] = fixtures.image_bytes(
                rng, "PNG", (18, 24), "RGB")
            fnt[f"English/Fnt/Sample{n:03d}/img{n:03d}-{i:05d}.png"] = fixtures.image_bytes(
                rng, "PNG", (16, 16), "L")
        hnd[f"English/Hnd/Trj/Sample{n:03d}/img{n:03d}-001.mat"] = b"MATLAB 5.0 MAT-file stub"
    fixtures.write_tar(folder / "EnglishImg.tgz", img)
    fixtures.write_tar(folder / "EnglishHnd.tgz", hnd)
    fixtures.write_tar(folder / "EnglishFnt.tgz", fnt)


HANDLER = Handler(
    key="chars74k",
    name="Chars74K",
    year=2009,
    sources=(
        Url(_BASE_URL + "EnglishImg.tgz", md5="85d157e0c58f998e1cda8def62bcda0d"),
        Url(_BASE_URL + "EnglishHnd.tgz", md5="95e9ee6d929809ef4c2f509f86388c72"),
        Url(_BASE_URL + "EnglishFnt.tgz", md5="f6710b1302a7e9693d904b16389d9d8a"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://teodecampos.github.io/chars74k/",
    num_classes=62,
)
