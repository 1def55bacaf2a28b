"""INTERACT (Antol, Zitnick & Parikh, "Zero-Shot Learning via Visual Abstraction", ECCV 2014):
60 fine-grained interactions between two people ("person A hugs person B", …), as real photos
and as clip-art illustrations of each category.

Raw files (Virginia Tech, md5 published by the reference), four zips:
- `interact_stand-alone_dataset_images.zip` and `interact_illustration_category_dataset_images.zip`:
  the images at `imgs/<file name>`;
- `interact_stand-alone_dataset_annotations.zip` holding
  `interact_final_dataset_labels_and_images.txt`, and
  `interact_illustration_category_dataset_annotations.zip` holding
  `interact_illustration_category_dataset_labels_and_images.txt`: one image a line,
  `<category number 1..60>;<file name>;<category name>`.

Label rule: category number - 1; class names from the stand-alone annotations (they must cover
0..59 and the illustration annotations must agree). Three stand-alone images that the reference
found truncated are left out by name.

Recipe (bespoke, `explicit`), after Sharmanska & Quadrianto (CVPR 2016), as the reference: the
real images of each category are permuted (one seed-1 generator, categories in order of first
appearance in the annotation file, images in file order) and cut at floor(n × .56), floor(n ×
.12), floor(n × .12) into train, dev, dev_test, the rest (about 20 %) → test; every
illustration image is added to train.

Deviation: the reference looks images up by path in one table for both image zips (an
illustration sharing a file name with a real image would take its label); here each zip's
images take their own annotation file's labels.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

NUM_CLASSES = 60
REAL_IMAGES = "interact_stand-alone_dataset_images.zip"
REAL_ANNOTATIONS = "interact_stand-alone_dataset_annotations.zip"
REAL_LABELS = "interact_final_dataset_labels_and_images.txt"
ILLUSTRATION_IMAGES = "interact_illustration_category_dataset_images.zip"
ILLUSTRATION_ANNOTATIONS = "interact_illustration_category_dataset_annotations.zip"
ILLUSTRATION_LABELS = "interact_illustration_category_dataset_labels_and_images.txt"
# Stand-alone images the reference found truncated; left out.
TRUNCATED = frozenset({
    "22TCSTMOFXRDFDVIK9PDTXJK5OZTQ6_20.jpg",
    "249YW2GTP9RAU1I25WX94SOKQN6OTI_16.jpg",
    "24PFCD45XCETAM5TCF9N9TGUNNTZXA_02.jpg",
})
TEST_FRACTION = 0.2
DEV_FRACTION = DEV_TEST_FRACTION = 0.15  # of the non-test part
_BASE_URL = "https://computing.ece.vt.edu/~santol/projects/zsl_via_visual_abstraction/interact/"


def read_labels(archive: Path, member: str) -> tuple[list[tuple[str, int]], dict[int, str]]:
    """([(file name, label)] in file order, {label: category name}) of one annotation zip."""
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
        if not names:
            raise ValueError(f"{archive.name}: no {member} in the archive.")
        text = zf.read(names[0]).decode("utf-8")
    entries, categories = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(";")
        if len(fields) != 3:
            raise ValueError(f"{member}, line {number}: expected 'number;file;category'.")
        label, file_name, category = int(fields[0]) - 1, fields[1], fields[2]
        if categories.setdefault(label, category) != category:
            raise ValueError(f"{member}: category {label + 1} is named both "
                             f"{categories[label]!r} and {category!r}.")
        if file_name not in TRUNCATED:
            entries.append((file_name, label))
    return entries, categories


def per_class_splits(entries: list[tuple[str, int]]) -> dict[str, str]:
    """file name → split for the real images (the reference's seeded per-class cut)."""
    by_class: dict[int, list[str]] = {}
    for file_name, label in entries:
        by_class.setdefault(label, []).append(file_name)
    ratios = np.array([(1 - TEST_FRACTION) * (1 - DEV_FRACTION - DEV_TEST_FRACTION),
                       (1 - TEST_FRACTION) * DEV_FRACTION,
                       (1 - TEST_FRACTION) * DEV_TEST_FRACTION])
    rng = np.random.default_rng(seed=1)
    splits = {}
    for files in by_class.values():  # first-appearance order, as the reference's dict
        ends = np.cumsum((len(files) * ratios).astype(np.int32))
        parts = np.split(rng.permutation(len(files)), ends)
        for split, indices in zip(("train", "dev", "dev_test", "test"), parts, strict=True):
            splits.update({files[i]: split for i in indices})
    return splits


def build(ctx: BuildContext) -> Built:
    real, categories = read_labels(ctx.path(REAL_ANNOTATIONS), REAL_LABELS)
    if sorted(categories) != list(range(NUM_CLASSES)):
        raise ValueError(f"{REAL_LABELS}: categories {sorted(c + 1 for c in categories)}, "
                         f"expected 1..{NUM_CLASSES}.")
    illustrations, illustration_categories = read_labels(ctx.path(ILLUSTRATION_ANNOTATIONS),
                                                         ILLUSTRATION_LABELS)
    for label, name in illustration_categories.items():
        if categories.get(label) != name:
            raise ValueError(f"{ILLUSTRATION_LABELS}: category {label + 1} is {name!r}, the "
                             f"stand-alone annotations call it {categories.get(label)!r}.")
    splits = per_class_splits(real)
    items, metadata = [], {}
    for archive, entries, split_of in ((REAL_IMAGES, real, splits.__getitem__),
                                       (ILLUSTRATION_IMAGES, illustrations, lambda _: "train")):
        root = ctx.extract(archive)
        found = 0
        for file_name, label in entries:
            path = root / "imgs" / file_name
            if path.is_file():
                items.append(recipes.Item(path, label, split=split_of(file_name),
                                          name=f"{archive}:imgs/{file_name}"))
                found += 1
        if not found:
            raise ValueError(f"{archive}: none of its {len(entries)} annotated images is at "
                             "imgs/<file name> — has the layout changed?")
        metadata[archive] = {"annotated": len(entries), "images": found}
    class_names = [categories[label] for label in range(NUM_CLASSES)]
    return Built(class_names, items, recipes.explicit(), channels=3, metadata=metadata)


# ------------------------------------------------------------------------------------- fixture


def _category(label: int) -> str:
    return f"person A interacts with person B, way {label + 1}"


def write_fixture(folder: Path) -> None:
    """All 60 categories: 3 real images each, 10 for categories 1–3 (so that every split gets
    some), one listed-but-truncated image, and an illustration for every fifth category."""
    rng = np.random.default_rng(2014)
    real = [(f"{c:02d}FIXTUREHIT{k:02d}XYZ_{k:02d}.jpg", c)
            for c in range(NUM_CLASSES) for k in range(10 if c < 3 else 3)]
    real.append((sorted(TRUNCATED)[0], 7))
    order = rng.permutation(len(real))
    lines = [f"{real[i][1] + 1};{real[i][0]};{_category(real[i][1])}\n" for i in order]
    fixtures.write_zip(folder / REAL_ANNOTATIONS, {REAL_LABELS: "".join(lines)})
    images = {f"imgs/{name}": fixtures.image_bytes(rng, "JPEG", (12, 12)) for name, _ in real}
    images[f"imgs/{sorted(TRUNCATED)[0]}"] = images[f"imgs/{sorted(TRUNCATED)[0]}"][:40]
    fixtures.write_zip(folder / REAL_IMAGES, images)
    drawn = [(f"illustration_{c + 1:02d}_01.png", c) for c in range(0, NUM_CLASSES, 5)]
    fixtures.write_zip(folder / ILLUSTRATION_ANNOTATIONS, {ILLUSTRATION_LABELS: "".join(
        f"{c + 1};{name};{_category(c)}\n" for name, c in drawn)})
    fixtures.write_zip(folder / ILLUSTRATION_IMAGES, {
        f"imgs/{name}": fixtures.image_bytes(rng, "PNG", (12, 12)) for name, _ in drawn})


HANDLER = Handler(
    key="interact",
    name="Interact",
    year=2014,
    sources=(
        Url(_BASE_URL + "interact_stand-alone_dataset/" + REAL_IMAGES,
            md5="93d7a853e0e596e7ef7fecc4808ffdf8"),
        Url(_BASE_URL + "interact_stand-alone_dataset/" + REAL_ANNOTATIONS,
            md5="aef1de2ad7c596a566cd78414a266f5f"),
        Url(_BASE_URL + "interact_illustration_category_dataset/" + ILLUSTRATION_IMAGES,
            md5="47c043e360a177c026fa7b7652fdf5b2"),
        Url(_BASE_URL + "interact_illustration_category_dataset/" + ILLUSTRATION_ANNOTATIONS,
            md5="56dec629f180077eb2a76b3f67c7b02f"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage=_BASE_URL + "index.html",
    num_classes=NUM_CLASSES,
)
