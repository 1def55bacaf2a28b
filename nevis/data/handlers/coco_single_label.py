"""MS COCO as single-label object classification (Lin et al., "Microsoft COCO: Common Objects in
Context", ECCV 2014), the reference's recast: every annotated box of at least 16×16 pixels,
cropped from its image, is one example labelled with the box's category.

Raw files (cocodataset.org, md5 published by the reference):
- `train2017.zip` (`train2017/<12-digit id>.jpg`) and `val2017.zip` (`val2017/…`);
- `annotations_trainval2017.zip`: `annotations/instances_{train,val}2017.json` (COCO format:
  `images` with `id` and `file_name`, `annotations` with `image_id`, `category_id` and `bbox`
  = [x, y, width, height] in pixels, `categories`); the captions and keypoint files in it are
  not read.
The reference also downloads `test2017.zip` and `image_info_test2017.zip` but never reads them;
they are not sources here (6 GB saved).

Label rule (the reference's): label = category_id - 1, over the 90 ids of the COCO paper (80
are used; CLASS_NAMES gives the paper's names for the 10 unused ids and the annotation files'
names for the others, checked against the files' `categories` at build). A box is kept when its
width and height are both ≥ 16; it is cut as the reference does, with Pillow's crop of (x, y,
min(W, x + w), min(H, y + h)) (coordinates rounded by Pillow), every box including `iscrowd`
ones. Crops are made lazily from images read in place from the zips (18 GB not extracted); items are
grouped by image so that a thread decodes each image once for its consecutive boxes.
Recipe: `official_test()` — train2017 boxes → 70/15/15 train/dev/dev_test, val2017 boxes → test.
"""

from __future__ import annotations

import functools
import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.handlers.wiki_paintings_style import ZipReader
from nevis.data.sources import PrepareError, Url

ANNOTATIONS_ARCHIVE = "annotations_trainval2017.zip"
SPLITS = {"train": ("train2017.zip", "train2017"), "test": ("val2017.zip", "val2017")}
MIN_SIDE = 16
# The 90 category ids of the COCO paper (index = id - 1); "(unused)" ids have no annotation.
CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign (unused)", "stop sign", "parking meter",
    "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "hat (unused)", "backpack", "umbrella", "shoe (unused)", "eye glasses (unused)",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "plate (unused)", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "mirror (unused)", "dining table", "window (unused)",
    "desk (unused)", "toilet", "door (unused)", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender (unused)",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
UNUSED_IDS = tuple(i + 1 for i, name in enumerate(CLASS_NAMES) if name.endswith("(unused)"))


class _LastImage(threading.local):
    """The last decoded image of this thread (an image's boxes are consecutive items)."""

    key: tuple[Path, str] | None = None
    image: Image.Image | None = None


_LAST = _LastImage()


def _crop(reader: ZipReader, member: str, box: tuple[float, float, float, float]) -> np.ndarray:
    key = (reader.path, member)
    if _LAST.key != key:
        image = Image.open(io.BytesIO(reader.read(member)))
        image.load()
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        _LAST.key, _LAST.image = key, image
    image = _LAST.image
    x, y, w, h = box
    crop = image.crop((x, y, min(image.width, x + w), min(image.height, y + h)))
    return np.asarray(crop, dtype=np.uint8)


def read_annotations(zf: zipfile.ZipFile, part: str) -> dict:
    member = f"annotations/instances_{part}.json"
    try:
        with zf.open(member) as f:
            return json.load(f)
    except KeyError as e:
        raise PrepareError(f"coco_single_label: {ANNOTATIONS_ARCHIVE} holds no {member}.") from e


def check_categories(categories: list[dict]) -> None:
    """The annotation file's categories must be the expected names at the expected ids."""
    for category in categories:
        cid, name = int(category["id"]), category["name"]
        if not 1 <= cid <= len(CLASS_NAMES) or CLASS_NAMES[cid - 1] != name:
            raise PrepareError(f"coco_single_label: category {cid} is {name!r} in the "
                               "annotations, not a known COCO category at that id.")


def boxes(info: dict) -> tuple[list[tuple[int, int, tuple]], int]:
    """(image id, label, bbox) of the boxes of at least MIN_SIDE×MIN_SIDE, and the small ones."""
    kept, small = [], 0
    for annotation in info["annotations"]:
        x, y, w, h = (float(v) for v in annotation["bbox"])
        if w < MIN_SIDE or h < MIN_SIDE:
            small += 1
            continue
        kept.append((annotation["image_id"], int(annotation["category_id"]) - 1, (x, y, w, h)))
    return kept, small


