"""UMD high-resolution texture dataset (Xu, Ji & Fermüller, "A projective invariant for
textures", CVPR 2006): 25 texture classes, 40 grey 1280×960 images each.

Raw files (users.umiacs.umd.edu, md5 published by the reference): `textures-1.zip` (classes
1–12) and `textures-2.zip` (classes 13–25), one folder per class named by its number 1..25
(`<folder>/<N>/<image>`); Windows `Thumbs.db` files lie next to the images.

Label rule (the reference's): label = N - 1 for the class folder N that holds the file. Every
member except folders and `*.db` files is an image (read as grey; the pipeline converts to PNG
when needed). Deviation: macOS resource forks (`__MACOSX/`, `._*`) and files whose folder is not
a number are skipped and counted in the metadata (the reference would stop on them). Recipe: no
official split, random 56/12/12/20 (`random_split()`).

Unverified: whether the class folders sit at the top of each zip or under a top folder, and the
image file type — the rule above reads either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVES = ("textures-1.zip", "textures-2.zip")
NUM_CLASSES = 25
CLASS_NAMES = tuple(str(n) for n in range(1, NUM_CLASSES + 1))


def label_of(relative: str) -> int | None:
    """Class index of an archive member (None for members that are not class images)."""
    parts = relative.split("/")
    if (len(parts) < 2 or parts[-1].lower().endswith(".db") or parts[-1].startswith("._")
            or "__MACOSX" in parts or not parts[-2].isdigit()):
        return None
    label = int(parts[-2]) - 1
    if not 0 <= label < NUM_CLASSES:
        raise PrepareError(f"umd: class folder {parts[-2]} is outside 1..{NUM_CLASSES} "
                           f"({relative}).")
    return label


def build(ctx: BuildContext) -> Built:
    items, skipped = [], 0
    for archive in ARCHIVES:
        root = ctx.extract(archive)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            label = label_of(rel)
            if label is None:
                skipped += not rel.lower().endswith(".db")
                continue
            items.append(recipes.Item(path, label, name=f"{archive}/{rel}"))
    if not items:
        raise PrepareError("umd: no <class number>/<image> members in the archives; has the "
                           "layout changed?")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1,
                 metadata={"skipped_members": skipped})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2006)
    for archive, classes in zip(ARCHIVES, (range(1, 13), range(13, 26)), strict=True):
        top = archive.removesuffix(".zip")
        members: dict[str, bytes | str] = {}
        for n in classes:
            for i in range(1, 7):
                members[f"{top}/{n}/T{n:02d}_{i:02d}.jpg"] = fixtures.image_bytes(
                    rng, "JPEG", (12, 16), "L")
            members[f"{top}/{n}/Thumbs.db"] = b"\xd0\xcf\x11\xe0thumbnail cache"
        fixtures.write_zip(folder / archive, members)


HANDLER = Handler(
    key="umd",
    name="UMD",
    year=2006,
    sources=(
        Url("http://users.umiacs.umd.edu/~fer/High-resolution-data-base/textures-1.zip",
            md5="818b5b13035374cffd4db604e718ddbf"),
        Url("http://users.umiacs.umd.edu/~fer/High-resolution-data-base/textures-2.zip",
            md5="e9853d0f7eaa9e57c4756e9017d0cbc9"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://users.umiacs.umd.edu/~fer/website-texture/texture.htm",
    num_classes=NUM_CLASSES,
)
