"""SUN Attribute Database (Patterson & Hays, "SUN Attribute Database: Discovering, Annotating,
and Recognizing Scene Attributes", CVPR 2012): 14,340 scene images, 102 attributes each voted on
by three annotators. A multi-label task.

Raw files (Brown University, md5 published by the reference):
- `SUNAttributeDB.tar.gz`: `SUNAttributeDB/images.mat` (`images`, a cell array of the image
  paths such as `a/abbey/sun_aaaulhwrhqgejnyt.jpg`), `SUNAttributeDB/attributes.mat`
  (`attributes`, the 102 attribute names) and `SUNAttributeDB/attributeLabels_continuous.mat`
  (`labels_cv`, images × 102, the fraction of the three votes: 0, 1/3, 2/3 or 1);
- `SUNAttributeDB_Images.tar.gz`: the JPEGs at `images/<path>`.

Label rule (as the reference): an image has every attribute with at least one vote
(`labels_cv > 0`); class names are `attributes.mat`'s names (index = column). An image with no
voted attribute keeps an empty label set, as in the reference (counted in the metadata).
Recipe: random 56/12/12/20 of everything (multi-label: not stratified).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url
from nevis.tasks import TaskKind

ATTRIBUTE_ARCHIVE = "SUNAttributeDB.tar.gz"
IMAGES_ARCHIVE = "SUNAttributeDB_Images.tar.gz"
NUM_ATTRIBUTES = 102
_BASE_URL = "https://cs.brown.edu/~gmpatter/Attributes/"


def _strings(cells) -> list[str]:
    """A MATLAB cell array of strings (any shape) as a list."""
    out = []
    for cell in np.asarray(cells, dtype=object).reshape(-1):
        value = np.asarray(cell).reshape(-1)
        out.append(str(value[0]) if value.size else "")
    return out


def read_annotations(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, image paths, votes) from the extracted `SUNAttributeDB` folder."""
    folder = root / "SUNAttributeDB"
    names = _strings(scipy.io.loadmat(folder / "attributes.mat")["attributes"])
    paths = [p.replace("\\", "/") for p in
             _strings(scipy.io.loadmat(folder / "images.mat")["images"])]
    votes = np.asarray(scipy.io.loadmat(folder / "attributeLabels_continuous.mat")["labels_cv"])
    if votes.shape != (len(paths), len(names)):
        raise ValueError(f"{ATTRIBUTE_ARCHIVE}: labels_cv has shape {votes.shape}, expected "
                         f"({len(paths)} images, {len(names)} attributes).")
    return names, paths, votes


def build(ctx: BuildContext) -> Built:
    names, paths, votes = read_annotations(ctx.extract(ATTRIBUTE_ARCHIVE))
    images = ctx.extract(IMAGES_ARCHIVE)
    items, missing = [], 0
    for path, row in zip(paths, votes, strict=True):
        image = images / "images" / path
        if not image.is_file():
            missing += 1
            continue
        labels = [int(c) for c in np.flatnonzero(row > 0)]
        items.append(recipes.Item(image, labels, name=f"images/{path}"))
    if not items:
        raise ValueError(f"{IMAGES_ARCHIVE}: none of the {len(paths)} annotated images is at "
                         "images/<path> — has the layout changed?")
    metadata = {"annotated_images": len(paths), "missing_images": missing,
                "images_without_attributes": sum(not item.label for item in items)}
    return Built(names, items, recipes.random_split(), channels=3, metadata=metadata)


def write_fixture(folder: Path) -> None:
    """30 annotated images (2 scene folders) with 1–8 voted attributes each."""
    rng = np.random.default_rng(2012)
    paths = [f"{c}/{scene}/sun_fixture{i:03d}.jpg"
             for i, (c, scene) in enumerate([("a", "abbey"), ("b", "bakery/shop")] * 15)]
    votes = np.zeros((len(paths), NUM_ATTRIBUTES))
    for row in votes:
        chosen = rng.choice(NUM_ATTRIBUTES, int(rng.integers(1, 9)), replace=False)
        row[chosen] = rng.choice([1 / 3, 2 / 3, 1.0], len(chosen))
    cells = np.empty((len(paths), 1), dtype=object)
    cells[:, 0] = paths
    names = np.empty((NUM_ATTRIBUTES, 1), dtype=object)
    names[:, 0] = [f"attribute {a}" for a in range(NUM_ATTRIBUTES)]
    members: dict[str, bytes] = {"SUNAttributeDB/README.txt": b"SUN Attribute Database\n"}
    for name, content in (("images.mat", {"images": cells}),
                          ("attributes.mat", {"attributes": names}),
                          ("attributeLabels_continuous.mat", {"labels_cv": votes})):
        buffer = io.BytesIO()
        scipy.io.savemat(buffer, content, do_compression=True)
        members[f"SUNAttributeDB/{name}"] = buffer.getvalue()
    fixtures.write_tar(folder / ATTRIBUTE_ARCHIVE, members)
    fixtures.write_tar(folder / IMAGES_ARCHIVE, {
        f"images/{path}": fixtures.image_bytes(rng, "JPEG", (16, 20)) for path in paths
    })


HANDLER = Handler(
    key="sun_attributes",
    name="SUN Attribute",
    year=2012,
    sources=(
        Url(_BASE_URL + IMAGES_ARCHIVE, md5="5966725c7306df6e05cd3ada7f45a18b"),
        Url(_BASE_URL + ATTRIBUTE_ARCHIVE, md5="883293e5b645822f6ae0046c6df54183"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://cs.brown.edu/~gmpatter/sunattributes.html",
    num_classes=NUM_ATTRIBUTES,
    kind=TaskKind.MULTI_LABEL,
)
