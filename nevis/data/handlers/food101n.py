"""Food-101N (Lee, He, Zhang & Yang, "CleanNet: Transfer Learning for Scalable Image Classifier
Training with Label Noise", CVPR 2018): about 310,000 web images of the 101 Food-101 classes
with noisy labels; a subset carries a human verification label.

Raw file: `Food-101N_release.zip` (Google Drive, md5 published by the reference), read in place,
with `Food-101N_release/images/<class>/<hash>.jpg`, `meta/classes.txt`, `meta/imagelist.tsv`
and the verification lists `meta/verified_train.tsv` / `meta/verified_val.tsv` (a header line,
then `<class>/<hash>.jpg\\t<0|1>`: whether the folder label was verified correct).

As the reference: only the images of the two verification lists are used, each labelled by its
folder (the verification flag is not read, so verified-noisy images keep their folder label).
Classes: Food-101's, in the reference's order (`food101.CLASS_NAMES`). Recipe
(`official_test()`): verified_train.tsv → 70/15/15 train/dev/dev_test; verified_val.tsv → test.
Listed images missing from the archive are skipped, as by the reference (the metadata counts
them).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.handlers.food101 import CLASS_NAMES
from nevis.data.sources import GoogleDrive, PrepareError

ARCHIVE = "Food-101N_release.zip"
ROOT = "Food-101N_release"
LISTS = {"train": f"{ROOT}/meta/verified_train.tsv", "test": f"{ROOT}/meta/verified_val.tsv"}
_IMAGE = re.compile(rf"^{ROOT}/images/([^/]+)/([^/]+)$")


def read_verified(text: str) -> set[str]:
    """The `<class>/<file>` entries of a verification list (header line skipped)."""
    lines = text.splitlines()[1:]
    return {line.split("\t")[0].strip() for line in lines if line.strip()}


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    zf = zm.open_zip(archive)
    lists = {group: read_verified(zf.read(name).decode("utf-8")) for group, name in LISTS.items()}
    both = lists["train"] & lists["test"]
    if both:
        raise PrepareError(f"food101n: {len(both)} images are in both verification lists.")
    label_of = {name: i for i, name in enumerate(CLASS_NAMES)}
    items = []
    for name in zm.files(archive):
        match = _IMAGE.match(name)
        if not match:
            continue
        key = f"{match.group(1)}/{match.group(2)}"
        group = "train" if key in lists["train"] else "test" if key in lists["test"] else None
        if group is None:
            continue
        if match.group(1) not in label_of:
            raise PrepareError(f"food101n: unknown class folder {match.group(1)!r}.")
        items.append(recipes.Item(zm.reader(archive, name), label_of[match.group(1)],
                                  group=group, name=key))
    if not items:
        raise PrepareError(f"food101n: no image of the verification lists is in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"verified_images": {g: len(v) for g, v in lists.items()},
                           "listed_but_missing": sum(map(len, lists.values())) - len(items)})


def write_fixture(folder: Path) -> None:
    """3 classes; per class 7 verified-train and 2 verified-val images (some flagged noisy)
    plus 2 unverified images that are left out."""
    rng = np.random.default_rng(2018)
    members: dict[str, bytes | str] = {}
    rows: dict[str, list[str]] = {"train": [], "test": []}
    imagelist = ["class_name/key"]
    for c, class_name in enumerate(("ramen", "pho", "apple_pie")):
        for i in range(11):
            key = f"{class_name}/{int(rng.integers(0, 2**63)):016x}{c}{i:02d}.jpg"
            members[f"{ROOT}/images/{key}"] = fixtures.image_bytes(rng, "JPEG", (20, 16))
            imagelist.append(key)
            if i < 9:
                rows["train" if i < 7 else "test"].append(f"{key}\t{int(i % 4 != 0)}")
    members[f"{ROOT}/meta/classes.txt"] = "class_name\n" + "".join(
        f"{c}\n" for c in sorted(CLASS_NAMES))
    members[f"{ROOT}/meta/imagelist.tsv"] = "\n".join(imagelist) + "\n"
    header = "class_name/key\tverification_label\n"
    for group, name in LISTS.items():
        members[name] = header + "".join(f"{row}\n" for row in rows[group])
    members[f"{ROOT}/README.md"] = "Food-101N fixture\n"
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="food101n",
    name="Food 101 N",
    year=2018,
    sources=(GoogleDrive("1s9NyXpi9bO-UZUvk65WVvEUExNkZ1v9V", ARCHIVE,
                         md5="596b41b48de43342ef1efbb2fd508e06"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://kuanghuei.github.io/Food-101N/",
    num_classes=101,
)
