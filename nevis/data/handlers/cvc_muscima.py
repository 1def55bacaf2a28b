"""CVC-MUSCIMA, writer identification (Fornés, Dutta, Gordo & Lladós, "CVC-MUSCIMA: a ground
truth of handwritten music score images for writer identification and staff removal", IJDAR
2012): 1,000 grey music-score pages, 20 by each of 50 musicians; NEVIS'22 recasts it as writer
identification (50 classes).

Raw files (cvc.uab.es, md5 published by the reference):
- `CVCMUSCIMA_WI.zip`: `CVCMUSCIMA_WI/<variant>/w-<NN>/p<NNN>.png` for several variants (grey,
  binary, without staff lines); only `CVCMUSCIMA_WI/PNG_GT_Gray/` is read;
- `Partitions_Set.zip`: the official partitions, one `w-<NN>/p<NNN>.png` per line; the reference
  uses `Partitions_Set/set_2_Independent/set_2_{training,testing}_01.txt`.

Label rule: the writer folder `w-<NN>`, with the reference's class order (CLASS_NAMES, index =
label; it is not sorted). Pages in neither list are not used; listed pages missing from the
archive are counted in the metadata (the reference skips them silently). Recipe: `official_test()` —
training list → 70/15/15 train/dev/dev_test, testing list → test.

The site also serves the files at http://datasets.cvc.uab.es/muscima/ (not checked to be the
same bytes); the reference's addresses are kept.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

IMAGES_ARCHIVE = "CVCMUSCIMA_WI.zip"
PARTITIONS_ARCHIVE = "Partitions_Set.zip"
IMAGE_FOLDER = "CVCMUSCIMA_WI/PNG_GT_Gray"
TRAIN_LIST = "Partitions_Set/set_2_Independent/set_2_training_01.txt"
TEST_LIST = "Partitions_Set/set_2_Independent/set_2_testing_01.txt"
CLASS_NAMES = (
    "w-23", "w-14", "w-18", "w-11", "w-40", "w-42", "w-28", "w-03", "w-05", "w-34",
    "w-36", "w-37", "w-12", "w-31", "w-06", "w-22", "w-25", "w-21", "w-38", "w-48",
    "w-32", "w-07", "w-39", "w-15", "w-10", "w-17", "w-45", "w-50", "w-02", "w-08",
    "w-01", "w-20", "w-35", "w-29", "w-46", "w-47", "w-13", "w-30", "w-33", "w-09",
    "w-16", "w-49", "w-43", "w-44", "w-24", "w-19", "w-04", "w-26", "w-41", "w-27",
)
_MEMBER = re.compile(rf"^{IMAGE_FOLDER}/(w-\d+)/([^/]+)$")


def read_partition(archive: Path, member: str) -> set[str]:
    """The `<writer>/<page>` entries of one partition file."""
    with zipfile.ZipFile(archive) as zf:
        try:
            text = zf.read(member).decode("utf-8-sig")
        except KeyError as e:
            raise PrepareError(f"cvc_muscima: {archive.name} holds no {member}.") from e
    return {line.strip() for line in text.splitlines() if line.strip()}


def build(ctx: BuildContext) -> Built:
    partitions = ctx.path(PARTITIONS_ARCHIVE)
    lists = {"train": read_partition(partitions, TRAIN_LIST),
             "test": read_partition(partitions, TEST_LIST)}
    label = {name: i for i, name in enumerate(CLASS_NAMES)}
    root = ctx.extract(IMAGES_ARCHIVE)
    items: list[recipes.Item] = []
    for path in sorted(p for p in (root / IMAGE_FOLDER).rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        match = _MEMBER.match(rel)
        if not match:
            continue
        writer, page = match.groups()
        entry = f"{writer}/{page}"
        for group, entries in lists.items():
            if entry in entries:
                if writer not in label:
                    raise PrepareError(f"cvc_muscima: writer {writer} ({rel}) is not one of "
                                       f"the {len(CLASS_NAMES)} classes.")
                items.append(recipes.Item(path, label[writer], group=group, name=rel))
    counts = {g: sum(item.group == g for item in items) for g in lists}
    if not all(counts.values()):
        raise PrepareError(f"cvc_muscima: no page of the partition lists found under "
                           f"{IMAGE_FOLDER}/ ({counts}); has the layout changed?")
    missing = {g: len(lists[g]) - counts[g] for g in lists}
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=1,
                 metadata={"images": counts, "listed_but_missing": missing})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2012)
    writers = ("w-01", "w-07", "w-23", "w-27", "w-50")  # a subset of the 50
    pages = [f"p{i:03d}.png" for i in range(1, 9)]
    members: dict[str, bytes | str] = {}
    for writer in writers:
        for page in pages:
            members[f"{IMAGE_FOLDER}/{writer}/{page}"] = fixtures.image_bytes(
                rng, "PNG", (20, 14), "L")
        # The other variants hold the same names; they are not read.
        members[f"CVCMUSCIMA_WI/PNG_GT_BW/{writer}/p001.png"] = fixtures.image_bytes(
            rng, "PNG", (20, 14), "L")
    fixtures.write_zip(folder / IMAGES_ARCHIVE, members)
    train = [f"{w}/{p}" for w in writers for p in pages[:6]]
    test = [f"{w}/{p}" for w in writers for p in pages[6:]]
    fixtures.write_zip(folder / PARTITIONS_ARCHIVE, {
        TRAIN_LIST: "\r\n".join(train) + "\r\n",
        TEST_LIST: "\r\n".join(test) + "\r\n",
        # Another partition (not used): the whole first page set for training.
        "Partitions_Set/set_1_Dependent/set_1_training_01.txt": "\n".join(train + test) + "\n",
    })


HANDLER = Handler(
    key="cvc_muscima",
    name="CVC-MUSCIMA",
    year=2012,
    sources=(
        Url("http://wwwo.cvc.uab.es/cvcmuscima/CVCMUSCIMA_WI.zip",
            md5="33d7464a3dc376a9456bbfe7aad8c18f"),
        Url("http://wwwo.cvc.uab.es/cvcmuscima/Partitions_Set.zip",
            md5="dd22cff47fd50ca01ee077b757a978cd"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://www.cvc.uab.es/cvcmuscima/index_database.html",
    num_classes=len(CLASS_NAMES),
)
