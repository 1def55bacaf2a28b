"""LFW — Labeled Faces in the Wild (Huang, Ramesh, Berg & Learned-Miller 2007).

Raw file: `lfw.tgz` (180,566,744 bytes) with `lfw/<Subject_Name>/<Subject_Name>_<NNNN>.jpg`,
250×250 RGB JPEGs: 13,233 images of 5,749 people. The UMass origin
(http://vis-www.cs.umass.edu/lfw/lfw.tgz) no longer resolves (2025); the same archive is served
by figshare, where scikit-learn and TFDS fetch it (TFDS records the same size and SHA-256 for
both addresses). The published MD5 (dm_nevis) is kept alongside.

LFW is a verification benchmark; NEVIS'22 recasts it as identification over the subjects with at
least 5 images (423 subjects, 5,985 images). Label rule: one class per such subject. Recipe
(bespoke, `explicit`): per subject, the last two images → test, the one before → dev_test, the
one before that → dev, the rest → train.

Deviations from the reference (on purpose): the reference orders subjects and each subject's
images as they happen to lie in the tar stream; here subjects are sorted by name (class index =
position in that order) and images by file name (i.e. by their number), so the result does not
depend on how the archive was packed. Class counts are computed from the data (not asserted).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

ARCHIVE = "lfw.tgz"
MIN_IMAGES = 5  # subjects with fewer images are left out
# lfw/<Subject>/<Subject>_<NNNN>.jpg (also excludes resource-fork files such as "._x.jpg").
_MEMBER = re.compile(r"(?:^|/)lfw/([^/]+)/\1_\d{4}\.jpg$")


def per_subject_splits(count: int) -> list[str]:
    """Split of each of a subject's `count` images, in order: ..., dev, dev_test, test, test."""
    if count < 4:
        raise ValueError(f"a subject needs at least 4 images to fill every split, got {count}")
    return ["train"] * (count - 4) + ["dev", "dev_test", "test", "test"]


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    by_subject: dict[str, list[Path]] = {}
    for path in root.rglob("*"):
        match = _MEMBER.search(path.relative_to(root).as_posix())
        if match and path.is_file():
            by_subject.setdefault(match.group(1), []).append(path)
    if not by_subject:
        raise ValueError(f"{ARCHIVE}: no images under lfw/<subject>/ — has the layout changed?")
    kept = sorted(s for s, paths in by_subject.items() if len(paths) >= MIN_IMAGES)
    items = []
    for label, subject in enumerate(kept):
        paths = sorted(by_subject[subject], key=lambda p: p.name)
        for path, split in zip(paths, per_subject_splits(len(paths)), strict=True):
            items.append(recipes.Item(path, label, split=split, name=f"{subject}/{path.name}"))
    metadata = {
        "min_images_per_subject": MIN_IMAGES,
        "subjects_in_archive": len(by_subject),
        "images_in_archive": sum(len(p) for p in by_subject.values()),
        "images_kept": len(items),
    }
    return Built(kept, items, recipes.explicit(), channels=3, metadata=metadata)


def write_fixture(folder: Path) -> None:
    """423 subjects with 5–8 images (as many as the real kept set) plus 6 with 1–4 (left out)."""
    rng = np.random.default_rng(28)
    counts = [5] * 420 + [6, 7, 8] + [1, 2, 3, 4, 4, 1]
    members = {}
    for s, count in enumerate(counts):
        subject = f"Person_{s:03d}_Fixture"
        for i in range(1, count + 1):
            members[f"lfw/{subject}/{subject}_{i:04d}.jpg"] = fixtures.image_bytes(
                rng, "JPEG", (8, 8)
            )
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="lfw",
    name="LFW",
    year=2007,
    sources=(
        Url(
            "https://ndownloader.figshare.com/files/5976018",
            name=ARCHIVE,
            sha256="055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
            md5="a17d05bd522c52d84eca14327a23d494",
        ),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://vis-www.cs.umass.edu/lfw/",
    num_classes=423,
    notes="UMass origin offline since 2025; fetched from the figshare copy scikit-learn uses.",
)
