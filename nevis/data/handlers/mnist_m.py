"""MNIST-M (Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015):
MNIST digits blended over patches of BSDS500 colour photos.

Raw file: `mnist_m.tar.gz` (the authors' Google Drive copy) with
`mnist_m/mnist_m_train/<NNNNNNNN>.png` (59,001) and `mnist_m/mnist_m_test/<NNNNNNNN>.png` (9,001),
32×32 RGB PNGs, and label lists `mnist_m/mnist_m_train_labels.txt`,
`mnist_m/mnist_m_test_labels.txt` with lines `<NNNNNNNN>.png <digit>`. Both folders number their
files from 00000000.png, so a file name alone does not identify an image.

Label rule: the digit from the label list of the image's own folder. The reference merges the two
official sets and splits them at random: random 56/12/12/20 of everything (one group, so the
pipeline's exact-duplicate removal runs over the merged set, as the reference deduplicates it).

Deviation (a fix): the reference looks labels up by bare file name in one dict where the test
list overwrote the train list, so train images 00000000.png … 00009000.png got the labels of
the test images with the same names; here each image takes the label from its own list.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import GoogleDrive

ARCHIVE = "mnist_m.tar.gz"
SETS = ("train", "test")
CLASS_NAMES = tuple(str(d) for d in range(10))
_LINE = re.compile(r"^\s*(\S+\.png)\s+(\d+)\s*$")


def parse_labels(text: str, source: str) -> dict[str, int]:
    """`<file>.png <digit>` lines → {file name: digit}."""
    labels = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(
                f"{source}, line {number}: expected '<file>.png <digit>', got {line!r}"
            )
        labels[match.group(1)] = int(match.group(2))
    return labels


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE) / "mnist_m"
    items = []
    for official in SETS:
        list_file = root / f"mnist_m_{official}_labels.txt"
        folder = root / f"mnist_m_{official}"
        if not list_file.is_file() or not folder.is_dir():
            raise ValueError(
                f"{ARCHIVE}: no mnist_m/mnist_m_{official}/ with its label list — "
                "has the layout changed?"
            )
        labels = parse_labels(list_file.read_text(encoding="utf-8"), list_file.name)
        for name, label in sorted(labels.items()):
            if not 0 <= label <= 9:
                raise ValueError(f"{list_file.name}: {name} has label {label}, not a digit")
            path = folder / name
            if not path.is_file():
                raise ValueError(
                    f"{ARCHIVE}: {list_file.name} lists {name}, missing from mnist_m_{official}/"
                )
            items.append(recipes.Item(path, label, name=f"mnist_m_{official}/{name}"))
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3)


def write_fixture(folder: Path) -> None:
    """Both sets number files from 00000000.png, with different labels for the same names."""
    rng = np.random.default_rng(73)
    members: dict[str, bytes | str] = {}
    for official, per_class, shift in (("train", 5, 0), ("test", 2, 3)):
        lines = []
        for i in range(10 * per_class):
            name, digit = f"{i:08d}.png", (i + shift) % 10
            members[f"mnist_m/mnist_m_{official}/{name}"] = fixtures.image_bytes(
                rng, "PNG", (12, 12)
            )
            lines.append(f"{name} {digit}\n")
        members[f"mnist_m/mnist_m_{official}_labels.txt"] = "".join(lines)
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="mnist_m",
    name="MNIST-m",
    year=2015,
    sources=(
        GoogleDrive(
            "0B_tExHiYS-0veklUZHFYT19KYjg", ARCHIVE, md5="859df31c91afe82e80e5012ba928f279"
        ),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://yaroslav.ganin.net/",
    num_classes=10,
)
