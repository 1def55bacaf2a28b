"""notMNIST (Yaroslav Bulatov, "notMNIST dataset", blog post, 2011): the letters A–J rendered
in many computer fonts, 28×28 grey.

Raw file: the Kaggle dataset `jwjohnson314/notmnist`, served as `notmnist.zip` (md5 published
by the reference). It holds `notMNIST_small/notMNIST_small/<letter>/<base64 font name>.png`
(about 18,700 images) and the large, automatically labelled set under `notMNIST_large/`, which
the reference does not use and neither do we. Two files of the small set are empty (not images)
and are left out by name, as the reference does.

Label rule: the letter folder, class names "A".."J" (index = position). Images are read from
the archive in place (no extraction of the ~500,000 large-set files). The pipeline removes
exact duplicates (the reference deduplicates too). No official split: random 56/12/12/20.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle

ARCHIVE = "notmnist.zip"
PREFIX = "notMNIST_small/notMNIST_small/"
CLASS_NAMES = tuple("ABCDEFGHIJ")
# Empty files in the small set (not decodable), left out as in the reference.
BROKEN = frozenset({
    PREFIX + "A/RGVtb2NyYXRpY2FCb2xkT2xkc3R5bGUgQm9sZC50dGY=.png",
    PREFIX + "F/Q3Jvc3NvdmVyIEJvbGRPYmxpcXVlLnR0Zg==.png",
})
_MEMBER = re.compile(re.escape(PREFIX) + r"([A-J])/[^/]+\.png$")


def build(ctx: BuildContext) -> Built:
    items = []
    skipped = 0
    with zipfile.ZipFile(ctx.path(ARCHIVE)) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            match = _MEMBER.fullmatch(info.filename)
            if info.is_dir() or not match:
                continue
            if info.filename in BROKEN:
                skipped += 1
                continue
            label = CLASS_NAMES.index(match.group(1))
            items.append(recipes.Item(zf.read(info), label, name=info.filename))
    if not items:
        raise ValueError(f"{ARCHIVE}: no images under {PREFIX}<letter>/ — has the layout changed?")
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=1,
                 metadata={"broken_files_skipped": skipped})


def write_fixture(folder: Path) -> None:
    """7 letters per class in the small set, the two empty files, and a few large-set files."""
    rng = np.random.default_rng(2011)
    members: dict[str, bytes] = {}
    for letter in CLASS_NAMES:
        for i in range(7):
            name = f"{PREFIX}{letter}/Rm9udHtpfS50dGY{letter}{i}=.png"
            members[name] = fixtures.image_bytes(rng, "PNG", (28, 28), "L")
        large = f"notMNIST_large/notMNIST_large/{letter}/TGFyZ2V{letter}.png"
        members[large] = fixtures.image_bytes(rng, "PNG", (28, 28), "L")
    for name in BROKEN:
        members[name] = b""
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="not_mnist",
    name="NotMNIST",
    year=2011,
    sources=(Kaggle("jwjohnson314/notmnist", md5="e2a47bb2a88c2c6bcae60d9f95223ace"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/jwjohnson314/notmnist",
    num_classes=10,
)
