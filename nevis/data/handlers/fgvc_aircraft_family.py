"""FGVC-Aircraft, family level (Maji, Rahtu, Kannala, Blaschko & Vedaldi, "Fine-Grained Visual
Classification of Aircraft", arXiv 2013).

Raw file (VGG, md5 published by the reference): `fgvc-aircraft-2013b.tar.gz`, laid out as
`fgvc-aircraft-2013b/data/` with `images/<7-digit id>.jpg` (10,000 photos), the label lists
`families.txt` / `manufacturers.txt` / `variants.txt` (one name a line) and, per label level and
split, `images_<level>_<split>.txt` with lines `<image id> <class name>` (split in train, val,
trainval, test).

Label rule: the family level — label = line index of the image's family in `families.txt`; the
class list is read from the archive (FGVC-Aircraft documents 70 families), so num_classes is
computed at extraction. Images are whole (the 20-pixel copyright banner at the bottom is kept,
as the reference does).

Recipe: `official_test()`: `images_family_trainval.txt` → 70/15/15 train/dev/dev_test;
`images_family_test.txt` → test (the train/val files are not used, as the reference).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "fgvc-aircraft-2013b.tar.gz"
DATA = "fgvc-aircraft-2013b/data"
LEVEL = "family"
CLASS_FILE = "families.txt"
SPLIT_FILES = {"train": f"images_{LEVEL}_trainval.txt", "test": f"images_{LEVEL}_test.txt"}
_LINE = re.compile(r"^(\d+) (.+)$")


def read_class_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_split(path: Path) -> list[tuple[str, str]]:
    """(image id, class name) per line of an `images_<level>_<split>.txt` file."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if not match:
            raise PrepareError(f"fgvc_aircraft_family: {path.name}: unreadable line {line!r}.")
        rows.append((match.group(1), match.group(2)))
    return rows


def build(ctx: BuildContext) -> Built:
    data = ctx.extract(ARCHIVE) / DATA
    class_names = read_class_names(data / CLASS_FILE)
    index = {name: i for i, name in enumerate(class_names)}
    items, counts = [], {}
    for group, filename in SPLIT_FILES.items():
        rows = read_split(data / filename)
        for image_id, class_name in rows:
            if class_name not in index:
                raise PrepareError(f"fgvc_aircraft_family: {filename}: {class_name!r} is not "
                                   f"in {CLASS_FILE}.")
            path = data / "images" / f"{image_id}.jpg"
            if not path.is_file():
                raise PrepareError(f"fgvc_aircraft_family: {filename} names {path.name}, which "
                                   f"is not in {ARCHIVE}.")
            items.append(recipes.Item(path, index[class_name], group=group, name=path.name))
        counts[group] = len(rows)
    return Built(class_names, items, recipes.official_test(), channels=3,
                 metadata={"label_level": LEVEL, "images_per_official_split": counts})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2013)
    families = ("A300", "Boeing 707", "Cessna 172", "DC-3", "Fokker 100")
    manufacturers = ("Airbus", "Boeing", "Cessna", "Douglas Aircraft Company", "Fokker")
    variants = ("A300B4", "707-320", "Cessna 172", "DC-3", "Fokker 100")
    members: dict[str, bytes | str] = {}
    lines: dict[str, list[str]] = {}
    image = 1025794
    for c in range(len(families)):
        for k in range(6):  # 4 trainval (3 train + 1 val), 2 test per class
            image_id = f"{image:07d}"
            image += 37
            members[f"{DATA}/images/{image_id}.jpg"] = fixtures.image_bytes(rng, "JPEG", (20, 30))
            split = "test" if k >= 4 else ("val" if k == 3 else "train")
            for level, names in (("family", families), ("manufacturer", manufacturers),
                                 ("variant", variants)):
                line = f"{image_id} {names[c]}"
                lines.setdefault(f"images_{level}_{split}.txt", []).append(line)
                if split != "test":
                    lines.setdefault(f"images_{level}_trainval.txt", []).append(line)
            lines.setdefault(f"images_{split}.txt", []).append(image_id)
            lines.setdefault("images_box.txt", []).append(f"{image_id} 1 1 28 18")
    for name, rows in lines.items():
        members[f"{DATA}/{name}"] = "\n".join(rows) + "\n"
    for name, values in (("families", families), ("manufacturers", sorted(set(manufacturers))),
                         ("variants", variants)):
        members[f"{DATA}/{name}.txt"] = "\n".join(values) + "\n"
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="fgvc_aircraft_family",
    name="FGVC Aircraft",
    year=2013,
    sources=(
        Url("https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/" + ARCHIVE,
            md5="d4acdd33327262359767eeaa97a4f732"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/",
    num_classes=None,
)
