"""PPMI — People Playing Musical Instruments (Yao & Fei-Fei, "Grouplet: A Structured Image
Representation for Recognizing Human and Object Interactions", CVPR 2010): people playing, or
only holding, one of 12 instruments.

Raw file: `norm_ppmi_12class.zip` (Stanford Vision Lab, md5 published by the reference), the
normalised images: `<top>/{play_instrument|with_instrument}/<instrument>/{train|test}/<n>.jpg`
(`<top>` is `norm_image` as far as we know; it is not read) and a README.

Label rule: one class per (interaction, instrument) — `play_instrument/violin`,
`with_instrument/violin`, … (the reference's 24 classes); class names are computed at extraction
(the catalog leaves the count blank) as the sorted set found, the label is the position there.
Deviation: the reference numbers its classes in set order, not reproducible between runs; the
classes are the same. Images whose folders do not follow the layout stop the build.
Recipe (`official_test()`): the official `train` folders → 70/15/15 train/dev/dev_test; the
official `test` folders → test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "norm_ppmi_12class.zip"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def class_and_group(relative: tuple[str, ...]) -> tuple[str, str]:
    """(class name, official split) of an image path given as its parts."""
    folders = relative[:-1]
    if (len(folders) >= 3 and folders[-1] in ("train", "test")
            and folders[-3].endswith("_instrument")):
        return f"{folders[-3]}/{folders[-2]}", folders[-1]
    raise PrepareError(f"ppmi: {'/'.join(relative)} is not under "
                       "<play|with>_instrument/<instrument>/<train|test>/.")


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    found = []
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if (not path.is_file() or path.suffix.lower() not in _IMAGE_SUFFIXES
                or path.name.startswith("._")):
            continue
        found.append((path, *class_and_group(path.relative_to(root).parts)))
    if not found:
        raise PrepareError(f"ppmi: no images in {ARCHIVE}.")
    class_names = sorted({name for _, name, _ in found})
    index = {name: i for i, name in enumerate(class_names)}
    items = [recipes.Item(path, index[name], group=group, name=path.relative_to(root).as_posix())
             for path, name, group in found]
    groups = {g: sum(item.group == g for item in items) for g in ("train", "test")}
    return Built(class_names, items, recipes.official_test(), channels=3,
                 metadata={"images": groups})


def write_fixture(folder: Path) -> None:
    """4 instruments × {play, with}: 6 train and 2 test JPEGs (16×16) each, and the README."""
    rng = np.random.default_rng(2010)
    members: dict[str, bytes | str] = {"README": "PPMI: People Playing Musical Instruments\n"}
    for action in ("play_instrument", "with_instrument"):
        for instrument in ("bassoon", "erhu", "french_horn", "violin"):
            for split, count in (("train", 6), ("test", 2)):
                for n in range(1, count + 1):
                    members[f"norm_image/{action}/{instrument}/{split}/{n}.jpg"] = (
                        fixtures.image_bytes(rng, "JPEG", (16, 16)))
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="ppmi",
    name="PPMI",
    year=2010,
    sources=(Url("http://vision.stanford.edu/Datasets/norm_ppmi_12class.zip",
                 md5="88118d8c6b50d72f0bb37a89269185ab"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://ai.stanford.edu/~bangpeng/ppmi.html",
    num_classes=None,
)
