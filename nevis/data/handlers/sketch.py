"""TU Berlin sketch dataset (Eitz, Hays & Alexa, "How Do Humans Sketch Objects?", SIGGRAPH 2012).

Raw file: `sketches_png.zip` with `png/<category>/<N>.png` (20,000 grey 1111×1111 PNG sketches,
80 per category, N numbered across the whole set) and `png/filelist.txt`. Category folders are
named as the class names below (spaces and parentheses included, e.g. `png/crane (machine)/`).

Label rule: the category folder's position in the reference's label list (250 classes, in the
reference's order, which is not alphabetical). No official split: random 56/12/12/20.
A PNG under an unknown folder is an error (the layout changed), not silently skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

ARCHIVE = "sketches_png.zip"

CLASS_NAMES = (
    "snail", "candle", "crane (machine)", "parking meter", "bathtub", "loudspeaker",
    "bulldozer", "skateboard", "ant", "radio", "tennis-racket", "envelope", "house",
    "person walking", "basket", "rainbow", "paper clip", "alarm clock", "screwdriver",
    "cactus", "umbrella", "carrot", "fan", "kangaroo", "bell", "t-shirt", "hedgehog",
    "santa claus", "angel", "trousers", "eyeglasses", "pretzel", "snake", "elephant",
    "frying-pan", "bread", "rollerblades", "tomato", "cake", "couch", "pizza", "crown",
    "cannon", "baseball bat", "moon", "potted plant", "cup", "syringe", "pipe (for smoking)",
    "hand", "telephone", "pumpkin", "race car", "table", "brain", "snowboard", "flashlight",
    "cloud", "helmet", "monkey", "ice-cream-cone", "wineglass", "strawberry", "speed-boat",
    "cigarette", "pigeon", "book", "lion", "rabbit", "violin", "grenade", "skull",
    "car (sedan)", "bee", "head", "spoon", "ship", "laptop", "diamond", "church", "spider",
    "wheelbarrow", "flower with stem", "mosquito", "apple", "giraffe", "submarine", "tree",
    "harp", "face", "boomerang", "floor lamp", "fork", "horse", "scissors", "cell phone",
    "comb", "beer-mug", "helicopter", "hot air balloon", "bear (animal)", "lightbulb",
    "trombone", "computer monitor", "computer-mouse", "fire hydrant", "squirrel", "camera",
    "binoculars", "sponge bob", "streetlight", "blimp", "satellite", "rooster", "key",
    "windmill", "duck", "zebra", "armchair", "skyscraper", "bookshelf", "shark", "tablelamp",
    "nose", "truck", "fish", "chandelier", "bottle opener", "mailbox", "donut", "door",
    "chair", "castle", "ipod", "power outlet", "wrist-watch", "wheel", "dog", "bus", "foot",
    "panda", "megaphone", "microscope", "bench", "snowman", "mug", "sun", "wine-bottle",
    "suv", "vase", "door handle", "arm", "ear", "hot-dog", "ladder", "banana", "toilet",
    "pineapple", "mushroom", "dolphin", "mouse (animal)", "owl", "hat", "palm tree", "tv",
    "calculator", "bicycle", "standing bird", "bowl", "ashtray", "trumpet", "microphone",
    "saxophone", "leaf", "tire", "bed", "shovel", "socks", "traffic light", "feather", "crab",
    "frog", "walkie talkie", "purse", "hammer", "parrot", "rifle", "sailboat", "scorpion",
    "head-phones", "backpack", "toothbrush", "guitar", "human-skeleton", "bridge", "bush",
    "axe", "sheep", "mermaid", "eye", "pig", "cabinet", "sword", "satellite dish", "keyboard",
    "stapler", "teacup", "present", "motorbike", "airplane", "canoe", "pear", "teddy-bear",
    "knife", "butterfly", "camel", "flying saucer", "pickup truck", "van", "swan",
    "sea turtle", "teapot", "tractor", "hourglass", "tooth", "lobster", "hamburger", "grapes",
    "mouth", "parachute", "dragon", "person sitting", "pen", "train", "tent", "tiger",
    "revolver", "suitcase", "shoe", "barn", "flying bird", "octopus", "seagull",
    "space shuttle", "cat", "crocodile", "piano", "penguin", "cow", "lighter",
)  # fmt: skip
_LABELS = {name: i for i, name in enumerate(CLASS_NAMES)}
_MEMBER = re.compile(r"(?:^|/)png/([^/]+)/\d+\.png$")


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items = []
    for path in sorted(root.rglob("*.png")):
        match = _MEMBER.search(path.relative_to(root).as_posix())
        if not match:  # e.g. resource-fork files ("._1.png"); real sketches are numbered
            continue
        category = match.group(1)
        if category not in _LABELS:
            raise ValueError(
                f"{ARCHIVE}: {path.relative_to(root)} is in an unknown category folder "
                f"{category!r} — has the layout changed?"
            )
        items.append(recipes.Item(path, _LABELS[category], name=f"{category}/{path.name}"))
    if not items:
        raise ValueError(f"{ARCHIVE}: no png/<category>/<N>.png files — has the layout changed?")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1)


# Fixture: a subset of the categories (labels still come from the full list above), including
# folder names with spaces, parentheses and hyphens.
_FIXTURE_CLASSES = (
    "snail", "crane (machine)", "person walking", "tennis-racket", "pipe (for smoking)",
    "car (sedan)", "mouse (animal)", "airplane", "lighter", "cow",
)  # fmt: skip


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(42)
    members: dict[str, bytes | str] = {}
    listing = []
    number = 1
    for category in _FIXTURE_CLASSES:
        for _ in range(6):
            member = f"{category}/{number}.png"
            members[f"png/{member}"] = fixtures.image_bytes(rng, "PNG", (16, 16), "L")
            listing.append(member)
            number += 1
    members["png/filelist.txt"] = "\n".join(listing) + "\n"
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="sketch",
    name="sketch dataset",
    year=2012,
    sources=(
        Url(
            "https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/sketches_png.zip",
            md5="023123df86a928a5273e3ba11990d8fd",
        ),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/",
    num_classes=250,
)
