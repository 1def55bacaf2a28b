"""MPEG-7 CE Shape-1 Part B (Latecki, Lakämper & Eckhardt, "Shape Descriptors for Non-rigid
Shapes with a Single Closed Contour", CVPR 2000): binary silhouettes, documented as 70 classes
of 20 shapes each (1,400 images).

Raw file: `MPEG7dataset.zip` (Temple University's shape page, md5 published by the reference)
with GIF silhouettes named `<class>-<n>.gif` (e.g. `original/lizzard-13.gif`) and six extra
files, which the reference recognises by `confusion` or `shapedata` in the class part of the
name and skips.

Label rule: the class is the file name up to its first `-`; class names are computed at
extraction (the catalog leaves the count blank) as the sorted set of the classes found, case
kept (a `Bone-1.gif` names the class `Bone`, sorted before lower-case names, as the reference),
and the label is the position there. Only image files (GIF, PNG, JPEG, BMP) are read; other
files are counted in the metadata. Images are stored grey (channels 1), as in the reference.
Recipe: no official split → random 56/12/12/20 (`random_split()`).

Deviation: the reference collects class names from every archive entry, directory entries too,
whose empty name would become a class of its own (index 0) if the zip lists its folders; here
only image files name classes (we could not check whether the real zip lists folders).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "MPEG7dataset.zip"
_IMAGE_SUFFIXES = {".gif", ".png", ".jpg", ".jpeg", ".bmp"}
_EXTRA_FILES = ("confusion", "shapedata")  # the reference's markers of non-shape files


def class_of(filename: str) -> str | None:
    """The class a shape file belongs to, or None for the dataset's extra files."""
    name = filename.split("-")[0]
    return None if any(marker in name for marker in _EXTRA_FILES) else name


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    found: list[tuple[Path, str]] = []
    skipped = 0
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file():
            continue
        name = class_of(path.name)
        if name is None or path.suffix.lower() not in _IMAGE_SUFFIXES or path.name.startswith("."):
            skipped += 1
            continue
        found.append((path, name))
    if not found:
        raise PrepareError(f"mpeg7: no shape images in {ARCHIVE}.")
    class_names = sorted({name for _, name in found})
    index = {name: i for i, name in enumerate(class_names)}
    items = [recipes.Item(path, index[name], name=path.relative_to(root).as_posix())
             for path, name in found]
    return Built(class_names, items, recipes.random_split(), channels=1,
                 metadata={"images": len(items), "other_files_skipped": skipped})


def write_fixture(folder: Path) -> None:
    """8 classes × 6 GIF silhouettes (one class capitalised, as `Bone`) and two extra files."""
    rng = np.random.default_rng(2000)
    members: dict[str, bytes | str] = {}
    for name in ("apple", "Bone", "HCircle", "bat", "device0", "lizzard", "sea_snake", "watch"):
        for n in range(1, 7):
            silhouette = (rng.random((24, 20)) < 0.5).astype(np.uint8) * 255
            silhouette[4:12, 3:9] = 255
            members[f"original/{name}-{n}.gif"] = _gif(silhouette)
    members["original/confusions.gif"] = _gif(np.zeros((8, 8), np.uint8))
    members["original/shapedata.gif"] = _gif(np.full((8, 8), 255, np.uint8))
    fixtures.write_zip(folder / ARCHIVE, members)


def _gif(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, "L").convert("1").save(buffer, format="GIF")
    return buffer.getvalue()


HANDLER = Handler(
    key="mpeg7",
    name="MPEG-7",
    year=2000,
    sources=(Url("https://dabi.temple.edu/external/shape/MPEG7/MPEG7dataset.zip",
                 md5="bedd54856c425dcc6e242515c4f67d75"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://dabi.temple.edu/external/shape/MPEG7",
    num_classes=None,
)
