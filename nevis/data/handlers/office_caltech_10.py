"""Office-Caltech-10 (Gong, Shi, Sha & Grauman, "Geodesic Flow Kernel for Unsupervised Domain
Adaptation", CVPR 2012): the 10 object classes shared by Office-31 and Caltech-256.

Raw files (Google Drive, md5 published by the reference):

- `domain_adaptation_images.tar.gz` (Office-31, Saenko et al. 2010): JPEGs at
  `<domain>/images/<office class>/frame_<NNNN>.jpg`, domain in amazon / dslr / webcam, 31
  classes of which the 10 below are used. The reference matches the member path from its start;
  a leading folder (`domain_adaptation_images/`) is tolerated here as well.
- `256_ObjectCategories.tar` (Caltech-256, uncompressed): JPEGs at
  `256_ObjectCategories/<NNN>.<caltech class>/<NNN>_<NNNN>.jpg`; the 10 classes below are used,
  matched by the name after the number (as the reference). Members are read in place (by their
  offset in the uncompressed tar) instead of extracting the 1.2 GB archive.

Label rule: class index in the order below; Office and Caltech folder names map to the same
index (back_pack = backpack, bike = touring-bike, …). Class names are the Caltech names (the
reference's `label_str_to_id`).

Recipe (domain shift, `held_out(["caltech"])`): Office images (groups amazon, dslr, webcam) →
80/20 train/dev; Caltech images (group "caltech") → 50/50 dev_test/test. Grey Caltech images
are converted to RGB by the pipeline (channels=3), as the reference's `convert("RGB")`.
"""

from __future__ import annotations

import functools
import re
import tarfile
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import GoogleDrive

OFFICE_ARCHIVE = "domain_adaptation_images.tar.gz"
CALTECH_ARCHIVE = "256_ObjectCategories.tar"
OFFICE_DOMAINS = ("amazon", "dslr", "webcam")

# (Caltech-256 folder name, Office-31 folder name), in label order.
CLASSES = (
    ("backpack", "back_pack"),
    ("touring-bike", "bike"),
    ("calculator", "calculator"),
    ("head-phones", "headphones"),
    ("computer-keyboard", "keyboard"),
    ("laptop-101", "laptop_computer"),
    ("computer-monitor", "monitor"),
    ("computer-mouse", "mouse"),
    ("coffee-mug", "mug"),
    ("video-projector", "projector"),
)
CLASS_NAMES = tuple(caltech for caltech, _ in CLASSES)
_CALTECH_LABEL = {caltech: i for i, (caltech, _) in enumerate(CLASSES)}
_OFFICE_LABEL = {office: i for i, (_, office) in enumerate(CLASSES)}

_OFFICE_MEMBER = re.compile(r"(?:^|/)(amazon|dslr|webcam)/images/([^/]+)/frame_\d{4}\.jpg$")
_CALTECH_MEMBER = re.compile(r"^256_ObjectCategories/\d{3}\.([^/]+)/\d{3}_\d{4}\.jpg$")


def _read_span(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"{path}: truncated member at offset {offset}")
    return data


def _office_items(root: Path) -> list[recipes.Item]:
    items = []
    for path in sorted(p for p in root.rglob("*.jpg") if p.is_file()):
        match = _OFFICE_MEMBER.search(path.relative_to(root).as_posix())
        if match and match.group(2) in _OFFICE_LABEL:
            domain, name = match.group(1), match.group(2)
            items.append(recipes.Item(path, _OFFICE_LABEL[name], group=domain,
                                      name=f"{domain}/{name}/{path.name}"))
    return items


def _caltech_items(archive: Path) -> list[recipes.Item]:
    items = []
    with tarfile.open(archive, "r:") as tf:  # uncompressed: members are read by offset
        for member in tf:
            if not member.isreg():
                continue
            match = _CALTECH_MEMBER.match(member.name)
            if match and match.group(1) in _CALTECH_LABEL:
                image = functools.partial(_read_span, archive, member.offset_data, member.size)
                items.append(recipes.Item(image, _CALTECH_LABEL[match.group(1)],
                                          group="caltech", name=member.name))
    items.sort(key=lambda item: item.name)
    return items


def build(ctx: BuildContext) -> Built:
    office = _office_items(ctx.extract(OFFICE_ARCHIVE))
    caltech = _caltech_items(ctx.path(CALTECH_ARCHIVE))
    for group, found in (("office", office), ("caltech", caltech)):
        if not found:
            raise ValueError(f"{ctx.key}: no {group} images of the 10 classes found; is the "
                             "archive the expected one?")
    counts = {g: sum(item.group == g for item in office + caltech)
              for g in (*OFFICE_DOMAINS, "caltech")}
    return Built(
        CLASS_NAMES,
        office + caltech,
        recipes.held_out(["caltech"]),
        channels=3,
        metadata={"office_class_names": [office for _, office in CLASSES],
                  "images_per_domain": counts},
    )


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(10)
    office = {}
    for domain in OFFICE_DOMAINS:
        for _, name in CLASSES + (("", "ruler"),):  # ruler: an Office-31 class not used
            for k in range(1, 3):
                office[f"{domain}/images/{name}/frame_{k:04d}.jpg"] = fixtures.image_bytes(
                    rng, "JPEG", (16, 16))
    fixtures.write_tar(folder / OFFICE_ARCHIVE, office)
    numbers = {"backpack": 3, "touring-bike": 224, "calculator": 27, "head-phones": 101,
               "computer-keyboard": 45, "laptop-101": 127, "computer-monitor": 46,
               "computer-mouse": 47, "coffee-mug": 41, "video-projector": 238,
               "ak47": 1, "clutter": 257}  # the last two: Caltech-256 classes not used
    caltech = {}
    for name, n in numbers.items():
        for k in range(1, 3):
            caltech[f"256_ObjectCategories/{n:03d}.{name}/{n:03d}_{k:04d}.jpg"] = (
                fixtures.image_bytes(rng, "JPEG", (16, 16), "L" if k == 2 else "RGB"))
    fixtures.write_tar(folder / CALTECH_ARCHIVE, caltech)


HANDLER = Handler(
    key="office_caltech_10",
    name="Office Caltech",
    year=2012,
    sources=(
        GoogleDrive("1r6o0pSROcV1_VwT4oSjA2FBUSCWGuxLK", CALTECH_ARCHIVE,
                    md5="67b4f42ca05d46448c6bb8ecd2220f6d"),
        GoogleDrive("0B4IapRTv9pJ1WGZVd1VDMmhwdlE", OFFICE_ARCHIVE,
                    md5="1b536d114869a5a8aa4580b89e9758fb"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://faculty.cc.gatech.edu/~judy/domainadapt/",
    num_classes=10,
)
