"""ALOI — Amsterdam Library of Object Images (Geusebroek, Burghouts & Smeulders, "The Amsterdam
Library of Object Images", IJCV 2005): 1,000 small objects photographed under systematically
varied viewing and lighting.

Raw files (the ALOI site, md5 published by the reference), the quarter-resolution (192×144)
colour collections, one tar each:
- `aloi_red4_col.tar`: illumination colour, 12 images per object (`<obj>_i110` … `_i250`);
- `aloi_red4_view.tar`: viewing angle, 72 per object (`<obj>_r0` … `_r355`);
- `aloi_red4_ill.tar`: illumination direction, 24 per object (`<obj>_l<1..8>c<1..3>`);
each member `<collection folder>/<obj>/<obj>_<variant>.png` with obj = 1..1000.

Label rule: the object number - 1 (its folder; class names "1" … "1000").
Recipe (`official_test()`, as the reference): col + view (group "train") → 70/15/15
train/dev/dev_test; ill (group "test") → test: the test images show the training objects under
light directions never seen in training.

Deviation: the reference also downloads `aloi_red4_stereo.tar` (md5
44fef81680375641ea374c32dbe6d68d) but never reads it; it is not fetched here. The name of the
collection folder at the top of each tar is not read (only the object folder is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

NUM_OBJECTS = 1000
CLASS_NAMES = tuple(str(i) for i in range(1, NUM_OBJECTS + 1))
# collection tar -> group
COLLECTIONS = {
    "aloi_red4_col.tar": "train",
    "aloi_red4_view.tar": "train",
    "aloi_red4_ill.tar": "test",
}
_URL = "http://aloi.science.uva.nl/tars/"
_MD5 = {
    "aloi_red4_col.tar": "c0486588258de8a26df4ed7aff0b34f8",
    "aloi_red4_view.tar": "ca29f342bb0c1fa4788e9f76f591ec59",
    "aloi_red4_ill.tar": "0f72c3acf66908e61b6f8d5bf5981193",
}


def object_label(path: Path) -> int:
    """Label (object - 1) of `<obj>/<obj>_<variant>.png`, from the object folder."""
    folder = path.parent.name
    if not folder.isdigit() or not 1 <= int(folder) <= NUM_OBJECTS:
        raise PrepareError(f"aloi: {path.name} lies in {folder!r}, not an object folder "
                           f"1..{NUM_OBJECTS}.")
    return int(folder) - 1


def build(ctx: BuildContext) -> Built:
    items, counts = [], {}
    for archive, group in COLLECTIONS.items():
        root = ctx.extract(archive)
        paths = sorted(root.rglob("*.png"), key=lambda p: p.relative_to(root).as_posix())
        if not paths:
            raise PrepareError(f"aloi: no PNG images in {archive}.")
        items.extend(recipes.Item(p, object_label(p), group=group,
                                  name=f"{archive}:{p.relative_to(root).as_posix()}")
                     for p in paths)
        counts[archive] = len(paths)
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images_per_collection": counts})


def write_fixture(folder: Path) -> None:
    """Objects 1, 2, 500 and 1000: 3 col, 3 view and 2 ill images each (16×12 PNGs)."""
    rng = np.random.default_rng(2005)
    variants = {
        "aloi_red4_col.tar": ("col", ("i110", "i180", "i250")),
        "aloi_red4_view.tar": ("png4", ("r0", "r5", "r355")),
        "aloi_red4_ill.tar": ("png4", ("l1c1", "l8c3")),
    }
    for archive, (top, names) in variants.items():
        members = {
            f"{top}/{obj}/{obj}_{variant}.png": fixtures.image_bytes(rng, "PNG", (12, 16))
            for obj in (1, 2, 500, 1000)
            for variant in names
        }
        fixtures.write_tar(folder / archive, members)


HANDLER = Handler(
    key="aloi",
    name="ALOI",
    year=2005,
    sources=tuple(Url(_URL + name, md5=_MD5[name]) for name in COLLECTIONS),
    build=build,
    write_fixture=write_fixture,
    homepage="https://aloi.science.uva.nl/",
    num_classes=1000,
    notes="The stereo collection the reference downloads but never reads is not fetched.",
)
