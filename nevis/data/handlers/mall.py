"""Mall dataset (Chen, Loy, Gong & Xiang, "Feature Mining for Localised Crowd Counting", BMVC
2012): 2,000 frames of a shopping-mall webcam with every pedestrian's head annotated. NEVIS'22
turns counting into 10-way classification.

Raw file: `mall_dataset.zip` (CUHK, md5 published by the reference) with
`mall_dataset/frames/seq_<NNNNNN>.jpg` (NNNNNN = 1..2000), `mall_dataset/mall_gt.mat` (`count`,
2000 × 1, the number of people in each frame; `frame`, their positions, not read) and other
.mat files (features, perspective map; not read).

Label rule (as the reference): the counts of all 2,000 frames are cut into 10 buckets of
contiguous values holding about the same number of frames (the TRANCOS rule,
`trancos.count_buckets`, max count 100); a frame's label is its count's bucket. Class names
give each bucket's count range ("lo-hi", the last "lo+").

Recipe (bespoke, `explicit`, the reference's): the paper trains on the first 800 frames and
tests on the rest; a seed-1 permutation (`numpy.random.default_rng(1).permutation(800) + 1`) of
frames 1..800 gives its first 560 to train, the next 120 to dev and the last 120 to dev_test;
frames 801..2000 are the test split.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.handlers.trancos import NUM_CLASSES, count_buckets
from nevis.data.sources import Url

ARCHIVE = "mall_dataset.zip"
MAX_COUNT = 100
TOTAL_FRAMES = 2000
TRAIN_FRAMES = 800  # frames 1..800 (the paper's training frames); the rest are test
_FRAME = re.compile(r"(?:^|/)frames/seq_(\d{6})\.jpg$")


def frame_splits() -> dict[int, str]:
    """Frame number (1..2000) → stored split, as the reference assigns them."""
    order = (np.random.default_rng(seed=1).permutation(TRAIN_FRAMES) + 1).tolist()
    train_end = int((1 - 0.15 - 0.15) * TRAIN_FRAMES)
    dev_end = int((1 - 0.15) * TRAIN_FRAMES)
    splits = {frame: "train" for frame in order[:train_end]}
    splits |= {frame: "dev" for frame in order[train_end:dev_end]}
    splits |= {frame: "dev_test" for frame in order[dev_end:]}
    splits |= {frame: "test" for frame in range(TRAIN_FRAMES + 1, TOTAL_FRAMES + 1)}
    return splits


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    gt = next(iter(sorted(root.rglob("mall_gt.mat"))), None)
    if gt is None:
        raise ValueError(f"{ARCHIVE}: no mall_dataset/mall_gt.mat — has the layout changed?")
    counts = np.asarray(scipy.io.loadmat(gt)["count"]).astype(np.int64).reshape(-1)
    if len(counts) != TOTAL_FRAMES:
        raise ValueError(f"{gt.name}: {len(counts)} counts, expected one per frame "
                         f"({TOTAL_FRAMES}).")
    count_to_label, class_names = count_buckets(counts.tolist(), MAX_COUNT)
    splits = frame_splits()
    items = []
    for path in sorted(root.rglob("*.jpg")):
        match = _FRAME.search(path.relative_to(root).as_posix())
        if not match:
            continue
        frame = int(match.group(1))
        if frame not in splits:
            raise ValueError(f"{ARCHIVE}: frame {path.name} is outside 1..{TOTAL_FRAMES}.")
        label = count_to_label[min(int(counts[frame - 1]), MAX_COUNT - 1)]
        items.append(recipes.Item(path, label, split=splits[frame], name=path.name))
    return Built(class_names, items, recipes.explicit(), channels=3,
                 metadata={"frames": len(items), "max_count": int(counts.max())})


def write_fixture(folder: Path) -> None:
    """All 2,000 counts (13–52 people) in `mall_gt.mat` but only 24 frames: 12 train, 3 dev,
    3 dev_test and 6 test."""
    rng = np.random.default_rng(2012)
    counts = rng.integers(13, 53, (TOTAL_FRAMES, 1)).astype(np.float64)
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"count": counts}, do_compression=True)
    members: dict[str, bytes] = {"mall_dataset/mall_gt.mat": buffer.getvalue()}
    by_split: dict[str, list[int]] = {}
    for frame, split in sorted(frame_splits().items()):
        by_split.setdefault(split, []).append(frame)
    for split, number in (("train", 12), ("dev", 3), ("dev_test", 3), ("test", 6)):
        for frame in by_split[split][:number]:
            members[f"mall_dataset/frames/seq_{frame:06d}.jpg"] = fixtures.image_bytes(
                rng, "JPEG", (12, 16))
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="mall",
    name="Mall dataset",
    year=2012,
    sources=(
        Url("https://personal.ie.cuhk.edu.hk/~ccloy/files/datasets/mall_dataset.zip",
            md5="48a772b5e55e8e9a66a3c8f98598fc3b"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://personal.ie.cuhk.edu.hk/~ccloy/downloads_mall_dataset.html",
    num_classes=NUM_CLASSES,
)
