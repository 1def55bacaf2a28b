"""NIH ChestX-ray14 (Wang, Peng, Lu, Lu, Bagheri & Summers, "ChestX-ray8: Hospital-scale Chest
X-ray Database and Benchmarks on Weakly-Supervised Classification and Localization of Common
Thorax Diseases", CVPR 2017): 112,120 frontal chest X-rays of 30,805 patients, 14 findings.

Raw file: the Kaggle dataset `nih-chest-xrays/data` (`data.zip`, 42 GB, md5 published by the
reference), read in place: at its root `Data_Entry_2017.csv` (header, then
`<image>,<findings joined by |>,<follow-up>,<patient id>,…`), `train_val_list.txt` and
`test_list.txt` (one image file name a line: the official patient-wise split),
`BBox_List_2017.csv` and PDFs (not read); images at `images_<NNN>/images/<image>.png` (1024×1024,
grey; a few RGBA, converted).

Task (multi-label, as the reference): 15 labels, the 14 findings plus "No Finding", in the
reference's order (CLASS_NAMES); an image's labels are its findings. Images are matched to
labels and lists by file name. Recipe (`official_test()`): train_val_list.txt → 70/15/15
train/dev/dev_test; test_list.txt → test. Images in neither list are left out.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError
from nevis.tasks import TaskKind

ARCHIVE = "data.zip"
LABELS_CSV = "Data_Entry_2017.csv"
LISTS = {"train": "train_val_list.txt", "test": "test_list.txt"}
CLASS_NAMES = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema",
    "Fibrosis", "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass",
    "Hernia", "No Finding",
)
_IMAGE = re.compile(r"(?:^|/)images_\d+/images/([^/]+\.png)$")


def read_labels(text: str) -> dict[str, list[int]]:
    """image file name -> label indices, from Data_Entry_2017.csv."""
    label_of = {name: i for i, name in enumerate(CLASS_NAMES)}
    rows = csv.reader(io.StringIO(text))
    next(rows, None)  # header
    out = {}
    for row in rows:
        if len(row) < 2:
            continue
        findings = [f.strip() for f in row[1].split("|")]
        unknown = [f for f in findings if f not in label_of]
        if unknown:
            raise PrepareError(f"nih_chest_xray: {row[0]} has unknown findings {unknown}.")
        out[row[0].strip()] = sorted({label_of[f] for f in findings})
    return out


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    zf = zm.open_zip(archive)
    labels = read_labels(zf.read(LABELS_CSV).decode("utf-8-sig"))
    group_of = {}
    for group, list_name in LISTS.items():
        for line in zf.read(list_name).decode("utf-8").splitlines():
            if line.strip():
                group_of[line.strip()] = group
    items, unlabelled = [], []
    for name in zm.files(archive):
        match = _IMAGE.search(name)
        if not match or match.group(1) not in group_of:
            continue
        image = match.group(1)
        if image not in labels:
            unlabelled.append(image)
            continue
        items.append(recipes.Item(zm.reader(archive, name), labels[image],
                                  group=group_of[image], name=name))
    if unlabelled:
        raise PrepareError(f"nih_chest_xray: {len(unlabelled)} listed images have no row in "
                           f"{LABELS_CSV} (first: {unlabelled[0]}).")
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=1,
                 metadata={"listed": len(group_of), "found": len(items)})


def write_fixture(folder: Path) -> None:
    """11 train/val and 3 test images over two image folders, one RGBA, one unlisted."""
    rng = np.random.default_rng(2017)
    rows = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
            "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"]
    members: dict[str, bytes | str] = {}
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for i in range(15):
        patient = 1 + i // 2
        image = f"{patient:08d}_{i % 2:03d}.png"
        findings = "|".join(sorted(rng.choice(CLASS_NAMES[:14], int(rng.integers(1, 3)),
                                              replace=False))) if i % 3 else "No Finding"
        rows.append(f"{image},{findings},{i % 2},{patient},{40 + i},M,PA,2500,2048,0.143,0.143,")
        mode = "RGBA" if i == 4 else "L"
        members[f"images_{1 + i // 8:03d}/images/{image}"] = fixtures.image_bytes(
            rng, "PNG", (16, 16), mode)
        if i < 14:
            lists["train" if patient <= 5 or i == 13 else "test"].append(image)
    members[LABELS_CSV] = "\n".join(rows) + "\n"
    for group, list_name in LISTS.items():
        members[list_name] = "\n".join(lists[group]) + "\n"
    members["BBox_List_2017.csv"] = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
    members["README_CHESTXRAY.pdf"] = b"%PDF-1.4\n%%EOF\n"
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="nih_chest_xray",
    name="NIH Chest X-ray",
    year=2017,
    sources=(Kaggle("nih-chest-xrays/data", md5="ddd3acbfa23adf60ac08312b3c4040e2"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/nih-chest-xrays/data",
    num_classes=15,
    kind=TaskKind.MULTI_LABEL,
)
