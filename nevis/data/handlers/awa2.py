"""Animals with Attributes 2 (Xian, Lampert, Schiele & Akata, "Zero-Shot Learning — A
Comprehensive Evaluation of the Good, the Bad and the Ugly", 2017): 37,322 photos of 50 animal
classes, each class described by 85 binary attributes.

Raw file: `AwA2-data.zip` (13 GB, IST Austria, md5 published by the reference), read in place,
with `Animals_with_Attributes2/`: `classes.txt` (`<id>\\t<class>`, ids 1–50), `predicates.txt`
(`<id>\\t<attribute>`, ids 1–85), `predicate-matrix-binary.txt` (50 rows of 85 space-separated
0/1, rows in classes.txt order), `trainclasses.txt` / `testclasses.txt` (40 / 10 class names,
the zero-shot split), and `JPEGImages/<class>/<class>_<n>.jpg`.

Task (multi-label, as the reference): predict the 85 attributes; class names = the attributes in
predicates.txt order (index = id - 1). An image's labels are the attributes its class has in the
binary matrix. Images are shrunk to a longest side of 256 (`max_image_side`), as the reference.
Recipe (`official_test()`): images of trainclasses.txt animals → 70/15/15 train/dev/dev_test;
images of testclasses.txt animals → test (unseen classes, as in zero-shot learning).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url
from nevis.tasks import TaskKind

ARCHIVE = "AwA2-data.zip"
ROOT = "Animals_with_Attributes2"
_IMAGE = re.compile(rf"^{ROOT}/JPEGImages/([^/]+)/[^/]+\.jpg$", re.IGNORECASE)


def read_numbered(text: str) -> list[str]:
    """Names of a `<id>\\t<name>` file, ordered by id (ids must be 1..n)."""
    entries = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            entries[int(fields[0])] = fields[1]
    if sorted(entries) != list(range(1, len(entries) + 1)):
        raise PrepareError("awa2: ids in a classes/predicates file are not 1..n.")
    return [entries[i] for i in sorted(entries)]


def read_names(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_matrix(text: str, rows: int, columns: int) -> np.ndarray:
    matrix = np.array([[int(v) for v in line.split()] for line in text.splitlines()
                       if line.strip()], dtype=np.int64)
    if matrix.shape != (rows, columns) or not np.isin(matrix, (0, 1)).all():
        raise PrepareError(f"awa2: predicate-matrix-binary.txt is {matrix.shape}, not a "
                           f"{rows}×{columns} 0/1 matrix.")
    return matrix


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    zf = zm.open_zip(archive)

    def text(name: str) -> str:
        return zf.read(f"{ROOT}/{name}").decode("utf-8")

    classes = read_numbered(text("classes.txt"))
    predicates = read_numbered(text("predicates.txt"))
    matrix = read_matrix(text("predicate-matrix-binary.txt"), len(classes), len(predicates))
    group_of = {name: "train" for name in read_names(text("trainclasses.txt"))}
    group_of.update({name: "test" for name in read_names(text("testclasses.txt"))})
    unknown = sorted(set(group_of) - set(classes))
    if unknown:
        raise PrepareError(f"awa2: train/test class lists name unknown classes {unknown}.")
    attributes = {name: [int(a) for a in np.flatnonzero(row)]
                  for name, row in zip(classes, matrix, strict=True)}
    items, per_group = [], {"train": 0, "test": 0}
    for name in zm.files(archive):
        match = _IMAGE.match(name)
        if not match or match.group(1) not in group_of:
            continue
        animal = match.group(1)
        if not attributes[animal]:
            raise PrepareError(f"awa2: class {animal} has no attribute.")
        group = group_of[animal]
        items.append(recipes.Item(zm.reader(archive, name), attributes[animal], group=group,
                                  name=name))
        per_group[group] += 1
    return Built(predicates, items, recipes.official_test(), channels=3,
                 metadata={"images_per_group": per_group, "animal_classes": classes,
                           "test_animals": sorted(a for a, g in group_of.items() if g == "test")})


# ------------------------------------------------------------------------------------- fixture

PREDICATES = (
    "black white blue brown gray orange red yellow patches spots stripes furry hairless "
    "toughskin big small bulbous lean flippers hands hooves pads paws longleg longneck tail "
    "chewteeth meatteeth buckteeth strainteeth horns claws tusks smelly flys hops swims tunnels "
    "walks fast slow strong weak muscle bipedal quadrapedal active inactive nocturnal hibernate "
    "agility fish meat plankton vegetation insects forager grazer hunter scavenger skimmer "
    "stalker newworld oldworld arctic coastal desert bush plains forest fields jungle mountains "
    "ocean ground water tree cave fierce timid smart group solitary nestspot domestic"
).split()
ANIMALS = (
    "antelope grizzly+bear killer+whale beaver dalmatian persian+cat horse german+shepherd "
    "blue+whale siamese+cat skunk mole tiger hippopotamus leopard moose spider+monkey "
    "humpback+whale elephant gorilla ox fox sheep seal chimpanzee hamster squirrel rhinoceros "
    "rabbit bat giraffe wolf chihuahua rat weasel otter buffalo zebra giant+panda deer bobcat pig "
    "lion mouse polar+bear collie walrus raccoon cow dolphin"
).split()
TEST_ANIMALS = ("chimpanzee", "giant+panda", "leopard", "persian+cat", "pig", "hippopotamus",
                "humpback+whale", "raccoon", "rat", "seal")


def write_fixture(folder: Path) -> None:
    """The real class/attribute lists, a random 50×85 matrix; images of 3 train + 2 test animals
    (7 and 2 each; some larger than 256 px, one grey)."""
    rng = np.random.default_rng(85)
    matrix = (rng.random((len(ANIMALS), len(PREDICATES))) < 0.3).astype(int)
    matrix[:, 0] = 1  # every animal has at least one attribute
    members: dict[str, bytes | str] = {
        f"{ROOT}/classes.txt": "".join(f"{i}\t{a}\n" for i, a in enumerate(ANIMALS, 1)),
        f"{ROOT}/predicates.txt": "".join(f"{i}\t{p}\n" for i, p in enumerate(PREDICATES, 1)),
        f"{ROOT}/predicate-matrix-binary.txt": "".join(
            " ".join(str(v) for v in row) + "\n" for row in matrix),
        f"{ROOT}/predicate-matrix-continuous.txt": "".join(
            " ".join(f"{100 * v:.2f}" for v in row) + "\n" for row in matrix),
        f"{ROOT}/trainclasses.txt": "".join(
            f"{a}\n" for a in ANIMALS if a not in TEST_ANIMALS),
        f"{ROOT}/testclasses.txt": "".join(f"{a}\n" for a in TEST_ANIMALS),
        f"{ROOT}/README-images.txt": "fixture\n",
    }
    for animal, count in (("antelope", 7), ("grizzly+bear", 7), ("dolphin", 7), ("pig", 2),
                          ("seal", 2)):
        for i in range(count):
            size = (300, 40) if i == 0 else (18, 24)
            mode = "L" if (animal, i) == ("dolphin", 2) else "RGB"
            members[f"{ROOT}/JPEGImages/{animal}/{animal}_{10001 + i}.jpg"] = (
                fixtures.image_bytes(rng, "JPEG", size, mode))
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="awa2",
    name="AWA2",
    year=2017,
    sources=(Url("https://cvml.ist.ac.at/AwA2/AwA2-data.zip",
                 md5="eaa27cf799d5cf55af372356d7281b5e"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://cvml.ist.ac.at/AwA2/",
    num_classes=85,
    kind=TaskKind.MULTI_LABEL,
    max_image_side=256,
)
