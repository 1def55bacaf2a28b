"""ISBI-ISIC 2017 melanoma classification challenge (Codella et al., "Skin Lesion Analysis Toward
Melanoma Detection: A Challenge at the 2017 ISBI, Hosted by the ISIC", arXiv 2017): dermoscopic
images, 3 classes.

Raw files (ISIC challenge bucket, md5 published by the reference), per official split
(Training 2000 images, Validation 150, Test 600):

- `ISIC-2017_<Split>_Data.zip` (`Test_v2` for the test split): `ISIC-2017_<Split>_Data/
  ISIC_<7 digits>.jpg`, next to superpixel PNGs and a metadata CSV that are not used;
- `ISIC-2017_<Split>_Part3_GroundTruth.csv`: header `image_id,melanoma,seborrheic_keratosis`,
  then one row per image with 0.0/1.0 flags.

Label rule (the reference's): melanoma flag → 0 "melanoma"; seborrheic keratosis flag → 1
"seborrheic keratosis"; neither → 2 "benign nevi"; both flags is an error. Images are found by
`<image_id>.jpg` in the zip and read from it in place (no extraction of the 6 GB of zips).

Recipe: `official_val_test()`: Training → 80/20 train/dev; Validation → dev_test; Test → test.
Deviation: the reference cuts Training 80/20 after a seed-1 permutation (not stratified); here
the cut is stratified per class (seed 0), as every random cut in this project.
"""

from __future__ import annotations

import csv
import functools
import zipfile
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

CLASS_NAMES = ("melanoma", "seborrheic keratosis", "benign nevi")
_BASE = "https://isic-challenge-data.s3.amazonaws.com/2017/"

# group -> (images zip, ground-truth CSV)
SPLITS = {
    "train": ("ISIC-2017_Training_Data.zip", "ISIC-2017_Training_Part3_GroundTruth.csv"),
    "val": ("ISIC-2017_Validation_Data.zip", "ISIC-2017_Validation_Part3_GroundTruth.csv"),
    "test": ("ISIC-2017_Test_v2_Data.zip", "ISIC-2017_Test_v2_Part3_GroundTruth.csv"),
}
_MD5 = {
    "ISIC-2017_Training_Data.zip": "a14a7e622c67a358797ae59abb8a0b0c",
    "ISIC-2017_Training_Part3_GroundTruth.csv": "0cb4add57c65c22ca1a1cb469ad1f0c5",
    "ISIC-2017_Validation_Data.zip": "8d6419d942112f709894c0d82f6c9038",
    "ISIC-2017_Validation_Part3_GroundTruth.csv": "8d4826a76adcd8fb928ca52a23ebae4c",
    "ISIC-2017_Test_v2_Data.zip": "5f6a0b5e1f2972bd1f5ea02680489f09",
    "ISIC-2017_Test_v2_Part3_GroundTruth.csv": "9e957b72a0c4f9e0d924889fd03b36ed",
}


def label_of(row: dict[str, str], where: str) -> int:
    """The class index of one ground-truth row."""
    melanoma = float(row["melanoma"]) == 1
    keratosis = float(row["seborrheic_keratosis"]) == 1
    if melanoma and keratosis:
        raise PrepareError(f"melanoma: {where}: image {row['image_id']} has both flags set.")
    return 0 if melanoma else 1 if keratosis else 2


def read_ground_truth(path: Path) -> list[tuple[str, int]]:
    """(image id, label) per row of a Part 3 ground-truth CSV."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = {"image_id", "melanoma", "seborrheic_keratosis"} - set(reader.fieldnames or ())
        if missing:
            raise PrepareError(f"melanoma: {path.name} lacks the columns {sorted(missing)}.")
        return [(row["image_id"].strip(), label_of(row, path.name)) for row in reader]


def _read_member(archive: Path, member: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def build(ctx: BuildContext) -> Built:
    items, counts = [], {}
    for group, (zip_name, csv_name) in SPLITS.items():
        archive = ctx.path(zip_name)
        with zipfile.ZipFile(archive) as zf:
            members = {Path(name).name: name for name in zf.namelist()
                       if name.lower().endswith(".jpg") and not name.endswith("/")}
        rows = read_ground_truth(ctx.path(csv_name))
        missing = [image_id for image_id, _ in rows if f"{image_id}.jpg" not in members]
        if missing:
            raise PrepareError(f"melanoma: {len(missing)} images of {csv_name} are not in "
                               f"{zip_name} (first: {missing[0]}.jpg).")
        for image_id, label in rows:
            member = members[f"{image_id}.jpg"]
            items.append(recipes.Item(functools.partial(_read_member, archive, member), label,
                                      group=group, name=member))
        counts[group] = len(rows)
    return Built(CLASS_NAMES, items, recipes.official_val_test(), channels=3,
                 metadata={"images_per_official_split": counts})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2017)
    flags = {0: "1.0,0.0", 1: "0.0,1.0", 2: "0.0,0.0"}
    per_class = {"train": 6, "val": 1, "test": 1}
    next_id = 0
    for group, (zip_name, csv_name) in SPLITS.items():
        root = zip_name[: -len(".zip")]
        rows = ["image_id,melanoma,seborrheic_keratosis"]
        members: dict[str, bytes | str] = {f"{root}/": b""}
        for label in range(len(CLASS_NAMES)):
            for _ in range(per_class[group]):
                image_id = f"ISIC_{next_id:07d}"
                next_id += 1
                rows.append(f"{image_id},{flags[label]}")
                members[f"{root}/{image_id}.jpg"] = fixtures.image_bytes(rng, "JPEG", (18, 24))
                if label == 0:  # superpixel maps sit next to some images; not used
                    members[f"{root}/{image_id}_superpixels.png"] = fixtures.image_bytes(
                        rng, "PNG", (18, 24))
        members[f"{root}/{root}_metadata.csv"] = "image_id,age_approximate,sex\n"
        fixtures.write_zip(folder / zip_name, members)
        (folder / csv_name).write_text("\n".join(rows) + "\n")


HANDLER = Handler(
    key="melanoma",
    name="ISBI-ISIC 2017 melanoma classification challenge",
    year=2017,
    sources=tuple(Url(_BASE + name, md5=md5) for name, md5 in _MD5.items()),
    build=build,
    write_fixture=write_fixture,
    homepage="https://challenge.isic-archive.com/data/",
    num_classes=3,
)
