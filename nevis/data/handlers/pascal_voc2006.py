"""PASCAL VOC 2006 (Everingham et al., "The PASCAL Visual Object Classes Challenge 2006", 2006).

Raw files (host.robots.ox.ac.uk, md5 published by the reference): `voc2006_trainval.tar` and
`voc2006_test.tar`, each holding `VOCdevkit/VOC2006/PNGImages/<id>.png`,
`VOCdevkit/VOC2006/Annotations/<id>.txt` (PASCAL annotation text, not read) and
`VOCdevkit/VOC2006/ImageSets/`: per-class image sets `<class>_{train,val,trainval}.txt` (in the
trainval archive) or `<class>_test.txt` (in the test archive), one line `<id> <flag>` per image
with flag 1 (the class is present), -1 (absent) or 0 (only "difficult" objects), plus the
class-free lists `train.txt`, `val.txt`, `trainval.txt`, `test.txt`.

Classes: computed at extraction, as the reference does, from the per-class image-set files of
the trainval archive (`<class>_trainval.txt`); VOC2006 documents 10 (bicycle, bus, car, cat, cow,
dog, horse, motorbike, person, sheep). They are sorted by name; the reference takes the archive's
member order, which we could not check against the real archive (VOC tools write it sorted).

Label rule (single-label, image level, as the reference): an image is kept when at least one
class lists it with flag 1; it takes the LAST such class in class order (the reference overwrites
an image's label class file by class file). Images with only flags -1/0 are dropped. The
reference does no object-level recast. Metadata counts the images with more than one present
class and the dropped ones. Recipe: trainval → 70/15/15 train/dev/dev_test; test → test
(`official_test()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

TRAIN_ARCHIVE = "voc2006_trainval.tar"
TEST_ARCHIVE = "voc2006_test.tar"
IMAGE_SETS = "VOCdevkit/VOC2006/ImageSets"
PNG_IMAGES = "VOCdevkit/VOC2006/PNGImages"
DOCUMENTED_CLASSES = (
    "bicycle", "bus", "car", "cat", "cow", "dog", "horse", "motorbike", "person", "sheep",
)


def _class_files(root: Path, image_set: str) -> dict[str, Path]:
    """class name -> its `<class>_<image_set>.txt` (class-free lists such as `trainval.txt` are
    not class files)."""
    suffix = f"_{image_set}.txt"
    folder = root / IMAGE_SETS
    found = {
        p.name[: -len(suffix)]: p
        for p in (folder.iterdir() if folder.is_dir() else ())
        if p.is_file() and p.name.endswith(suffix) and len(p.name) > len(suffix)
    }
    if not found:
        raise ValueError(f"pascal_voc2006: no {IMAGE_SETS}/<class>{suffix} files in the archive.")
    return dict(sorted(found.items()))


def read_image_sets(root: Path, image_set: str, class_names: list[str]) -> tuple[dict, dict]:
    """image id -> label (last present class), and counts of multi-class and dropped images."""
    files = _class_files(root, image_set)
    if image_set != "trainval" and sorted(files) != sorted(class_names):
        raise ValueError(
            f"pascal_voc2006: the {image_set} image sets name classes {sorted(files)}, the "
            f"trainval ones {sorted(class_names)}."
        )
    present: dict[str, list[int]] = {}
    seen: set[str] = set()
    for label, class_name in enumerate(class_names):
        for line in files[class_name].read_text().splitlines():
            fields = line.split()
            if len(fields) != 2:
                continue
            image_id, flag = fields
            seen.add(image_id)
            if flag == "1":
                present.setdefault(image_id, []).append(label)
    labels = {image_id: labels[-1] for image_id, labels in present.items()}
    counts = {
        "multi_class": sum(len(v) > 1 for v in present.values()),
        "dropped_no_present_class": len(seen - set(present)),
    }
    return labels, counts


def build(ctx: BuildContext) -> Built:
    train_root = ctx.extract(TRAIN_ARCHIVE)
    class_names = list(_class_files(train_root, "trainval"))
    items: list[recipes.Item] = []
    metadata: dict[str, dict[str, int]] = {}
    for archive, image_set, group in ((TRAIN_ARCHIVE, "trainval", "train"),
                                      (TEST_ARCHIVE, "test", "test")):
        root = ctx.extract(archive)
        labels, counts = read_image_sets(root, image_set, class_names)
        found = 0
        for path in sorted(root.rglob("*.png")):
            if path.stem in labels:
                items.append(recipes.Item(path, labels[path.stem], group=group,
                                          name=path.relative_to(root).as_posix()))
                found += 1
        missing = len(labels) - found
        if missing > 0:
            raise ValueError(f"pascal_voc2006: {missing} images listed in the {image_set} image "
                             f"sets have no PNG file in {archive}.")
        metadata[group] = {"images": found, **counts}
    return Built(class_names, items, recipes.official_test(), channels=3, metadata=metadata)


# ------------------------------------------------------------------------------------- fixture


def _annotation(image_id: str, size: tuple[int, int], classes: list[str]) -> str:
    h, w = size
    names = " ".join(f'"PAS{c}"' for c in classes)
    lines = [
        "# PASCAL Annotation Version 1.00",
        "",
        f'Image filename : "VOC2006/PNGImages/{image_id}.png"',
        f"Image size (X x Y x C) : {w} x {h} x 3",
        'Database : "The VOC2006 Database"',
        f"Objects with ground truth : {len(classes)} {{ {names} }}",
        "",
        "# Top left pixel co-ordinates : (1, 1)",
    ]
    for i, c in enumerate(classes, 1):
        lines += [
            "",
            f'# Details for object {i} ("PAS{c}")',
            f'Original label for object {i} "PAS{c}" : "PAS{c}"',
            f'Bounding box for object {i} "PAS{c}" (Xmin, Ymin) - (Xmax, Ymax) : '
            f"(1, 1) - ({w}, {h})",
            f'Pose for object {i} "PAS{c}" : Unspecified',
            f'Truncated for object {i} "PAS{c}" : 0',
            f'Difficult for object {i} "PAS{c}" : 0',
        ]
    return "\n".join(lines) + "\n"


def fixture_images(group: str) -> dict[str, dict[str, int]]:
    """The fixture's images: id -> flag per class (1 present, 0 difficult; absent = -1)."""
    per_class = 5 if group == "train" else 1
    images: dict[str, dict[str, int]] = {}
    start = 0 if group == "train" else 5000
    for c, class_name in enumerate(DOCUMENTED_CLASSES):
        for i in range(per_class):
            images[f"{start + 1 + c * per_class + i:06d}"] = {class_name: 1}
    if group == "train":
        # Two present classes: the label is the later one (person).
        images["000900"] = {"bicycle": 1, "person": 1}
        # Only a difficult object: dropped.
        images["000901"] = {"cat": 0}
    return images


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2006)
    for archive, image_sets, group in ((TRAIN_ARCHIVE, ("train", "val", "trainval"), "train"),
                                       (TEST_ARCHIVE, ("test",), "test")):
        images = fixture_images(group)
        ids = sorted(images)
        members: dict[str, bytes | str] = {}
        for image_id in ids:
            size = (12, 16)
            mode = "L" if image_id.endswith("3") else "RGB"
            members[f"{PNG_IMAGES}/{image_id}.png"] = fixtures.image_bytes(rng, "PNG", size, mode)
            members[f"VOCdevkit/VOC2006/Annotations/{image_id}.txt"] = _annotation(
                image_id, size, [c for c, f in images[image_id].items() if f == 1]
            )
        for image_set in image_sets:
            # train/val halves of trainval by position; trainval and test hold every image.
            chosen = {"train": ids[::2], "val": ids[1::2]}.get(image_set, ids)
            members[f"{IMAGE_SETS}/{image_set}.txt"] = "".join(f"{i}\n" for i in chosen)
            for class_name in DOCUMENTED_CLASSES:
                members[f"{IMAGE_SETS}/{class_name}_{image_set}.txt"] = "".join(
                    f"{i} {images[i].get(class_name, -1):2d}\n" for i in chosen
                )
        fixtures.write_tar(folder / archive, members)


HANDLER = Handler(
    key="pascal_voc2006",
    name="Pascal 2006",
    year=2006,
    sources=(
        Url("http://host.robots.ox.ac.uk/pascal/VOC/download/voc2006_trainval.tar",
            md5="af06612e5ad9863bde6fa7aae55f8866"),
        Url("http://host.robots.ox.ac.uk/pascal/VOC/download/voc2006_test.tar",
            md5="6bd028d82d057621c4fc69e9c56517ef"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2006/index.html",
    num_classes=None,
)
