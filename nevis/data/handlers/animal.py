"""ANIMAL shape dataset (Bai, Liu & Tu, "Integrating contour and skeleton for shape
classification", ICCV Workshops 2009): 2,000 binary animal silhouettes, documented as 20
classes of 100.

Raw files (Xiang Bai's Google Pages site, md5 published by the reference):
`non_rigid_shape_A.zip` and `non_rigid_shape_B.zip`, each `<top>/<class>/<image>`; every file
in them except `Thumbs.db` is a silhouette image (read as grey; non-PNG/JPEG formats are
converted to PNG by the pipeline).

Label rule (the reference's): the class is the folder holding the image. Classes are computed
at extraction: the distinct class folder names of both zips, sorted by name. Deviation: the
reference lists each zip's class folders (in set order, which varies between runs) and
concatenates the two lists, so a class present in both zips is counted twice while its images
all take one index — the count doubles and half the indices are never used. Here a class found
in both zips is one class; the metadata records each zip's classes and the count the reference
would report. macOS resource forks (`__MACOSX/`, `._*`) are skipped. Recipe: no official split,
random 56/12/12/20 (`random_split()`).

Unverified: the zips' top folder, class folder names and image format (the fixture assumes one
top folder per zip, the 20 documented animals in each, TIFF images); whether the two zips hold
the same classes (if not, the count equals the reference's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVES = ("non_rigid_shape_A.zip", "non_rigid_shape_B.zip")
_MD5 = ("d88d44dc6d2382de3a5857d86fb5d430", "dae4a05b9797a3109078d1553173b9a8")
# The documented animals, for the fixture only (classes come from the archives).
ANIMALS = ("bird", "butterfly", "cat", "cow", "crocodile", "deer", "dog", "dolphin", "duck",
           "elephant", "fish", "flyingbird", "hen", "horse", "leopard", "monkey", "rabbit",
           "rat", "spider", "tortoise")


def class_of(relative: str) -> str | None:
    """The class folder of an archive member (None for members that are not images)."""
    parts = relative.split("/")
    name = parts[-1]
    if (len(parts) < 3 or name.lower() == "thumbs.db" or name.startswith("._")
            or "__MACOSX" in parts):
        return None
    return parts[-2]


def build(ctx: BuildContext) -> Built:
    found: list[tuple[Path, str, str]] = []
    per_zip: dict[str, list[str]] = {}
    for archive in ARCHIVES:
        root = ctx.extract(archive)
        classes = set()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            name = class_of(rel)
            if name is not None:
                found.append((path, name, f"{archive}/{rel}"))
                classes.add(name)
        per_zip[archive] = sorted(classes)
    if not found:
        raise PrepareError("animal: no <top>/<class>/<image> members in the archives; has the "
                           "layout changed?")
    class_names = sorted({name for _, name, _ in found})
    label = {name: i for i, name in enumerate(class_names)}
    items = [recipes.Item(path, label[name], name=member) for path, name, member in found]
    return Built(class_names, items, recipes.random_split(), channels=1, metadata={
        "classes_per_zip": per_zip,
        "reference_num_classes": sum(len(v) for v in per_zip.values()),
    })


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2009)
    for a, archive in enumerate(ARCHIVES):
        top = archive.removesuffix(".zip")
        members: dict[str, bytes | str] = {}
        for animal in ANIMALS:
            for i in range(3):
                members[f"{top}/{animal}/{animal}{a * 50 + i + 1}.tif"] = fixtures.image_bytes(
                    rng, "TIFF", (12, 12), "L")
        members[f"{top}/{ANIMALS[0]}/Thumbs.db"] = b"\xd0\xcf\x11\xe0thumbnail cache"
        fixtures.write_zip(folder / archive, members)


HANDLER = Handler(
    key="animal",
    name="ANIMAL",
    year=2009,
    sources=tuple(Url(f"http://xiang.bai.googlepages.com/{archive}", md5=md5)
                  for archive, md5 in zip(ARCHIVES, _MD5, strict=True)),
    build=build,
    write_fixture=write_fixture,
    homepage="http://xiang.bai.googlepages.com/",
    num_classes=None,
)
