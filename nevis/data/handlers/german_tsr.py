"""GTSRB — German Traffic Sign Recognition Benchmark (Stallkamp, Schlipsing, Salmen & Igel,
"The German Traffic Sign Recognition Benchmark: A multi-class classification competition",
IJCNN 2011): 43 sign classes, about 50,000 cropped colour images of various sizes.

Raw files (sid.erda.dk, md5 published by the reference):
- `GTSRB_Final_Training_Images.zip`: `GTSRB/Final_Training/Images/<NNNNN>/<track>_<n>.ppm`
  (NNNNN = class 00000..00042) with a `GT-<NNNNN>.csv` per class folder (not read);
- `GTSRB_Final_Test_Images.zip`: `GTSRB/Final_Test/Images/<NNNNN>.ppm` (one folder, no labels;
  its `GT-final_test.test.csv` has no class column and is not read);
- `GTSRB_Final_Test_GT.zip`: `GT-final_test.csv`, `;`-separated with the header
  `Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId`; the test label is the last field
  of the row of the image's file name.

Label rule: class = the training folder's number, or the test image's `ClassId`. Class names
are the folder names 00000..00042 (the reference keeps no other names). PPMs are converted to
PNG by the pipeline. Recipe: `official_test()` — training → 70/15/15 train/dev/dev_test, test →
test.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

TRAIN_ARCHIVE = "GTSRB_Final_Training_Images.zip"
TEST_ARCHIVE = "GTSRB_Final_Test_Images.zip"
TEST_LABELS_ARCHIVE = "GTSRB_Final_Test_GT.zip"
TEST_LABELS_MEMBER = "GT-final_test.csv"
NUM_CLASSES = 43
CLASS_NAMES = tuple(f"{c:05d}" for c in range(NUM_CLASSES))
_TRAIN_MEMBER = re.compile(r"(?:^|/)Final_Training/Images/(\d{5})/[^/]+\.ppm$", re.IGNORECASE)
_TEST_MEMBER = re.compile(r"(?:^|/)Final_Test/Images/([^/]+\.ppm)$", re.IGNORECASE)
_BASE = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"


def read_test_labels(archive: Path) -> dict[str, int]:
    """Test image file name -> class, from `GT-final_test.csv` in the ground-truth zip."""
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == TEST_LABELS_MEMBER]
        if not names:
            raise PrepareError(f"german_tsr: {archive.name} holds no {TEST_LABELS_MEMBER}.")
        text = zf.read(names[0]).decode("utf-8-sig")
    labels = {}
    for row in csv.reader(io.StringIO(text), delimiter=";"):
        if len(row) < 2 or not row[-1].strip().isdigit():
            continue  # the header, blank lines
        labels[row[0].strip()] = int(row[-1])
    return labels


def build(ctx: BuildContext) -> Built:
    items: list[recipes.Item] = []
    train_root = ctx.extract(TRAIN_ARCHIVE)
    for path in sorted(train_root.rglob("*")):
        rel = path.relative_to(train_root).as_posix()
        match = _TRAIN_MEMBER.search(rel)
        if match and path.is_file():
            items.append(recipes.Item(path, int(match.group(1)), group="train", name=rel))
    test_labels = read_test_labels(ctx.path(TEST_LABELS_ARCHIVE))
    test_root = ctx.extract(TEST_ARCHIVE)
    unlabelled = []
    for path in sorted(test_root.rglob("*")):
        rel = path.relative_to(test_root).as_posix()
        match = _TEST_MEMBER.search(rel)
        if not (match and path.is_file()):
            continue
        if match.group(1) not in test_labels:
            unlabelled.append(match.group(1))
            continue
        items.append(recipes.Item(path, test_labels[match.group(1)], group="test", name=rel))
    if unlabelled:
        raise PrepareError(f"german_tsr: {len(unlabelled)} test images have no row in "
                           f"{TEST_LABELS_MEMBER} (first: {unlabelled[0]}).")
    counts = {g: sum(item.group == g for item in items) for g in ("train", "test")}
    if not all(counts.values()):
        raise PrepareError(f"german_tsr: no images found for {counts}; has the layout changed?")
    bad = sorted({item.label for item in items} - set(range(NUM_CLASSES)))
    if bad:
        raise PrepareError(f"german_tsr: labels {bad} are outside 0..{NUM_CLASSES - 1}.")
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images": counts})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2011)
    classes = (0, 1, 2, 13, 25, 42)  # a subset of the 43 classes
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"
    train: dict[str, bytes | str] = {"GTSRB/Readme-Images.txt": "GTSRB fixture\n"}
    for c in classes:
        rows = [header]
        for i in range(7):
            name = f"{i // 3:05d}_{i:05d}.ppm"
            train[f"GTSRB/Final_Training/Images/{c:05d}/{name}"] = fixtures.image_bytes(
                rng, "PPM", (15, 13))
            rows.append(f"{name};13;15;1;1;12;14;{c}")
        train[f"GTSRB/Final_Training/Images/{c:05d}/GT-{c:05d}.csv"] = "\n".join(rows) + "\n"
    fixtures.write_zip(folder / TRAIN_ARCHIVE, train)
    test: dict[str, bytes | str] = {"GTSRB/Readme-Images-Final-test.txt": "GTSRB fixture\n"}
    test_rows, gt_rows = [header.rsplit(";", 1)[0]], [header]
    for i, c in enumerate(c for c in classes for _ in range(2)):
        name = f"{i:05d}.ppm"
        test[f"GTSRB/Final_Test/Images/{name}"] = fixtures.image_bytes(rng, "PPM", (15, 13))
        test_rows.append(f"{name};13;15;1;1;12;14")
        gt_rows.append(f"{name};13;15;1;1;12;14;{c}")
    test["GTSRB/Final_Test/Images/GT-final_test.test.csv"] = "\n".join(test_rows) + "\n"
    fixtures.write_zip(folder / TEST_ARCHIVE, test)
    fixtures.write_zip(folder / TEST_LABELS_ARCHIVE,
                       {TEST_LABELS_MEMBER: "\r\n".join(gt_rows) + "\r\n"})


HANDLER = Handler(
    key="german_tsr",
    name="German Traffic Sign Recognition Benchmark",
    year=2011,
    sources=(
        Url(_BASE + TRAIN_ARCHIVE, md5="f33fd80ac59bff73c82d25ab499e03a3"),
        Url(_BASE + TEST_ARCHIVE, md5="c7e4e6327067d32654124b0fe9e82185"),
        Url(_BASE + TEST_LABELS_ARCHIVE, md5="fe31e9c9270bbcd7b84b7f21a9d9d9e5"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://benchmark.ini.rub.de/gtsrb_dataset.html",
    num_classes=NUM_CLASSES,
)
