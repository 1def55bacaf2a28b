"""Caltech Categories: cars (rear) and motorcycles (side) from the Caltech archive.

Images of the Caltech "categories" archive used by Fergus, Perona & Zisserman, "Object class
recognition by unsupervised scale-invariant learning" (CVPR 2003), now on data.caltech.edu.

Raw files (data.caltech.edu records, md5 published by the reference), each a zip holding one
folder with one tar of JPEG images (README and .mat files in the tar are skipped):

- `Cars_2001.zip` → `Cars_2001/cars_brad.tar` (cars 2001, rear views) — class car;
- `Cars_1999.zip` → `Cars_1999/cars_markus.tar` (cars 1999, rear views) — class car;
- `motorbikes_side.zip` → `motorbikes_side/motorbikes_side.tar` — class motorcycle.

Classes: car (0), motorcycle (1), the sorted class names of the three categories, as the
reference. Recipe: no official split, random 56/12/12/20.

Deviation: the reference also downloads `faces.tar` (record 6rjah-hdv18, md5
a6e5b794952e362560dba0cb6601307d) but never reads it; it is not a source here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import archives, fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

CLASS_NAMES = ("car", "motorcycle")

# category: (zip, tar inside the zip, class)
CATEGORIES = {
    "cars_1999": ("Cars_1999.zip", "Cars_1999/cars_markus.tar", "car"),
    "cars_2001": ("Cars_2001.zip", "Cars_2001/cars_brad.tar", "car"),
    "motorcycles_2001": ("motorbikes_side.zip", "motorbikes_side/motorbikes_side.tar",
                         "motorcycle"),
}
# Members of the tars that are not images (the reference skips README and .mat files).
_NOT_IMAGES = re.compile(r"(^|/)README[^/]*$|\.(mat|txt)$|(^|/)Thumbs\.db$|(^|/)\._", re.I)


def build(ctx: BuildContext) -> Built:
    items: list[recipes.Item] = []
    counts: dict[str, int] = {}
    for category, (zip_name, tar_member, class_name) in CATEGORIES.items():
        unpacked = ctx.extract(zip_name)
        tar_path = unpacked / tar_member
        if not tar_path.is_file():  # tolerate another folder inside the zip
            found = sorted(unpacked.rglob(Path(tar_member).name))
            if len(found) != 1:
                raise ValueError(f"caltech_categories: {zip_name} holds no {tar_member}.")
            tar_path = found[0]
        root = archives.extract(tar_path, ctx.scratch / f"{category}.d")
        label = CLASS_NAMES.index(class_name)
        images = [
            p for p in sorted(root.rglob("*"))
            if p.is_file() and not _NOT_IMAGES.search(p.relative_to(root).as_posix())
        ]
        if not images:
            raise ValueError(f"caltech_categories: no images in {tar_member}.")
        counts[category] = len(images)
        items += [recipes.Item(p, label, name=f"{tar_member}:{p.relative_to(root).as_posix()}")
                  for p in images]
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3,
                 metadata={"images_per_category": counts})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(1999)
    for category, (zip_name, tar_member, _) in CATEGORIES.items():
        # 6 per category: every split of 56/12/12/20 gets each class.
        members: dict[str, bytes | str] = {
            f"image_{i:04d}.jpg": fixtures.image_bytes(
                rng, "JPEG", (16, 20), "L" if category == "cars_1999" else "RGB")
            for i in range(1, 7)
        }
        members["README"] = f"Caltech {category} fixture: images image_0001.jpg ...\n"
        tar_path = folder / f"{category}.tar.tmp"
        fixtures.write_tar(tar_path, members)
        fixtures.write_zip(folder / zip_name, {tar_member: tar_path.read_bytes()})
        tar_path.unlink()


HANDLER = Handler(
    key="caltech_categories",
    name="Caltech cars, motorbikes",
    year=2003,
    sources=(
        Url("https://data.caltech.edu/records/dvx6b-vsc46/files/Cars_2001.zip?download=1",
            md5="e68efb9197ed6a9bc94ce46c79378d29"),
        Url("https://data.caltech.edu/records/fmbpr-ezq86/files/Cars_1999.zip?download=1",
            md5="79b12e08cf5f711f27bbd3e9c6bf371f"),
        Url("https://data.caltech.edu/records/pxb2q-1e144/files/motorbikes_side.zip?download=1",
            md5="ac51dc40c8df085c6663f38307685079"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://data.caltech.edu/",
    num_classes=2,
)
