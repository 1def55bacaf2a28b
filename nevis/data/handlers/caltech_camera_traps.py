"""Caltech Camera Traps, ECCV 2018 benchmark subset "CCT-20" (Beery, Van Horn & Perona,
"Recognition in Terra Incognita", ECCV 2018): camera-trap images from 20 locations in the
American Southwest, 16 classes (15 animals and vehicles plus "empty").

Raw files (LILA BC, md5 published by the reference):
- `eccv_18_all_images_sm.tar.gz` (6.5 GB): the images downsized to at most 1024 px,
  `eccv_18_all_images_sm/<image id>.jpg`;
- `eccv_18_annotations.tar.gz`: COCO-Camera-Traps JSON files in `eccv_18_annotation_files/`,
  one per official split: `train_annotations.json`, `cis_{val,test}_annotations.json` (seen
  locations), `trans_{val,test}_annotations.json` (new locations); each has `images`,
  `annotations` (`image_id`, `category_id`) and `categories` (`id`, `name`).
The reference fetched them from `lilablobssc.blob.core.windows.net`, an account LILA has since
retired; the same files are served from LILA's Google Cloud bucket, used here.

Label rule (as the reference): an image's label is the category of its annotation (the last one
when an image has several), by category name in CLASS_NAMES order (the reference's list). The
image is matched to annotations by its file stem (the image id). Recipe: `train` → 80/20
train/dev; `trans_val` → dev_test; `trans_test` → test (`official_val_test()`); the cis_* splits
are not used, as in the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

IMAGES_ARCHIVE = "eccv_18_all_images_sm.tar.gz"
ANNOTATIONS_ARCHIVE = "eccv_18_annotations.tar.gz"
ANNOTATIONS_FOLDER = "eccv_18_annotation_files"
# Official annotation file → the group the recipe reads.
SPLITS = {
    "train_annotations.json": "train",
    "trans_val_annotations.json": "val",
    "trans_test_annotations.json": "test",
}
CLASS_NAMES = (
    "bobcat", "opossum", "empty", "coyote", "raccoon", "bird", "dog", "cat", "squirrel",
    "rabbit", "skunk", "rodent", "badger", "deer", "car", "fox",
)
_BASE_URL = "https://storage.googleapis.com/public-datasets-lila/caltechcameratraps/"


def read_annotations(path: Path) -> dict[str, int]:
    """image id → label for one COCO-Camera-Traps annotation file."""
    data = json.loads(path.read_text())
    categories = {c["id"]: c["name"] for c in data["categories"]}
    labels = {}
    for annotation in data["annotations"]:
        name = categories[annotation["category_id"]]
        if name not in CLASS_NAMES:
            raise ValueError(f"{path.name}: category {name!r} is not one of the 16 classes "
                             f"{list(CLASS_NAMES)}.")
        labels[str(annotation["image_id"])] = CLASS_NAMES.index(name)
    return labels


def build(ctx: BuildContext) -> Built:
    annotations = ctx.extract(ANNOTATIONS_ARCHIVE) / ANNOTATIONS_FOLDER
    labels = {group: read_annotations(annotations / filename)
              for filename, group in SPLITS.items()}
    images: dict[str, Path] = {}
    for path in sorted(ctx.extract(IMAGES_ARCHIVE).rglob("*")):
        if path.is_file() and not path.name.startswith("._"):
            images.setdefault(path.stem, path)
    items, metadata = [], {}
    for group, image_labels in labels.items():
        found = [image_id for image_id in sorted(image_labels) if image_id in images]
        items.extend(recipes.Item(images[i], image_labels[i], group=group, name=images[i].name)
                     for i in found)
        metadata[group] = {"annotated": len(image_labels), "images": len(found)}
        if not found:
            raise ValueError(f"{IMAGES_ARCHIVE}: none of the {len(image_labels)} images of the "
                             f"{group} annotations is in the archive — has the layout changed?")
    return Built(CLASS_NAMES, items, recipes.official_val_test(), channels=3, metadata=metadata)


def _coco(image_ids: list[str], labels: list[int], category_ids: dict[str, int]) -> str:
    return json.dumps({
        "info": {"description": "fixture", "version": "2018"},
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 20, "height": 16,
                    "location": 0} for i in image_ids],
        "annotations": [{"id": f"a{i}", "image_id": i,
                         "category_id": category_ids[CLASS_NAMES[label]]}
                        for i, label in zip(image_ids, labels, strict=True)],
        "categories": [{"id": v, "name": k} for k, v in category_ids.items()],
    })


def write_fixture(folder: Path) -> None:
    """Every class: 5 train, 1 trans_val, 1 trans_test, 1 cis_val image (not read)."""
    rng = np.random.default_rng(2018)
    category_ids = {name: 100 - 3 * c for c, name in enumerate(CLASS_NAMES)}
    members: dict[str, str] = {}
    images: dict[str, bytes] = {}
    for filename, per_class in (("train_annotations.json", 5), ("trans_val_annotations.json", 1),
                                ("trans_test_annotations.json", 1),
                                ("cis_val_annotations.json", 1),
                                ("cis_test_annotations.json", 0)):
        labels = [c for c in range(len(CLASS_NAMES)) for _ in range(per_class)]
        ids = [f"{filename[:5]}{k:03d}-59a8-11e8-a7f3-fixture" for k in range(len(labels))]
        members[f"{ANNOTATIONS_FOLDER}/{filename}"] = _coco(ids, labels, category_ids)
        for image_id in ids:
            images[f"eccv_18_all_images_sm/{image_id}.jpg"] = fixtures.image_bytes(
                rng, "JPEG", (16, 20))
    fixtures.write_tar(folder / ANNOTATIONS_ARCHIVE, members)
    fixtures.write_tar(folder / IMAGES_ARCHIVE, images)


HANDLER = Handler(
    key="caltech_camera_traps",
    name="Caltech Camera Traps",
    year=2018,
    sources=(
        Url(_BASE_URL + IMAGES_ARCHIVE, md5="8143c17aa2a12872b66f284ff211531f"),
        Url(_BASE_URL + ANNOTATIONS_ARCHIVE, md5="66a1f481b44aa1edadf75c9cfbd27aba"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://lila.science/datasets/caltech-camera-traps",
    num_classes=16,
)
