"""KTH-TIPS2-a (Caputo, Hayman & Mallikarjuna, "Class-specific material categorisation", ICCV
2005): 11 materials, up to 4 physical samples each, colour 200×200 images at 9 scales under
several poses and illuminations.

Raw file (csc.kth.se, md5 published by the reference): `kth-tips2-a_col_200x200.tar` with
`KTH-TIPS2-a/<material>/sample_<x>/<image>.png`.

Label rule, class list and recipe: as KTH-TIPS (`nevis.data.handlers.kth_tips`, the
reference's shared handler): the material is the folder above `sample_*`; classes are the
materials found, sorted (KTH-TIPS2 documents 11); random 56/12/12/20 (`random_split()`), not by
sample.
"""

from __future__ import annotations

from pathlib import Path

from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.handlers.kth_tips import build_materials, write_material_tar
from nevis.data.sources import Url

ARCHIVE = "kth-tips2-a_col_200x200.tar"
MATERIALS = ("aluminium_foil", "brown_bread", "corduroy", "cork", "cotton", "cracker",
             "lettuce_leaf", "linen", "white_bread", "wood", "wool")


def build(ctx: BuildContext) -> Built:
    return build_materials(ctx, ARCHIVE)


def write_fixture(folder: Path) -> None:
    write_material_tar(folder / ARCHIVE, "KTH-TIPS2-a", MATERIALS, ("sample_a", "sample_b"), 3,
                       seed=2005)


HANDLER = Handler(
    key="kth_tips_2a",
    name="KTH-TIPS2-a",
    year=2005,
    sources=(
        Url("https://www.csc.kth.se/cvap/databases/kth-tips/" + ARCHIVE,
            md5="911eb17220748fa36e6524aea71db7d7"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.csc.kth.se/cvap/databases/kth-tips/index.html",
    num_classes=None,
)
