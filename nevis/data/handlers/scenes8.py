"""8 Scene categories (Oliva & Torralba, "Modeling the Shape of the Scene: A Holistic
Representation of the Spatial Envelope", IJCV 2001): 2,688 colour 256×256 outdoor scenes.

Raw file: `spatial_envelope_256x256_static_8outdoorcategories.zip` (Torralba's page at MIT, md5
published by the reference): JPEGs named `<category>_<source id>.jpg` (e.g. `coast_arnat59.jpg`)
(in a folder `spatial_envelope_256x256_static_8outdoorcategories/`, assumed: only the file name
is read).

Label rule: the file name up to its first `_`; indices follow the reference's list (CLASS_NAMES:
highway, street, tallbuilding, forest, insidecity, opencountry, mountain, coast). A JPEG of
another category stops the build; other files are not read.
Recipe: no official split → random 56/12/12/20 (`random_split()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "spatial_envelope_256x256_static_8outdoorcategories.zip"
CLASS_NAMES = (
    "highway", "street", "tallbuilding", "forest", "insidecity", "opencountry", "mountain",
    "coast",
)
_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items, unknown = [], set()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if (not path.is_file() or path.suffix.lower() not in (".jpg", ".jpeg")
                or path.name.startswith("._")):
            continue
        category = path.name.split("_")[0]
        if category not in _INDEX:
            unknown.add(category)
            continue
        items.append(recipes.Item(path, _INDEX[category], name=path.relative_to(root).as_posix()))
    if unknown:
        raise PrepareError(f"scenes8: images of unknown categories {sorted(unknown)}.")
    if not items:
        raise PrepareError(f"scenes8: no <category>_<id>.jpg images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3,
                 metadata={"images": len(items)})


def write_fixture(folder: Path) -> None:
    """8 categories × 6 JPEGs (24×24) in the archive's folder."""
    rng = np.random.default_rng(2001)
    top = ARCHIVE.removesuffix(".zip")
    members = {
        f"{top}/{category}_{source}{n}.jpg": fixtures.image_bytes(rng, "JPEG", (24, 24))
        for category in CLASS_NAMES
        for n, source in enumerate(("art", "nat", "urb", "bost", "land", "n"), 1)
    }
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="scenes8",
    name="8 Scene Dataset",
    year=2001,
    sources=(
        Url("https://people.csail.mit.edu/torralba/code/spatialenvelope/" + ARCHIVE,
            md5="c26fe529d49848091a759d7aadd267f5"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://people.csail.mit.edu/torralba/code/spatialenvelope/",
    num_classes=8,
)
