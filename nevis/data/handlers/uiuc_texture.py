"""UIUC texture database (Lazebnik, Schmid & Ponce, "A sparse texture representation using local
affine regions", PAMI 2005): 25 texture classes, 40 grey 640×480 images each.

Raw files: five zips of five classes each, `T01-T05.zip` … `T21-T25.zip`, served by the Wayback
Machine's copy of the Ponce group's page (md5 published by the reference). Each holds one folder
per class at its top, `T<NN>_<texture>/T<NN>_<n>.jpg`.

Label rule (the reference's): the class is the folder holding the image; classes are computed at
extraction — every class folder of the five zips, sorted by name (documented: 25). Every member
except folders, `Thumbs.db` and macOS resource forks is an image. Recipe: no official split,
random 56/12/12/20 (`random_split()`).

Unverified: the exact class folder names (the fixture uses the documented textures); the rule
reads whatever folder names the zips hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVES = ("T01-T05.zip", "T06-T10.zip", "T11-T15.zip", "T16-T20.zip", "T21-T25.zip")
_MD5 = ("e622e4708e336d51b3bbd45503618af1", "50ab35564058d3f1d05e6f5d767db5df",
        "d1c7584aeb0ab1e41c7157c60e84c3ad", "d527ba7d820e1eeaef49f9c07b82aa34",
        "74a29af10123f2be70ea481e5af3ec36")
_BASE = ("https://web.archive.org/web/20070829035029/"
         "http://www-cvr.ai.uiuc.edu/ponce_grp/data/texture_database/")
# The documented textures, for the fixture only (classes come from the archives).
TEXTURES = ("bark", "bark", "bark", "wood", "wood", "wood", "water", "granite", "marble",
            "floor", "floor", "pebbles", "wall", "brick", "brick", "glass", "glass", "carpet",
            "carpet", "upholstery", "wallpaper", "fur", "knit", "corduroy", "plaid")


def class_of(relative: str) -> str | None:
    """The class folder of an archive member (None for members that are not class images)."""
    parts = relative.split("/")
    name = parts[-1]
    if (len(parts) < 2 or name.lower() == "thumbs.db" or name.startswith("._")
            or "__MACOSX" in parts):
        return None
    return "/".join(parts[:-1])


def build(ctx: BuildContext) -> Built:
    found: list[tuple[Path, str, str]] = []
    for archive in ARCHIVES:
        root = ctx.extract(archive)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            folder = class_of(rel)
            if folder is not None:
                found.append((path, folder, f"{archive}/{rel}"))
    if not found:
        raise PrepareError("uiuc_texture: no <class>/<image> members in the archives; has the "
                           "layout changed?")
    class_names = sorted({folder for _, folder, _ in found})
    index = {name: i for i, name in enumerate(class_names)}
    items = [recipes.Item(path, index[folder], name=name) for path, folder, name in found]
    return Built(class_names, items, recipes.random_split(), channels=1,
                 metadata={"images_per_class": {c: sum(f == c for _, f, _ in found)
                                                for c in class_names}})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2005)
    for a, archive in enumerate(ARCHIVES):
        members: dict[str, bytes | str] = {}
        for t in range(5 * a + 1, 5 * a + 6):
            class_folder = f"T{t:02d}_{TEXTURES[t - 1]}"
            for i in range(1, 7):
                members[f"{class_folder}/T{t:02d}_{i:02d}.jpg"] = fixtures.image_bytes(
                    rng, "JPEG", (12, 16), "L")
        fixtures.write_zip(folder / archive, members)


HANDLER = Handler(
    key="uiuc_texture",
    name="UIUC texture",
    year=2005,
    sources=tuple(Url(_BASE + archive, md5=md5)
                  for archive, md5 in zip(ARCHIVES, _MD5, strict=True)),
    build=build,
    write_fixture=write_fixture,
    homepage="https://web.archive.org/web/20070829035029/"
             "http://www-cvr.ai.uiuc.edu/ponce_grp/data/index.html",
    num_classes=None,
)
