"""MIT Indoor Scenes (Quattoni & Torralba, "Recognizing indoor scenes", CVPR 2009): 67 indoor
scene categories, 15,620 colour images.

Raw file: the Kaggle dataset `itsahmad/indoor-scenes-cvpr-2019` (needs Kaggle credentials; md5
of the archive Kaggle served, published by the reference), `indoor-scenes-cvpr-2019.zip` with
`indoorCVPR_09/Images/<category>/<image>.jpg` and the official lists `TrainImages.txt` (80 per
category) and `TestImages.txt` (20 per category) at its top, one `<category>/<image>` per line.

Label rule: the list entry's category, with the reference's class order (CLASS_NAMES, index =
label; not sorted; `stairscase` is the dataset's own spelling). Only listed images are used; a
listed image missing from the archive stops the build (as in the reference). Some files named
`.jpg` are GIF/PNG data: the pipeline converts them. Recipe: `official_test()` — TrainImages →
70/15/15 train/dev/dev_test, TestImages → test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

ARCHIVE = "indoor-scenes-cvpr-2019.zip"
IMAGE_FOLDER = "indoorCVPR_09/Images"
LISTS = {"train": "TrainImages.txt", "test": "TestImages.txt"}
CLASS_NAMES = (
    "office", "lobby", "stairscase", "winecellar", "church_inside", "studiomusic", "shoeshop",
    "bowling", "poolinside", "nursery", "meeting_room", "videostore", "bathroom", "library",
    "locker_room", "movietheater", "children_room", "concert_hall", "clothingstore", "pantry",
    "subway", "prisoncell", "inside_bus", "garage", "warehouse", "bookstore", "auditorium",
    "laboratorywet", "tv_studio", "buffet", "waitingroom", "laundromat", "bedroom",
    "greenhouse", "cloister", "elevator", "dining_room", "hairsalon", "livingroom", "deli",
    "restaurant_kitchen", "dentaloffice", "trainstation", "casino", "bar", "jewelleryshop",
    "kitchen", "museum", "grocerystore", "operating_room", "airport_inside", "gameroom",
    "fastfood_restaurant", "classroom", "bakery", "closet", "artstudio", "hospitalroom", "gym",
    "florist", "inside_subway", "toystore", "kindergarden", "restaurant", "mall", "corridor",
    "computerroom",
)


def read_list(path: Path) -> list[str]:
    """The `<category>/<image>` entries of an official list (blank lines dropped)."""
    if not path.is_file():
        raise PrepareError(f"mit_scenes: {ARCHIVE} holds no {path.name} at its top.")
    text = path.read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip()]


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    label = {name: i for i, name in enumerate(CLASS_NAMES)}
    items: list[recipes.Item] = []
    for group, list_name in LISTS.items():
        missing = []
        for entry in read_list(root / list_name):
            category = entry.split("/", 1)[0]
            if category not in label:
                raise PrepareError(f"mit_scenes: {list_name} names the unknown category "
                                   f"{category!r} ({entry}).")
            path = root / IMAGE_FOLDER / entry
            if not path.is_file():
                missing.append(entry)
                continue
            items.append(recipes.Item(path, label[category], group=group,
                                      name=f"{IMAGE_FOLDER}/{entry}"))
        if missing:
            raise PrepareError(f"mit_scenes: {len(missing)} images of {list_name} are not in "
                               f"{ARCHIVE} (first: {missing[0]}).")
    counts = {g: sum(item.group == g for item in items) for g in LISTS}
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images": counts})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2009)
    categories = ("office", "stairscase", "church_inside", "bar", "computerroom")  # a subset
    members: dict[str, bytes | str] = {}
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for category in categories:
        for i in range(9):
            name = f"{category}/{category[:3]}_{i:04d}.jpg"
            if category == "bar" and i == 0:  # a GIF under a .jpg name, as in the real data
                data = fixtures.image_bytes(rng, "GIF", (18, 24), "P")
            else:
                data = fixtures.image_bytes(rng, "JPEG", (18, 24))
            members[f"{IMAGE_FOLDER}/{name}"] = data
            if i < 8:  # the last image of each category is in neither list
                lists["train" if i < 6 else "test"].append(name)
    members[LISTS["train"]] = "\n".join(lists["train"])
    members[LISTS["test"]] = "\n".join(lists["test"])
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="mit_scenes",
    name="MIT Scenes",
    year=2009,
    sources=(Kaggle("itsahmad/indoor-scenes-cvpr-2019", md5="b5a8ee875edc974ab49f4cad3b8607da"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://web.mit.edu/torralba/www/indoor.html",
    num_classes=len(CLASS_NAMES),
)
