"""IAPR TC-12 with the SAIAPR TC-12 region annotations (images: Grubinger, Clough, Müller &
Deselaers, "The IAPR TC-12 benchmark", 2006; labels and splits: Escalante et al., "The segmented
and annotated IAPR TC-12 benchmark", CVIU 2010): 20,000 natural photographs, multi-label over
the SAIAPR vocabulary (276 words; 255 are used).

Raw file: the Kaggle dataset `nastyatima/iapr-tc12` (needs Kaggle credentials; md5 of the
archive Kaggle served, published by the reference), `iapr-tc12.zip`, holding the IAPR TC-12
images (`iaprtc12/images/<NN>/<id>.jpg`, with text annotations that are not read) and the SAIAPR
release `saiaprtc12ok/`:
- `benchmark/wlist.txt`: `<word id>\\t<word>` per line (ids from 1);
- `benchmark/saiapr_tc-12/<NN>/labels.txt` (NN = 00..40): `<image id> <region id> <word id>`
  per segmented region; the folders also hold a second copy of the images
  (`<NN>/images/<id>.jpg`, not read, as in the reference) and segmentation masks;
- `matlab/matlab/{training,validation,testing}.mat`: the official image ids of each split, in
  the variable of the same name.

Label rule: an image's labels are the words of all its regions (word id - 1). Classes: the
vocabulary of `wlist.txt`, computed at extraction (index = word id - 1; the reference counts
its distinct words). Images are read in place from the zip. Recipe (the reference's): the
official training + validation images only, random 56/12/12/20 (`random_split()`; unstratified,
as the labels are multi-label); the official testing images are not used.

Deviation (a reference bug, fixed here): the reference meant to collect every region's word
(its docstring: "there could be a variable (>1) number of labels per image") but, for every
region after an image's first, replaces the list with that region's word, so each image keeps
only its last region's label. Here each image gets the set of its regions' words; the metadata
counts the images with more than one. Images without any labelled region (the reference would
stop) are skipped and counted.

Unverified: the top folder of the IAPR TC-12 images in the Kaggle archive (`iaprtc12/`, as
other loaders of this Kaggle copy use); the build takes any `…/images/<id>.jpg` outside
`saiaprtc12ok/`, as the reference does, and finds the SAIAPR files at the archive's top (the
reference's paths) or under one top folder.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.handlers.wiki_paintings_style import ZipReader
from nevis.data.sources import Kaggle, PrepareError
from nevis.tasks import TaskKind

ARCHIVE = "iapr-tc12.zip"
SAIAPR = "saiaprtc12ok"
WORDS = f"{SAIAPR}/benchmark/wlist.txt"
SPLIT_FILES = {name: f"{SAIAPR}/matlab/matlab/{name}.mat"
               for name in ("training", "validation", "testing")}
_LABELS = re.compile(rf"(?:^|/){SAIAPR}/benchmark/saiapr_tc-12/[^/]+/labels\.txt$")
_IMAGE = re.compile(r"(?:^|/)images/(?:[^/]+/)*(\d+)\.jpg$", re.IGNORECASE)


def read_words(text: str) -> list[str]:
    """Class names by word id - 1 from `wlist.txt` (ids never listed get a placeholder)."""
    words: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip().isdigit():
            continue
        words[int(fields[0])] = fields[1].strip() or " "
    if not words:
        raise PrepareError(f"iaprtc12: {WORDS} lists no words.")
    return [words.get(i, f"unlisted_{i}") for i in range(1, max(words) + 1)]


def read_region_labels(texts: list[str]) -> dict[int, set[int]]:
    """Image id -> word indices (word id - 1) of its regions, from the `labels.txt` files."""
    labels: dict[int, set[int]] = {}
    for text in texts:
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            image_id, word = int(float(fields[0])), int(float(fields[2])) - 1
            labels.setdefault(image_id, set()).add(word)
    return labels


def read_ids(data: bytes, name: str) -> list[int]:
    """The image ids of one split `.mat` file (variable `name`, or its only variable)."""
    mat = scipy.io.loadmat(io.BytesIO(data))
    keys = [k for k in mat if not k.startswith("__")]
    key = name if name in mat else (keys[0] if len(keys) == 1 else None)
    if key is None:
        raise PrepareError(f"iaprtc12: {name}.mat has no variable {name!r} (has {keys}).")
    return [int(v) for v in np.asarray(mat[key]).reshape(-1)]


def _find(names: list[str], path: str) -> str:
    """The member at `path`, or under one top folder (`<top>/<path>`)."""
    if path in names:
        return path
    nested = [n for n in names if n.endswith("/" + path) and n.count("/") == path.count("/") + 1]
    if len(nested) != 1:
        raise PrepareError(f"iaprtc12: {ARCHIVE} holds no {path}.")
    return nested[0]


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    with zipfile.ZipFile(archive) as zf:
        names = sorted(zf.namelist())
        class_names = read_words(zf.read(_find(names, WORDS)).decode("utf-8", errors="replace"))
        ids = {name: read_ids(zf.read(_find(names, member)), name)
               for name, member in SPLIT_FILES.items()}
        label_files = [n for n in names if _LABELS.match(n)]
        if not label_files:
            raise PrepareError(f"iaprtc12: no {SAIAPR}/benchmark/saiapr_tc-12/<NN>/labels.txt.")
        labels = read_region_labels([zf.read(n).decode("utf-8", errors="replace")
                                     for n in label_files])
    out_of_range = sorted({w for ws in labels.values() for w in ws
                           if not 0 <= w < len(class_names)})
    if out_of_range:
        raise PrepareError(f"iaprtc12: word ids {[w + 1 for w in out_of_range[:5]]} of the "
                           f"labels are not in {WORDS}.")
    wanted = set(ids["training"]) | set(ids["validation"])
    reader = ZipReader(archive)
    items, seen, unlabelled = [], set(), 0
    for name in names:
        match = _IMAGE.search(name)
        if not match or SAIAPR in name:  # the SAIAPR folders' copy is not read
            continue
        image_id = int(match.group(1))
        if image_id not in wanted or image_id in seen:
            continue
        seen.add(image_id)
        if not labels.get(image_id):
            unlabelled += 1
            continue
        items.append(recipes.Item(reader.member(name), sorted(labels[image_id]), name=name))
    if not items:
        raise PrepareError(f"iaprtc12: no …/images/<id>.jpg of the training/validation ids "
                           f"outside {SAIAPR}/; has the layout changed?")
    return Built(class_names, items, recipes.random_split(), channels=3, metadata={
        "official_ids": {k: len(v) for k, v in ids.items()},
        "images": len(items),
        "listed_without_image": len(wanted - seen),
        "skipped_without_labels": unlabelled,
        "images_with_several_labels": sum(len(item.label) > 1 for item in items),
        "words_used": len({w for ws in labels.values() for w in ws}),
    })


# ------------------------------------------------------------------------------------- fixture

FIXTURE_WORDS = 276


def _mat(name: str, values: list[int]) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {name: np.asarray(values, dtype=np.float64).reshape(1, -1)})
    return buffer.getvalue()


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2010)
    members: dict[str, bytes | str] = {}
    words = "".join(f"{i}\tword_{i}\n" for i in range(1, FIXTURE_WORDS + 1))
    members[WORDS] = words
    members[f"{SAIAPR}/matlab/wlist100.txt"] = words  # another vocabulary file, not read
    image_ids = list(range(25, 65))
    labels: dict[str, list[str]] = {}
    for n, image_id in enumerate(image_ids):
        nn = f"{n % 2:02d}"
        jpeg = fixtures.image_bytes(rng, "JPEG", (18, 24))
        members[f"iaprtc12/images/{nn}/{image_id}.jpg"] = jpeg
        members[f"{SAIAPR}/benchmark/saiapr_tc-12/{nn}/images/{image_id}.jpg"] = jpeg
        members[f"iaprtc12/annotations_complete_eng/{nn}/{image_id}.eng"] = (
            f"<DOC>\n<DOCNO>annotations/{nn}/{image_id}.eng</DOCNO>\n"
            f"<IMAGE>images/{nn}/{image_id}.jpg</IMAGE>\n</DOC>\n")
        regions = int(rng.integers(1, 4))
        for region in range(1, regions + 1):
            word = int(rng.integers(1, 12))
            labels.setdefault(nn, []).append(f"{image_id} {region} {word}")
    for nn, lines in labels.items():
        members[f"{SAIAPR}/benchmark/saiapr_tc-12/{nn}/labels.txt"] = "\n".join(lines) + "\n"
    members[f"{SAIAPR}/benchmark/saiapr_tc-12/00/segmentation_masks/25_1.mat"] = _mat(
        "segimg_t", [0, 1, 1, 0])
    members[SPLIT_FILES["training"]] = _mat("training", image_ids[:25])
    members[SPLIT_FILES["validation"]] = _mat("validation", image_ids[25:35])
    members[SPLIT_FILES["testing"]] = _mat("testing", image_ids[35:])
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="iaprtc12",
    name="IAPRTC-12",
    year=2010,
    sources=(Kaggle("nastyatima/iapr-tc12", md5="ee251615ac2dbb55eea5a7e5e710740a"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.imageclef.org/SIAPRdata",
    num_classes=None,
    kind=TaskKind.MULTI_LABEL,
)
