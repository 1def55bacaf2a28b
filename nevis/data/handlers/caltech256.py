"""Caltech-256 (Griffin, Holub & Perona, "Caltech-256 Object Category Dataset", tech. report 2007).

Raw file: `256_ObjectCategories.tar` (Google Drive copy used by the reference and torchvision;
the same archive, same MD5, is also published at
https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar — put it in
`--manual_dir` if Google Drive refuses the download). Layout:
`256_ObjectCategories/<NNN>.<name>/<NNN>_<MMMM>.jpg`, NNN = 001..257 (257 = clutter); 30,607
JPEGs of varying sizes. Files not matching that pattern (stray non-image files) are skipped.

Label rule: NNN - 1; the folder's name must be the class name at that index (the reference's
LABELS_TO_ID, 257 entries including "clutter"), otherwise the build fails. No official split:
random 56/12/12/20.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import GoogleDrive

ARCHIVE = "256_ObjectCategories.tar"
_MEMBER = re.compile(r"(?:^|/)256_ObjectCategories/(\d{3})\.([^/]+)/\d{3}_\d{4}\.jpg$")

CLASS_NAMES = (
    "ak47", "american-flag", "backpack", "baseball-bat", "baseball-glove", "basketball-hoop",
    "bat", "bathtub", "bear", "beer-mug", "billiards", "binoculars", "birdbath", "blimp",
    "bonsai-101", "boom-box", "bowling-ball", "bowling-pin", "boxing-glove", "brain-101",
    "breadmaker", "buddha-101", "bulldozer", "butterfly", "cactus", "cake", "calculator",
    "camel", "cannon", "canoe", "car-tire", "cartman", "cd", "centipede", "cereal-box",
    "chandelier-101", "chess-board", "chimp", "chopsticks", "cockroach", "coffee-mug",
    "coffin", "coin", "comet", "computer-keyboard", "computer-monitor", "computer-mouse",
    "conch", "cormorant", "covered-wagon", "cowboy-hat", "crab-101", "desk-globe",
    "diamond-ring", "dice", "dog", "dolphin-101", "doorknob", "drinking-straw", "duck",
    "dumb-bell", "eiffel-tower", "electric-guitar-101", "elephant-101", "elk", "ewer-101",
    "eyeglasses", "fern", "fighter-jet", "fire-extinguisher", "fire-hydrant", "fire-truck",
    "fireworks", "flashlight", "floppy-disk", "football-helmet", "french-horn", "fried-egg",
    "frisbee", "frog", "frying-pan", "galaxy", "gas-pump", "giraffe", "goat",
    "golden-gate-bridge", "goldfish", "golf-ball", "goose", "gorilla", "grand-piano-101",
    "grapes", "grasshopper", "guitar-pick", "hamburger", "hammock", "harmonica", "harp",
    "harpsichord", "hawksbill-101", "head-phones", "helicopter-101", "hibiscus",
    "homer-simpson", "horse", "horseshoe-crab", "hot-air-balloon", "hot-dog", "hot-tub",
    "hourglass", "house-fly", "human-skeleton", "hummingbird", "ibis-101", "ice-cream-cone",
    "iguana", "ipod", "iris", "jesus-christ", "joy-stick", "kangaroo-101", "kayak",
    "ketch-101", "killer-whale", "knife", "ladder", "laptop-101", "lathe", "leopards-101",
    "license-plate", "lightbulb", "light-house", "lightning", "llama-101", "mailbox",
    "mandolin", "mars", "mattress", "megaphone", "menorah-101", "microscope", "microwave",
    "minaret", "minotaur", "motorbikes-101", "mountain-bike", "mushroom", "mussels",
    "necktie", "octopus", "ostrich", "owl", "palm-pilot", "palm-tree", "paperclip",
    "paper-shredder", "pci-card", "penguin", "people", "pez-dispenser", "photocopier",
    "picnic-table", "playing-card", "porcupine", "pram", "praying-mantis", "pyramid",
    "raccoon", "radio-telescope", "rainbow", "refrigerator", "revolver-101", "rifle",
    "rotary-phone", "roulette-wheel", "saddle", "saturn", "school-bus", "scorpion-101",
    "screwdriver", "segway", "self-propelled-lawn-mower", "sextant", "sheet-music",
    "skateboard", "skunk", "skyscraper", "smokestack", "snail", "snake", "sneaker",
    "snowmobile", "soccer-ball", "socks", "soda-can", "spaghetti", "speed-boat", "spider",
    "spoon", "stained-glass", "starfish-101", "steering-wheel", "stirrups", "sunflower-101",
    "superman", "sushi", "swan", "swiss-army-knife", "sword", "syringe", "tambourine",
    "teapot", "teddy-bear", "teepee", "telephone-box", "tennis-ball", "tennis-court",
    "tennis-racket", "theodolite", "toaster", "tomato", "tombstone", "top-hat",
    "touring-bike", "tower-pisa", "traffic-light", "treadmill", "triceratops", "tricycle",
    "trilobite-101", "tripod", "t-shirt", "tuning-fork", "tweezer", "umbrella-101",
    "unicorn", "vcr", "video-projector", "washing-machine", "watch-101", "waterfall",
    "watermelon", "welding-mask", "wheelbarrow", "windmill", "wine-bottle", "xylophone",
    "yarmulke", "yo-yo", "zebra", "airplanes-101", "car-side-101", "faces-easy-101",
    "greyhound", "tennis-shoes", "toad", "clutter",
)  # fmt: skip


def label_of(member: str) -> int | None:
    """The label of an archive member path, None for files outside the image pattern."""
    match = _MEMBER.search(member)
    if not match:
        return None
    number, folder_name = int(match.group(1)), match.group(2)
    expected = CLASS_NAMES[number - 1] if 1 <= number <= len(CLASS_NAMES) else None
    if folder_name != expected:
        raise ValueError(
            f"{ARCHIVE}: folder {match.group(1)}.{folder_name} does not match the class list "
            f"(class {match.group(1)} is {expected!r})."
        )
    return number - 1


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        label = label_of(relative)
        if label is not None:
            items.append(recipes.Item(path, label, name=relative))
    if not items:
        raise ValueError(
            f"{ARCHIVE}: no 256_ObjectCategories/NNN.<name>/NNN_MMMM.jpg files — "
            "has the layout changed?"
        )
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3)


# Fixture: a subset of the folders (labels still checked against the full list), including the
# first, the last (clutter) and the "-101" folders, plus a stray non-image file.
_FIXTURE_FOLDERS = (1, 56, 131, 132, 145, 198, 251, 253, 256, 257)


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(256)
    members: dict[str, bytes | str] = {}
    for number in _FIXTURE_FOLDERS:
        directory = f"256_ObjectCategories/{number:03d}.{CLASS_NAMES[number - 1]}"
        for i in range(1, 7):
            mode = "L" if i == 6 else "RGB"  # a few grey JPEGs, as in the real archive
            members[f"{directory}/{number:03d}_{i:04d}.jpg"] = fixtures.image_bytes(
                rng, "JPEG", (12, 16), mode
            )
    members["256_ObjectCategories/198.spider/RENAME2"] = "stray file\n"
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="caltech256",
    name="Caltech 256",
    year=2007,
    sources=(
        GoogleDrive(
            "1r6o0pSROcV1_VwT4oSjA2FBUSCWGuxLK", ARCHIVE, md5="67b4f42ca05d46448c6bb8ecd2220f6d"
        ),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://data.caltech.edu/records/nyy15-4j048",
    num_classes=257,
)
