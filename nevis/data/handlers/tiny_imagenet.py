"""Tiny ImageNet (Le & Yang, "Tiny ImageNet Visual Recognition Challenge", CS231N 2015): 200
ImageNet classes at 64×64.

Raw file: `tiny-imagenet-200.zip` (cs231n.stanford.edu, md5 published by the reference) with
`tiny-imagenet-200/wnids.txt` (the 200 WordNet ids, one a line), `words.txt` (id → words, not
read), `train/<wnid>/images/<wnid>_<n>.JPEG` (500 per class) next to
`train/<wnid>/<wnid>_boxes.txt`, `val/images/val_<n>.JPEG` (10,000) with
`val/val_annotations.txt` (tab-separated: file name, wnid, box), and `test/images/test_<n>.JPEG`
(unlabelled, not used). Some JPEGs are grey; they are stored as RGB.

Classes: the wnids of `wnids.txt`, sorted (index = position), as the reference. Label rule:
train images by the wnid in their file name; val images by `val_annotations.txt`.
Recipe (`official_test()`): train → 70/15/15 train/dev/dev_test; the labelled val set → test
(the challenge's test labels were never published). Members are read in place from the zip.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "tiny-imagenet-200.zip"
ROOT = "tiny-imagenet-200"
_TRAIN = re.compile(rf"^{ROOT}/train/(n\d+)/images/\1_\d+\.JPEG$")
_VAL = re.compile(rf"^{ROOT}/val/images/([^/]+\.JPEG)$")


def read_wnids(text: str) -> list[str]:
    return sorted({line.strip() for line in text.splitlines() if line.strip()})


def read_val_annotations(text: str) -> dict[str, str]:
    """val image file name -> wnid."""
    out = {}
    for line in text.splitlines():
        fields = line.strip().split("\t")
        if len(fields) >= 2:
            out[fields[0]] = fields[1]
    return out


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    zf = zm.open_zip(archive)
    wnids = read_wnids(zf.read(f"{ROOT}/wnids.txt").decode("utf-8"))
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    val_labels = read_val_annotations(zf.read(f"{ROOT}/val/val_annotations.txt").decode("utf-8"))
    items, unlabelled = [], 0
    for name in zm.files(archive):
        if match := _TRAIN.match(name):
            wnid, group = match.group(1), "train"
        elif match := _VAL.match(name):
            wnid, group = val_labels.get(match.group(1)), "test"
            if wnid is None:
                unlabelled += 1
                continue
        else:
            continue
        if wnid not in label_of:
            raise PrepareError(f"tiny_imagenet: {name} is of class {wnid}, which is not in "
                               "wnids.txt.")
        items.append(recipes.Item(zm.reader(archive, name), label_of[wnid], group=group,
                                  name=name))
    if unlabelled:
        raise PrepareError(f"tiny_imagenet: {unlabelled} val images have no line in "
                           "val_annotations.txt.")
    return Built(wnids, items, recipes.official_test(), channels=3,
                 metadata={"test_is_official_val": True})


def write_fixture(folder: Path) -> None:
    """All 200 wnids in wnids.txt; images for 3 of them (7 train, 2 val each), one grey."""
    rng = np.random.default_rng(200)
    wnids = [f"n{1440764 + 7 * i:08d}" for i in range(200)]
    members: dict[str, bytes | str] = {
        f"{ROOT}/wnids.txt": "".join(f"{w}\n" for w in reversed(wnids)),
        f"{ROOT}/words.txt": "".join(f"{w}\tthing {i}\n" for i, w in enumerate(wnids)),
    }
    annotations = []
    for c, wnid in enumerate(wnids[:3]):
        boxes = []
        for i in range(7):
            mode = "L" if (c, i) == (1, 3) else "RGB"
            members[f"{ROOT}/train/{wnid}/images/{wnid}_{i}.JPEG"] = fixtures.image_bytes(
                rng, "JPEG", (16, 16), mode)
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t15\t15\n")
        members[f"{ROOT}/train/{wnid}/{wnid}_boxes.txt"] = "".join(boxes)
        for i in range(2):
            name = f"val_{2 * c + i}.JPEG"
            members[f"{ROOT}/val/images/{name}"] = fixtures.image_bytes(rng, "JPEG", (16, 16))
            annotations.append(f"{name}\t{wnid}\t1\t2\t14\t15\n")
    members[f"{ROOT}/val/val_annotations.txt"] = "".join(annotations)
    members[f"{ROOT}/test/images/test_0.JPEG"] = fixtures.image_bytes(rng, "JPEG", (16, 16))
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="tiny_imagenet",
    name="Tiny Imagenet",
    year=2015,
    sources=(Url("http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                 md5="90528d7ca1a48142e341f4ef8d21d0de"),),
    build=build,
    write_fixture=write_fixture,
    homepage="http://cs231n.stanford.edu/",
    num_classes=200,
)
