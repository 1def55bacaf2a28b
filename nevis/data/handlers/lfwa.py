"""LFW-a — Labeled Faces in the Wild, aligned (Wolf, Hassner & Taigman, "Effective Face
Recognition by Combining Multiple Descriptors and Learned Background Statistics", TPAMI 2011).

Raw file: `lfwa.zip` on Google Drive (the id and md5 the reference uses), the LFW images after
alignment with a commercial face aligner, 250×250 grey JPEGs at
`lfw2/<Subject_Name>/<Subject_Name>_<NNNN>.jpg` (13,233 images of 5,749 people). The top folder
name is not read (any folder holding `<Subject>/<Subject>_<NNNN>.jpg` is accepted): we could not
open the real archive to confirm it.

As LFW (`lfw.py`): identification over the subjects with at least 5 images (423 subjects, 5,985
images), one class per subject, subjects sorted by name and each subject's images by number;
recipe (bespoke, `explicit`): per subject, the last two images → test, the one before →
dev_test, the one before that → dev, the rest → train.

Deviations from the reference: it orders subjects and images as they lie in the zip (here:
sorted, so the result does not depend on how the archive was packed), and it converts the grey
images to RGB; here they are stored grey (channels=1), their JPEG bytes as they are — a learner
reading them gets the same RGB pixels (grey is replicated at load).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.handlers.lfw import MIN_IMAGES, per_subject_splits
from nevis.data.sources import GoogleDrive

ARCHIVE = "lfwa.zip"
# <Subject>/<Subject>_<NNNN>.jpg (also excludes resource-fork files such as "._x.jpg").
_MEMBER = re.compile(r"(?:^|/)([^/]+)/\1_\d{4}\.jpg$")


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    by_subject: dict[str, list[Path]] = {}
    for path in root.rglob("*.jpg"):
        relative = path.relative_to(root).as_posix()
        match = _MEMBER.search(relative)
        if match and path.is_file() and not relative.startswith("__MACOSX/"):
            by_subject.setdefault(match.group(1), []).append(path)
    if not by_subject:
        raise ValueError(f"{ARCHIVE}: no images at <subject>/<subject>_<NNNN>.jpg — has the "
                         "layout changed?")
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
    return Built(kept, items, recipes.explicit(), channels=1, metadata=metadata)


def _tiny_jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=10, optimize=True)
    return buffer.getvalue()


def write_fixture(folder: Path) -> None:
    """423 subjects with 5–7 grey images (as many as the real kept set) plus 4 with 1–4.

    2,100-odd members make a zip of ~500 KB even with tiny 8×8 JPEGs (per-member headers),
    above the usual fixture size; the class count (423 subjects of ≥ 5 images) needs them all.
    """
    rng = np.random.default_rng(2011)
    counts = [5] * 421 + [6, 7] + [1, 2, 3, 4]
    pixels = rng.integers(0, 256, (sum(counts), 8, 8), dtype=np.uint8)
    k = 0
    with zipfile.ZipFile(folder / ARCHIVE, "w", zipfile.ZIP_DEFLATED) as zf:
        for s, count in enumerate(counts):
            subject = f"S{s:03d}"
            for i in range(1, count + 1):
                zf.writestr(f"lfw2/{subject}/{subject}_{i:04d}.jpg", _tiny_jpeg(pixels[k]))
                k += 1


HANDLER = Handler(
    key="lfwa",
    name="LFWA",
    year=2011,
    sources=(
        GoogleDrive("1p1wjaqpTh_5RHfJu4vUh8JJCdKwYMHCp", ARCHIVE,
                    md5="96313a4780499f939bc4a06d5bebaf7d"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://talhassner.github.io/home/projects/lfwa/index.html",
    num_classes=423,
)
