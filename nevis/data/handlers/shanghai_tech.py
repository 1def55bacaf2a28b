"""ShanghaiTech crowd counting (Zhang, Zhou, Chen, Gao & Ma, "Single-Image Crowd Counting via
Multi-Column Convolutional Neural Network", CVPR 2016): 1,198 crowd photos with head annotations,
in part A (482 web images) and part B (716 Shanghai street images), each with a train/test split.

Raw file: the Kaggle dataset `tthien/shanghaitech` (`shanghaitech.zip`, md5 published by the
reference), read in place: `ShanghaiTech/part_{A,B}/{train,test}_data/images/IMG_<n>.jpg` and
`.../ground-truth/GT_IMG_<n>.mat` (MATLAB: `image_info{1}.location` holds one (x, y) row per
head); a `shanghaitech_h5_empty/` copy is ignored, as the reference does.

Recast (the reference's): counting as 10-way classification. The head count of every image (train
and test, parts A and B together) goes into a histogram; bucket edges are the largest counts
whose cumulative frequency stays below k/10 of all images (k = 1..9), so the buckets hold roughly
equal numbers of images; class j holds the counts in (edge[j-1], edge[j]]. Class names give the
count range, e.g. "0-95" (the reference's names are off by one at the upper end; only names).

Recipe (bespoke, `explicit`, the reference's): parts A+B train images, in archive order, permuted
with `np.random.default_rng(1)`; the first int(0.70 n) → train, up to int(0.85 n) → dev, the rest
→ dev_test; parts A+B test images → test.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

ARCHIVE = "shanghaitech.zip"
NUM_BUCKETS = 10
MAX_COUNT = 5000  # the reference's histogram size (counts above fall into the last bin)
_GROUND_TRUTH = re.compile(r"^(.*/)?(part_[AB])/(train|test)_data/ground-truth/GT_([^/]+)\.mat$")
_IGNORED = "shanghaitech_h5_empty"


def head_count(mat_bytes: bytes) -> int:
    """Number of annotated heads in a GT_IMG_<n>.mat (rows of image_info{1}.location)."""
    mat = scipy.io.loadmat(io.BytesIO(mat_bytes))
    record = mat["image_info"][0, 0][0, 0]
    return int(np.asarray(record[0]).shape[0])


def bucket_edges(counts: list[int], buckets: int = NUM_BUCKETS) -> list[int]:
    """The reference's equal-frequency edges: bucket j holds counts in (edge[j-1], edge[j]]."""
    histogram = np.bincount(np.minimum(counts, MAX_COUNT - 1), minlength=MAX_COUNT)
    cumulative = np.cumsum(histogram)
    per_bucket = len(counts) / buckets
    edges = []
    for k in range(1, buckets):
        below = np.flatnonzero(cumulative < per_bucket * k)
        if not below.size:
            raise PrepareError(f"shanghai_tech: over {k}/{buckets} of the images share the "
                               "smallest count; the count buckets are undefined.")
        edges.append(int(below[-1]))
    return edges


def bucket_of(count: int, edges: list[int]) -> int:
    return int(np.searchsorted(edges, count, side="left"))


def bucket_names(edges: list[int]) -> list[str]:
    lows = [0] + [e + 1 for e in edges]
    return [f"{lo}-{hi}" for lo, hi in zip(lows, edges, strict=False)] + [f"{lows[-1]}+"]


def train_splits(count: int) -> list[str]:
    """Split of each official training image, by its position in archive order."""
    order = np.random.default_rng(1).permutation(count)
    cuts = (int((1 - 0.15 - 0.15) * count), int((1 - 0.15) * count))  # the reference's arithmetic
    splits = [""] * count
    for rank, index in enumerate(order):
        splits[index] = "train" if rank < cuts[0] else "dev" if rank < cuts[1] else "dev_test"
    return splits


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    names = zm.files(archive)
    present = set(names)
    found = []  # (image member, official split, head count), in archive order
    for name in names:
        match = _GROUND_TRUTH.match(name)
        if not match or _IGNORED in name:
            continue
        prefix, part, official, stem = match.groups()
        image = f"{prefix or ''}{part}/{official}_data/images/{stem}.jpg"
        if image not in present:
            raise PrepareError(f"shanghai_tech: {name} has no image {image}.")
        found.append((image, official, head_count(zm.read(archive, name))))
    if not found:
        raise PrepareError(f"shanghai_tech: no part_{{A,B}}/*_data/ground-truth/*.mat in "
                           f"{ARCHIVE}.")
    edges = bucket_edges([count for _, _, count in found])
    train = [f for f in found if f[1] == "train"]
    split_of = dict(zip((f[0] for f in train), train_splits(len(train)), strict=True))
    items = [recipes.Item(zm.reader(archive, image), bucket_of(count, edges),
                          split=split_of.get(image, "test"), name=image)
             for image, _, count in found]
    counts = [count for _, _, count in found]
    return Built(bucket_names(edges), items, recipes.explicit(), channels=3,
                 metadata={"bucket_edges": edges, "images": len(found),
                           "min_count": min(counts), "max_count": max(counts)})


# ------------------------------------------------------------------------------------- fixture


def _mat_bytes(count: int, rng: np.random.Generator) -> bytes:
    record = np.empty((1, 1), dtype=[("location", "O"), ("number", "O")])
    record[0, 0]["location"] = rng.random((count, 2)) * 100
    record[0, 0]["number"] = np.array([[float(count)]])
    info = np.empty((1, 1), dtype=object)
    info[0, 0] = record
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"image_info": info})
    return buffer.getvalue()


def write_fixture(folder: Path) -> None:
    """Parts A and B with 7 train and 3 test images each; one grey; an h5_empty copy."""
    rng = np.random.default_rng(2016)
    members: dict[str, bytes | str] = {}
    for part in ("part_A", "part_B"):
        for official, n in (("train", 7), ("test", 3)):
            base = f"ShanghaiTech/{part}/{official}_data"
            for i in range(1, n + 1):
                count = int(rng.integers(5, 60)) * (3 if part == "part_A" else 1)
                mode = "L" if (part, official, i) == ("part_A", "train", 2) else "RGB"
                members[f"{base}/images/IMG_{i}.jpg"] = fixtures.image_bytes(
                    rng, "JPEG", (24, 32), mode)
                members[f"{base}/ground-truth/GT_IMG_{i}.mat"] = _mat_bytes(count, rng)
    members["shanghaitech_h5_empty/ShanghaiTech/part_A/train_data/ground-truth/GT_IMG_1.mat"] = (
        _mat_bytes(0, rng))
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="shanghai_tech",
    name="ShanghaiTech",
    year=2016,
    sources=(Kaggle("tthien/shanghaitech", md5="f547d65447063405ea78ab7fa9ae721b"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/tthien/shanghaitech",
    num_classes=NUM_BUCKETS,
)