def build(ctx: BuildContext) -> Built:
    items: list[recipes.Item] = []
    metadata: dict[str, dict[str, int]] = {}
    with zipfile.ZipFile(ctx.path(ANNOTATIONS_ARCHIVE)) as zf:
        for group, (archive, folder) in SPLITS.items():
            info = read_annotations(zf, folder)
            check_categories(info.get("categories", []))
            files = {image["id"]: image["file_name"] for image in info["images"]}
            kept, small = boxes(info)
            del info
            reader = ZipReader(ctx.path(archive))
            with zipfile.ZipFile(ctx.path(archive)) as images:
                members = set(images.namelist())
            absent = 0
            # Grouped by image (annotation order within each), so that consecutive crops reuse
            # the image decoded last.
            order = sorted(range(len(kept)), key=lambda n: (kept[n][0], n))
            for n in order:
                image_id, label, box = kept[n]
                member = f"{folder}/{files[image_id]}"
                if member not in members:
                    absent += 1
                    continue
                items.append(recipes.Item(functools.partial(_crop, reader, member, box), label,
                                          group=group, name=f"{member}#box{n}"))
            if absent:
                raise PrepareError(f"coco_single_label: {absent} boxes of {folder} are on "
                                   f"images missing from {archive}.")
            metadata[group] = {"boxes_kept": len(kept), "boxes_smaller_than_16": small}
    # ~500k box crops: two crops are never byte-identical in practice, and the reference does
    # not deduplicate COCO, so the duplicate pass (a decode of every crop) is skipped.
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3, metadata=metadata,
                 deduplicate=False)


# ------------------------------------------------------------------------------------- fixture


def _fixture_split(rng: np.random.Generator, folder: str, first_id: int,
                   per_category: int) -> tuple[dict[str, bytes], dict]:
    categories = (1, 3, 18, 44, 62, 90)  # a subset of the used ids
    images, annotations, members = [], [], {}
    image_id, annotation_id = first_id, 1000 * first_id
    for cid in categories:
        for i in range(per_category):
            height, width = (36, 40) if i % 2 else (40, 34)
            mode = "L" if (cid, i) == (18, 1) else "RGB"  # COCO has some grey images
            file_name = f"{image_id:012d}.jpg"
            members[f"{folder}/{file_name}"] = fixtures.image_bytes(
                rng, "JPEG", (height, width), mode)
            images.append({"id": image_id, "file_name": file_name, "height": height,
                           "width": width, "license": 1, "coco_url": "", "flickr_url": "",
                           "date_captured": "2013-11-14 16:28:13"})
            x, y = float(rng.integers(0, 8)) + 0.37, float(rng.integers(0, 8)) + 0.5
            bboxes = [[x, y, 18.6, 17.25],  # kept
                      [1.0, 2.0, 15.9, 30.0]]  # too narrow: skipped
            if i == 0:
                bboxes.append([width - 20.0, height - 18.0, 30.0, 25.0])  # clamped to the image
            for bbox in bboxes:
                annotation_id += 1
                annotations.append({"id": annotation_id, "image_id": image_id,
                                    "category_id": cid, "bbox": bbox, "area": bbox[2] * bbox[3],
                                    "iscrowd": 0, "segmentation": [[x, y, x + 5, y, x, y + 5]]})
            image_id += 1
    info = {
        "info": {"description": "COCO 2017 fixture", "year": 2017},
        "licenses": [{"id": 1, "name": "fixture", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": "thing", "id": i + 1, "name": name}
                       for i, name in enumerate(CLASS_NAMES) if i + 1 not in UNUSED_IDS],
    }
    return members, info


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2014)
    annotations: dict[str, bytes | str] = {}
    for (group, (archive, split_folder)), first_id in zip(SPLITS.items(), (9, 139), strict=True):
        members, info = _fixture_split(rng, split_folder, first_id, 6 if group == "train" else 2)
        fixtures.write_zip(folder / archive, members)
        annotations[f"annotations/instances_{split_folder}.json"] = json.dumps(info)
        annotations[f"annotations/captions_{split_folder}.json"] = json.dumps(
            {"images": info["images"], "annotations": []})
    fixtures.write_zip(folder / ANNOTATIONS_ARCHIVE, annotations)


HANDLER = Handler(
    key="coco_single_label",
    name="MS COCO",
    year=2014,
    sources=(
        Url("http://images.cocodataset.org/zips/train2017.zip",
            md5="cced6f7f71b7629ddf16f17bbcfab6b2"),
        Url("http://images.cocodataset.org/zips/val2017.zip",
            md5="442b8da7639aecaf257c1dceb8ba8c80"),
        Url("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
            md5="f4bbac642086de4f52a3fdda2de5fa2c"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://cocodataset.org/",
    num_classes=len(CLASS_NAMES),
)
