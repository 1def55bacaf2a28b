"""WikiArt style classification (Tan, Chan, Aguirre & Tanaka, "Ceci n'est pas une pipe: a deep
convolutional network for fine-art paintings classification", ICIP 2016 — the ArtGAN release of
the WikiArt paintings; the catalog's "Wikipaintings"): 27 art styles, about 81,000 paintings.

Raw files (um.edu.my, md5 published by the reference):
- `wikiart.zip` (about 25 GB): `wikiart/<Style>/<artist>_<title>.jpg`;
- `wikiart_csv.zip`: the official splits of the three ArtGAN tasks, `{artist,style,genre}_
  {train,val}.csv` at its top, one `<Style>/<file>.jpg,<class id>` row per painting.

Label rule: the class id of the `style_*.csv` row; class names are the reference's STYLE list
(index = id). Images are read in place from the zip (no 25 GB extraction), one open handle per
thread, and downscaled by the pipeline to a longest side of 256 (`max_image_side`, as the
reference; Pillow's thumbnail may round a side one pixel differently from the reference's
`int(factor * side)`). Recipe: `official_test()` — style_train.csv → 70/15/15 train/dev/dev_test,
style_val.csv → test.

The reference skips the "very few" members that fail to decompress (zlib error, bad CRC); the
build reads every listed member once (in parallel) and skips those that fail, naming them in the
metadata. Deviations: the reference reads the CSVs with pandas, which takes the first row as a
header and so drops the first painting of each list; here a first row is a header only when its
class field is not a number. Listed paintings missing from the zip are skipped and counted (the
reference would stop).
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

IMAGES_ARCHIVE = "wikiart.zip"
CSV_ARCHIVE = "wikiart_csv.zip"
IMAGE_FOLDER = "wikiart"
TASK = "style"
LISTS = {"train": f"{TASK}_train.csv", "test": f"{TASK}_val.csv"}
MAX_SIDE = 256
CLASS_NAMES = (
    "Abstract_Expressionism", "Action_painting", "Analytical_Cubism", "Art_Nouveau", "Baroque",
    "Color_Field_Painting", "Contemporary_Realism", "Cubism", "Early_Renaissance",
    "Expressionism", "Fauvism", "High_Renaissance", "Impressionism",
    "Mannerism_Late_Renaissance", "Minimalism", "Naive_Art_Primitivism", "New_Realism",
    "Northern_Renaissance", "Pointillism", "Pop_Art", "Post_Impressionism", "Realism", "Rococo",
    "Romanticism", "Symbolism", "Synthetic_Cubism", "Ukiyo_e",
)
_READ_ERRORS = (zlib.error, zipfile.BadZipFile, EOFError, NotImplementedError, OSError)


class ZipReader:
    """Reads members of one zip in place; each thread keeps its own open handle."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()

    def read(self, member: str) -> bytes:
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = self._local.zf = zipfile.ZipFile(self.path)
        return zf.read(member)

    def readable(self, member: str) -> bool:
        try:
            self.read(member)  # decompresses and checks the CRC
        except _READ_ERRORS:
            return False
        return True

    def member(self, member: str):
        """A zero-argument reader of one member (an item's lazy image)."""
        return lambda: self.read(member)


def read_rows(text: str, name: str) -> list[tuple[str, int]]:
    """(image path, class id) rows of an ArtGAN split CSV; a non-numeric first row is a header."""
    rows = []
    for i, row in enumerate(csv.reader(io.StringIO(text))):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise PrepareError(f"wiki_paintings_style: {name} row {i + 1} has no class field.")
        path, label = ",".join(row[:-1]).strip(), row[-1].strip()
        if not label.lstrip("-").isdigit():
            if i == 0:
                continue  # a header row
            raise PrepareError(f"wiki_paintings_style: {name} row {i + 1} has the class "
                               f"{label!r}.")
        rows.append((path, int(label)))
    return rows


