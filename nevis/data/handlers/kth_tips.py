"""KTH-TIPS (Hayman, Caputo, Fritz & Eklundh, "On the significance of real-world conditions for
material classification", ECCV 2004): 10 materials, 81 colour 200×200 images each (9 scales ×
3 poses × 3 illuminations). This module also holds the logic shared with KTH-TIPS2-a and -b
(`kth_tips_2a`, `kth_tips_2b`), whose reference handler is the same.

Raw file (csc.kth.se, md5 published by the reference): `kth_tips_col_200x200.tar` with
`KTH_TIPS/<material>/<n>-scale_<s>_im_<i>_col.png`. The KTH-TIPS2 archives add one folder per
physical sample: `KTH-TIPS2-a/<material>/sample_<x>/<image>.png`.

Label rule (the reference's): the material is the folder holding the image, or, for images in a
`sample_*` folder, the folder above it. Classes are computed at extraction: the materials found,
sorted by name (the reference lists the archive's folders, also sorted; KTH-TIPS documents 10
materials, KTH-TIPS2 11). Only `.png` members are read. Recipe: no official split, random
56/12/12/20 (`random_split()`). The reference's "random_crop" preprocessing note is not a stored
transformation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "kth_tips_col_200x200.tar"
MATERIALS = ("aluminium_foil", "brown_bread", "corduroy", "cotton", "cracker", "linen",
             "orange_peel", "sandpaper", "sponge", "styrofoam")


def material_of(relative: str) -> str | None:
    """The material of an archive member (None unless it is a PNG inside a material folder)."""
    parts = relative.split("/")
    if not parts[-1].lower().endswith(".png") or parts[-1].startswith("._"):
        return None
    folders = parts[:-1]
    for i, name in enumerate(folders):
        if name.startswith("sample"):
            return folders[i - 1] if i >= 2 else None  # <top>/<material>/sample_x/...
    return folders[-1] if len(folders) >= 2 else None  # <top>/<material>/<image>


def build_materials(ctx: BuildContext, archive: str, channels: int = 3) -> Built:
    """Items of a KTH-TIPS archive: classes = the materials found, sorted."""
    root = ctx.extract(archive)
    found: list[tuple[Path, str]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        material = material_of(path.relative_to(root).as_posix())
        if material is not None:
            found.append((path, material))
    if not found:
        raise PrepareError(f"{ctx.key}: no <material>/[sample_*/]<image>.png members in "
                           f"{archive}; has the layout changed?")
    class_names = sorted({material for _, material in found})
    index = {name: i for i, name in enumerate(class_names)}
    items = [recipes.Item(path, index[material], name=path.relative_to(root).as_posix())
             for path, material in found]
    counts = {name: sum(m == name for _, m in found) for name in class_names}
    return Built(class_names, items, recipes.random_split(), channels=channels,
                 metadata={"images_per_class": counts})


def write_material_tar(path: Path, top: str, materials: Sequence[str], samples: Sequence[str],
                       per_folder: int, seed: int) -> None:
    """A KTH-TIPS-style tar: `<top>/<material>[/sample_<x>]/<image>.png` (200×200 in reality)."""
    rng = np.random.default_rng(seed)
    members = {}
    for m, material in enumerate(materials):
        for sample in samples or ("",):
            folder = f"{top}/{material}/{sample}/" if sample else f"{top}/{material}/"
            for i in range(per_folder):
                prefix = f"{m + 1}{sample[-1]}" if sample else f"{m + 1}"
                name = f"{prefix}-scale_{i + 1}_im_{i % 3 + 1}_col.png"
                members[folder + name] = fixtures.image_bytes(rng, "PNG", (12, 12))
    fixtures.write_tar(path, members)


def build(ctx: BuildContext) -> Built:
    return build_materials(ctx, ARCHIVE)


def write_fixture(folder: Path) -> None:
    write_material_tar(folder / ARCHIVE, "KTH_TIPS", MATERIALS, (), 7, seed=2004)


HANDLER = Handler(
    key="kth_tips",
    name="KTH-TIPS",
    year=2004,
    sources=(
        Url("https://www.csc.kth.se/cvap/databases/kth-tips/kth_tips_col_200x200.tar",
            md5="4f92fe540feb4f3c66938291e4516f6c"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.csc.kth.se/cvap/databases/kth-tips/index.html",
    num_classes=None,
)
