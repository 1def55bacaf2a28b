"""Food-101 (Bossard, Guillaumin & Van Gool, "Food-101 — Mining Discriminative Components with
Random Forests", ECCV 2014): 101 dishes, 1,000 photos each (750 train, 250 test).

Raw file: `food-101.tar.gz` (ETH Zürich, md5 published by the reference) with
`food-101/images/<class>/<id>.jpg`, `food-101/meta/{train,test}.txt` (one `<class>/<id>` a line:
the official split), `meta/classes.txt`, `meta/labels.txt` and `meta/*.json` (not read).

Classes: the reference's label list (CLASS_NAMES; not alphabetical), index = position; label rule:
the image's folder. Recipe (`official_test()`): meta/train.txt → 70/15/15 train/dev/dev_test;
meta/test.txt → test. Images in neither list are left out (there are none in the release).
This is the reference's custom handler, not TFDS `food101`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "food-101.tar.gz"
ROOT = "food-101"
CLASS_NAMES = (
    "takoyaki", "bruschetta", "lobster_bisque", "bread_pudding", "scallops", "pancakes",
    "donuts", "ceviche", "grilled_salmon", "ravioli", "prime_rib", "waffles", "eggs_benedict",
    "beef_tartare", "chicken_wings", "clam_chowder", "panna_cotta", "ramen", "french_fries",
    "seaweed_salad", "lasagna", "fried_calamari", "deviled_eggs", "carrot_cake",
    "strawberry_shortcake", "chocolate_mousse", "poutine", "beignets", "caesar_salad",
    "bibimbap", "garlic_bread", "cheese_plate", "shrimp_and_grits", "caprese_salad",
    "beet_salad", "dumplings", "macarons", "churros", "samosa", "creme_brulee", "miso_soup",
    "french_onion_soup", "risotto", "pulled_pork_sandwich", "hot_and_sour_soup", "onion_rings",
    "spaghetti_bolognese", "edamame", "beef_carpaccio", "steak", "grilled_cheese_sandwich",
    "peking_duck", "frozen_yogurt", "mussels", "red_velvet_cake", "oysters", "greek_salad",
    "foie_gras", "pho", "spaghetti_carbonara", "pad_thai", "huevos_rancheros", "sashimi",
    "sushi", "gnocchi", "hummus", "pork_chop", "falafel", "chicken_curry", "breakfast_burrito",
    "club_sandwich", "cannoli", "chocolate_cake", "fried_rice", "apple_pie", "guacamole",
    "macaroni_and_cheese", "hot_dog", "cup_cakes", "paella", "ice_cream", "escargots",
    "spring_rolls", "crab_cakes", "croque_madame", "hamburger", "baby_back_ribs", "baklava",
    "pizza", "filet_mignon", "cheesecake", "lobster_roll_sandwich", "tiramisu", "omelette",
    "tacos", "nachos", "gyoza", "chicken_quesadilla", "french_toast", "tuna_tartare",
    "fish_and_chips",
)


def read_split_list(path: Path) -> set[str]:
    """The `<class>/<id>` entries of meta/train.txt or meta/test.txt."""
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE) / ROOT
    if not (root / "meta").is_dir():
        raise PrepareError(f"food101: {ARCHIVE} has no {ROOT}/meta folder.")
    lists = {group: read_split_list(root / "meta" / f"{group}.txt") for group in ("train", "test")}
    label_of = {name: i for i, name in enumerate(CLASS_NAMES)}
    items, unlisted = [], 0
    for path in sorted((root / "images").glob("*/*.jpg")):
        class_name = path.parent.name
        key = f"{class_name}/{path.stem}"
        group = "train" if key in lists["train"] else "test" if key in lists["test"] else None
        if group is None:
            unlisted += 1
            continue
        if class_name not in label_of:
            raise PrepareError(f"food101: unknown class folder {class_name!r}.")
        items.append(recipes.Item(path, label_of[class_name], group=group, name=key))
    found = {item.name for item in items}
    missing = len(lists["train"] | lists["test"]) - len(found)
    if missing:
        raise PrepareError(f"food101: {missing} images of meta/train.txt and meta/test.txt are "
                           f"not in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images_in_no_list": unlisted})


def write_fixture(folder: Path) -> None:
    """3 classes, 7 train + 2 test images each, plus the meta files."""
    rng = np.random.default_rng(101)
    members: dict[str, bytes | str] = {}
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for class_name in ("apple_pie", "takoyaki", "fish_and_chips"):
        for i in range(9):
            image_id = str(100000 + 37 * i + len(class_name))
            members[f"{ROOT}/images/{class_name}/{image_id}.jpg"] = fixtures.image_bytes(
                rng, "JPEG", (16, 20))
            lists["train" if i < 7 else "test"].append(f"{class_name}/{image_id}")
    for group, entries in lists.items():
        members[f"{ROOT}/meta/{group}.txt"] = "".join(f"{e}\n" for e in entries)
        members[f"{ROOT}/meta/{group}.json"] = "{}"
    members[f"{ROOT}/meta/classes.txt"] = "".join(f"{c}\n" for c in sorted(CLASS_NAMES))
    members[f"{ROOT}/meta/labels.txt"] = "".join(
        f"{c.replace('_', ' ').capitalize()}\n" for c in sorted(CLASS_NAMES))
    members[f"{ROOT}/README.txt"] = "Food-101 fixture\n"
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="food101",
    name="Food 101",
    year=2014,
    sources=(Url("http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
                 md5="85eeb15f3717b99a5da872d97d918f87"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
    num_classes=101,
)
