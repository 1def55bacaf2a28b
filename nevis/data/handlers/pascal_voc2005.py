"""PASCAL VOC 2005 (Everingham et al., "The 2005 PASCAL Visual Object Classes Challenge", 2006).

Four classes: car, motorbike, bike, person (labels 0..3 in that order, as the reference).

Raw files (host.robots.ox.ac.uk, md5 published by the reference): `voc2005_1.tar.gz` (dataset 1,
training) and `voc2005_2.tar.gz` (dataset 2, test), each laid out as
`VOC2005_<n>/PNGImages/<source folder>/*.png` next to `VOC2005_<n>/Annotations/<folder>/*.txt`
(PASCAL annotation text, not read). Folder names come from several source databases and name
the class:

- training (group "train"): car = Caltech_cars, ETHZ_sideviews-cars, TUGraz_cars;
  motorbike = Caltech_motorbikes_side; bike = TUGraz_bike; person = TUGraz_person;
- test (group "test"): car = car, voiture; bike = bicycle, bike, velo;
  motorbike = motocyclette, motorbike, motorcycle;
  person = INRIA_graz-person-test, INRIA_inria-person-test, pedestrian, pieton.

Other folders of the archives are not used. As in the reference, a folder matches when its path
starts with the listed name (member path prefix), and every listed folder must hold images.

Label rule: image-level, the class of the folder the image is in; the reference does no
object-level recast (the annotation files are not read). Recipe: official train → 70/15/15
train/dev/dev_test; official test → test (`official_test()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

TRAIN_ARCHIVE = "voc2005_1.tar.gz"
TEST_ARCHIVE = "voc2005_2.tar.gz"
CLASS_NAMES = ("car", "motorbike", "bike", "person")

# class -> folders under PNGImages, per archive.
TRAIN_FOLDERS = {
    "car": ("Caltech_cars", "ETHZ_sideviews-cars", "TUGraz_cars"),
    "bike": ("TUGraz_bike",),
    "motorbike": ("Caltech_motorbikes_side",),
    "person": ("TUGraz_person",),
}
TEST_FOLDERS = {
    "car": ("car", "voiture"),
    "bike": ("bicycle", "bike", "velo"),
    "motorbike": ("motocyclette", "motorbike", "motorcycle"),
    "person": ("INRIA_graz-person-test", "INRIA_inria-person-test", "pedestrian", "pieton"),
}
_ARCHIVES = (
    (TRAIN_ARCHIVE, "VOC2005_1", TRAIN_FOLDERS, "train"),
    (TEST_ARCHIVE, "VOC2005_2", TEST_FOLDERS, "test"),
)


def _items(root: Path, top: str, folders: dict[str, tuple[str, ...]], group: str,
           counts: dict[str, int]) -> list[recipes.Item]:
    images = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith("png"))
    relative = {p: p.relative_to(root).as_posix() for p in images}
    items, taken = [], set()
    for class_name, names in folders.items():
        label = CLASS_NAMES.index(class_name)
        for folder in names:
            prefix = f"{top}/PNGImages/{folder}"
            matched = [p for p in images if relative[p].startswith(prefix) and p not in taken]
            if not matched:
                raise ValueError(
                    f"pascal_voc2005: no PNG images under {prefix}/ in the {group} archive; "
                    "the archive layout is not the expected one."
                )
            taken.update(matched)
            counts[f"{group}/{folder}"] = len(matched)
            items += [recipes.Item(p, label, group=group, name=relative[p]) for p in matched]
    return items


def build(ctx: BuildContext) -> Built:
    items: list[recipes.Item] = []
    counts: dict[str, int] = {}
    for archive, top, folders, group in _ARCHIVES:
        items += _items(ctx.extract(archive), top, folders, group, counts)
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images_per_folder": counts})


def _annotation(path: str, size: tuple[int, int], label: str, database: str) -> str:
    h, w = size
    return (
        "# PASCAL Annotation Version 1.00\n\n"
        f'Image filename : "{path}"\n'
        f"Image size (X x Y x C) : {w} x {h} x 3\n"
        f'Database : "{database}"\n'
        f'Objects with ground truth : 1 {{ "PAS{label}" }}\n\n'
        "# Top left pixel co-ordinates : (1, 1)\n\n"
        f'# Details for object 1 ("PAS{label}")\n'
        f'Original label for object 1 "PAS{label}" : "{label}"\n'
        f'Bounding box for object 1 "PAS{label}" (Xmin, Ymin) - (Xmax, Ymax) : '
        f"(2, 2) - ({w - 1}, {h - 1})\n"
    )


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2005)
    for archive, top, folders, group in _ARCHIVES:
        members: dict[str, bytes | str] = {}
        for class_name, names in folders.items():
            # ≥ 5 training images per class (70/15/15 non-empty); one test image per folder.
            per_folder = -(-5 // len(names)) if group == "train" else 1
            for source in names:
                for i in range(per_folder):
                    size = (16, 20)
                    mode = "L" if i == 1 else "RGB"  # some sources are grey
                    image = f"{top}/PNGImages/{source}/{source.lower()}_{i:03d}.png"
                    members[image] = fixtures.image_bytes(rng, "PNG", size, mode)
                    members[f"{top}/Annotations/{source}/{source.lower()}_{i:03d}.txt"] = (
                        _annotation(image.split("/", 1)[1], size, class_name, source)
                    )
        fixtures.write_tar(folder / archive, members)


HANDLER = Handler(
    key="pascal_voc2005",
    name="Pascal 2005",
    year=2006,
    sources=(
        Url("http://host.robots.ox.ac.uk/pascal/VOC/download/voc2005_1.tar.gz",
            md5="6fbeaee73a81c462b190ca837b977896"),
        Url("http://host.robots.ox.ac.uk/pascal/VOC/download/voc2005_2.tar.gz",
            md5="15ec3d318b84ffdfa25f1e05de0014e2"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2005/index.html",
    num_classes=4,
)
