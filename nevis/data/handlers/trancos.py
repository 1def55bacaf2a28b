"""TRANCOS v3 (Guerrero-Gómez-Olmedo, Torre-Jiménez, López-Sastre, Maldonado-Bascón & Oñoro-Rubio,
"Extremely Overlapping Vehicle Counting", IbPRIA 2015): 1,244 traffic-camera images with every
vehicle annotated by a dot. NEVIS'22 turns counting into 10-way classification.

Raw file: `TRANCOS_v3.tar.gz` (the authors' SharePoint link, md5 published by the reference) with
`TRANCOS_v3/images/image-<c>-<NNNNNN>.jpg`, next to each image a `.txt` file with one vehicle
position ("x y") a line, plus dot images and masks (not read), and the official split lists
`TRANCOS_v3/image_sets/{training,validation,test}.txt` (one image file name a line).

Label rule (as the reference): an image's count is the number of lines of its `.txt` file. The
counts of every annotated image are cut into 10 buckets of contiguous values holding about the
same number of images (`count_buckets`, max count 200; larger counts go to the last bucket);
the label is the bucket. Class names give each bucket's count range ("lo-hi", the last "lo+").
Recipe: training → 80/20 train/dev; validation → dev_test; test → test (`official_val_test()`).

Deviation: the reference's bucket names are off by one ("a-b" where b is the first count of the
next bucket and the next name starts at b + 1); the buckets themselves are the reference's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

ARCHIVE = "TRANCOS_v3.tar.gz"
NUM_CLASSES = 10
MAX_COUNT = 200
IMAGE_SETS = {"training.txt": "train", "validation.txt": "val", "test.txt": "test"}


def count_buckets(counts: Sequence[int], max_size: int, num_buckets: int = NUM_CLASSES
                  ) -> tuple[list[int], list[str]]:
    """The reference's quantisation of counts into buckets of about equal size.

    The counts' histogram over 0..max_size-1 (larger counts in the last bin) is accumulated;
    threshold k (k = 1..num_buckets-1) is the last count whose cumulative total is below
    k × (images / num_buckets). Walking the counts upwards, the label moves to the next bucket
    (at most one bucket per count value) when the count passes the current bucket's threshold.

    Returns (label of each count 0..max_size-1, one "lo-hi" name per bucket, the last "lo+").
    """
    histogram = np.zeros(max_size)
    for count in counts:
        histogram[min(int(count), max_size - 1)] += 1
    cumulative = np.cumsum(histogram)
    per_bucket = histogram.sum() / num_buckets
    thresholds = []
    for k in range(1, num_buckets):
        below = np.flatnonzero(cumulative < per_bucket * k)
        if not below.size:
            raise ValueError(f"cannot cut {int(histogram.sum())} counts into {num_buckets} "
                             f"buckets: count 0 alone holds more than 1/{num_buckets} of them.")
        thresholds.append(int(below[-1]))
    thresholds.append(max_size)
    label, labels = 0, []
    for count in range(max_size):
        if count > thresholds[label]:
            label += 1
        labels.append(label)
    if label != num_buckets - 1:
        raise ValueError(f"the counts fill only {label + 1} of {num_buckets} buckets (too few "
                         "distinct counts).")
    names = []
    for bucket in range(num_buckets):
        members = [c for c, b in enumerate(labels) if b == bucket]
        last = bucket == num_buckets - 1
        names.append(f"{members[0]}+" if last else f"{members[0]}-{members[-1]}")
    return labels, names


def _line_count(data: bytes) -> int:
    """Lines as Python's readlines() counts them (a final line without newline counts)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE) / "TRANCOS_v3"
    counts = {path.with_suffix(".jpg").name: _line_count(path.read_bytes())
              for path in sorted((root / "images").glob("*.txt"))}
    if not counts:
        raise ValueError(f"{ARCHIVE}: no TRANCOS_v3/images/*.txt vehicle annotations.")
    count_to_label, class_names = count_buckets(list(counts.values()), MAX_COUNT)
    items, sizes = [], {}
    for list_name, group in IMAGE_SETS.items():
        names = (root / "image_sets" / list_name).read_text().split()
        for name in names:
            if name not in counts:
                raise ValueError(f"{ARCHIVE}: {list_name} lists {name}, which has no vehicle "
                                 "annotation file.")
            label = count_to_label[min(counts[name], MAX_COUNT - 1)]
            items.append(recipes.Item(root / "images" / name, label, group=group, name=name))
        sizes[group] = len(names)
    metadata = {"images_per_split": sizes, "max_count": max(counts.values()),
                "annotated_images": len(counts)}
    return Built(class_names, items, recipes.official_val_test(), channels=3, metadata=metadata)


def write_fixture(folder: Path) -> None:
    """60 images with 0–29 vehicles (two per count): 40 training, 10 validation, 10 test."""
    rng = np.random.default_rng(2015)
    members: dict[str, bytes | str] = {}
    names = []
    for k, count in enumerate(rng.permutation(np.repeat(np.arange(30), 2))):
        name = f"image-{1 + k % 3}-{k + 1:06d}"
        names.append(f"{name}.jpg")
        members[f"TRANCOS_v3/images/{name}.jpg"] = fixtures.image_bytes(rng, "JPEG", (12, 16))
        members[f"TRANCOS_v3/images/{name}dots.png"] = fixtures.image_bytes(rng, "PNG", (12, 16))
        members[f"TRANCOS_v3/images/{name}.txt"] = "".join(
            f"{int(x)}\t{int(y)}\n" for x, y in rng.integers(1, 16, (int(count), 2)))
    for list_name, chosen in (("training.txt", names[:40]), ("validation.txt", names[40:50]),
                              ("test.txt", names[50:]),
                              ("trainval.txt", names[:50])):
        members[f"TRANCOS_v3/image_sets/{list_name}"] = "".join(f"{n}\n" for n in chosen)
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="trancos",
    name="Trancos",
    year=2015,
    sources=(
        Url("https://universidaddealcala-my.sharepoint.com/:u:/g/personal/gram_uah_es/"
            "Eank6osXQgxEqa-1bb0nVsoBc3xO4XDwENc_g0nc6t58BA?&Download=1",
            name=ARCHIVE, md5="e9b4d5a62ab1fe5f542ec8326f2d4fda"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://gram.web.uah.es/data/datasets/trancos/index.html",
    num_classes=NUM_CLASSES,
)