def build(ctx: BuildContext) -> Built:
    with zipfile.ZipFile(ctx.path(CSV_ARCHIVE)) as zf:
        names = {n.rsplit("/", 1)[-1]: n for n in zf.namelist()}
        lists = {}
        for group, csv_name in LISTS.items():
            if csv_name not in names:
                raise PrepareError(f"wiki_paintings_style: {CSV_ARCHIVE} holds no {csv_name}.")
            lists[group] = read_rows(zf.read(names[csv_name]).decode("utf-8-sig"), csv_name)
    archive = ctx.path(IMAGES_ARCHIVE)
    with zipfile.ZipFile(archive) as zf:
        members = set(zf.namelist())
    reader = ZipReader(archive)
    wanted: list[tuple[str, int, str]] = []
    missing: list[str] = []
    for group, rows in lists.items():
        for path, label in rows:
            if not 0 <= label < len(CLASS_NAMES):
                raise PrepareError(f"wiki_paintings_style: class {label} of {path} is outside "
                                   f"0..{len(CLASS_NAMES) - 1}.")
            member = f"{IMAGE_FOLDER}/{path}"
            if member not in members:
                # Zips without the UTF-8 flag: Python reads their names as cp437.
                member = member.encode("utf-8").decode("cp437")
            if member in members:
                wanted.append((member, label, group))
            else:
                missing.append(path)
    workers = min(16, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        readable = list(pool.map(reader.readable, [m for m, _, _ in wanted], chunksize=64))
    unreadable = [m for (m, _, _), ok in zip(wanted, readable, strict=True) if not ok]
    items = [recipes.Item(reader.member(m), label, group=group, name=m)
             for (m, label, group), ok in zip(wanted, readable, strict=True) if ok]
    counts = {g: sum(item.group == g for item in items) for g in LISTS}
    if not all(counts.values()):
        raise PrepareError(f"wiki_paintings_style: no readable painting for {counts}; is "
                           f"{IMAGES_ARCHIVE} complete?")
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images": counts, "unreadable_members": unreadable,
                           "listed_but_missing": len(missing),
                           "first_missing": missing[:5]})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2016)
    styles = (0, 4, 12, 20, 26)  # a subset of the 27 styles
    members: dict[str, bytes | str] = {}
    rows: dict[str, list[str]] = {"train": [], "val": []}
    for s in styles:
        for i in range(8):
            path = f"{CLASS_NAMES[s]}/artist-{i % 3}_painting-{s}-{i}.jpg"
            size = (12, 300) if (s, i) == (0, 0) else (20, 16)  # one wider than 256
            members[f"{IMAGE_FOLDER}/{path}"] = fixtures.image_bytes(rng, "JPEG", size)
            rows["train" if i < 6 else "val"].append(f"{path},{s}")
    fixtures.write_zip(folder / IMAGES_ARCHIVE, members)
    csvs: dict[str, bytes | str] = {}
    for part, lines in rows.items():
        csvs[f"style_{part}.csv"] = "\n".join(lines) + "\n"
        # The artist and genre tasks' lists sit alongside (not read); ids are per task.
        csvs[f"genre_{part}.csv"] = "\n".join(f"{x.split(',')[0]},{i % 10}"
                                              for i, x in enumerate(lines)) + "\n"
        csvs[f"artist_{part}.csv"] = "\n".join(f"{x.split(',')[0]},{i % 23}"
                                               for i, x in enumerate(lines)) + "\n"
    fixtures.write_zip(folder / CSV_ARCHIVE, csvs)


HANDLER = Handler(
    key="wiki_paintings_style",
    name="Wikipaintings",
    year=2016,
    sources=(
        Url("http://web.fsktm.um.edu.my/~cschan/source/ICIP2017/wikiart.zip",
            md5="c6b43cbcd474b875a5626ffde3b627e1"),
        Url("http://web.fsktm.um.edu.my/~cschan/source/ICIP2017/wikiart_csv.zip",
            md5="0d221e7cb0812da6b59044cfca9aafee"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://github.com/cs-chan/ArtGAN/tree/master/WikiArt%20Dataset",
    num_classes=len(CLASS_NAMES),
    max_image_side=MAX_SIDE,
)
