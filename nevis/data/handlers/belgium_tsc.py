"""Belgium Traffic Sign Classification (BelgiumTSC; Timofte, Zimmermann & Van Gool, "Multi-view
traffic sign detection, recognition, and 3D localisation", WACV 2009): 62 sign classes cropped
from the BelgiumTS street images.

Raw files (md5 published by the reference):
- `BelgiumTSC_Training.zip`: `Training/<NNNNN>/<track>_<n>.ppm` (NNNNN = class 00000..00061),
  one `GT-<NNNNN>.csv` per class folder (crop boxes, not read) and a readme (not read);
- `BelgiumTSC_Testing.zip`: the same under `Testing/`;
- `reducedSetTS.txt`: a header line, then one line per class of the reduced 62-class set; the
  stripped lines are the class names (index = line number after the header).

Label rule: the class folder's number. PPM images (colour, various sizes) are converted to PNG
by the pipeline. Recipe: `official_test()` — Training → 70/15/15 train/dev/dev_test, Testing →
test. The reference also skips every `.csv`/`.txt` member and reads any other file as an image;
here only `.ppm` files under a numbered class folder are read (the other members are the
annotation CSVs and readmes).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

TRAIN_ARCHIVE = "BelgiumTSC_Training.zip"
TEST_ARCHIVE = "BelgiumTSC_Testing.zip"
CLASS_FILE = "reducedSetTS.txt"
NUM_CLASSES = 62
# <anything>/<5-digit class>/<file>.ppm
_MEMBER = re.compile(r"(?:^|/)(\d{5})/[^/]+\.ppm$", re.IGNORECASE)


def read_class_names(path: Path) -> list[str]:
    """The class names of `reducedSetTS.txt`: every non-empty line after the header."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]
    names = [line.strip() for line in lines if line.strip()]
    if len(names) != NUM_CLASSES:
        raise PrepareError(f"belgium_tsc: {path.name} lists {len(names)} classes after its "
                           f"header, not {NUM_CLASSES}.")
    return names


def _items(root: Path, group: str) -> list[recipes.Item]:
    items = []
    for path in sorted(root.rglob("*")):
        match = _MEMBER.search(path.relative_to(root).as_posix())
        if not (match and path.is_file()):
            continue
        label = int(match.group(1))
        if label >= NUM_CLASSES:
            raise PrepareError(f"belgium_tsc: class folder {match.group(1)} is outside "
                               f"0..{NUM_CLASSES - 1} ({path.relative_to(root)}).")
        items.append(recipes.Item(path, label, group=group,
                                  name=path.relative_to(root).as_posix()))
    if not items:
        raise PrepareError(f"belgium_tsc: no <class>/<image>.ppm members in the {group} "
                           "archive; has the layout changed?")
    return items


def build(ctx: BuildContext) -> Built:
    class_names = read_class_names(ctx.path(CLASS_FILE))
    train = _items(ctx.extract(TRAIN_ARCHIVE), "train")
    test = _items(ctx.extract(TEST_ARCHIVE), "test")
    return Built(class_names, train + test, recipes.official_test(), channels=3,
                 metadata={"images": {"train": len(train), "test": len(test)}})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2009)
    # A subset of the 62 classes (labels come from the folder numbers, names from the file).
    classes = (0, 1, 7, 19, 32, 45, 61)
    for archive, top, per_class in ((TRAIN_ARCHIVE, "Training", 7), (TEST_ARCHIVE, "Testing", 2)):
        members: dict[str, bytes | str] = {f"{top}/Readme.txt": "BelgiumTSC fixture\n"}
        for c in classes:
            rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
            for i in range(per_class):
                name = f"{c * 10 + i:05d}_{i:05d}.ppm"
                members[f"{top}/{c:05d}/{name}"] = fixtures.image_bytes(rng, "PPM", (14, 12))
                rows.append(f"{name};12;14;1;1;11;13;{c}")
            members[f"{top}/{c:05d}/GT-{c:05d}.csv"] = "\n".join(rows) + "\n"
        fixtures.write_zip(folder / archive, members)
    header = "Reduced set of traffic sign classes (BelgiumTSC)"
    (folder / CLASS_FILE).write_text(
        "\n".join([header, *(f"{c:05d} sign_class_{c}" for c in range(NUM_CLASSES))]) + "\n")


HANDLER = Handler(
    key="belgium_tsc",
    name="Belgium Traffic Sign Dataset",
    year=2009,
    sources=(
        Url("https://btsd.ethz.ch/shareddata/BelgiumTS/reducedSetTS.txt",
            md5="e6052a024e24060e5cec84fbda34fb5e"),
        Url("http://www.vision.ee.ethz.ch/~timofter/BelgiumTSC/BelgiumTSC_Training.zip",
            md5="c727ca9d00e3964ca676286a1808ccee"),
        Url("http://www.vision.ee.ethz.ch/~timofter/BelgiumTSC/BelgiumTSC_Testing.zip",
            md5="d208de4566388791c0028da8d6a545cc"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://btsd.ethz.ch/shareddata/",
    num_classes=NUM_CLASSES,
)
