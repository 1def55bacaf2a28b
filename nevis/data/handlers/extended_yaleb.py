"""Extended Yale Face Database B (Lee, Ho & Kriegman, "Acquiring Linear Subspaces for Face
Recognition under Variable Lighting", IEEE TPAMI 2005): 28 subjects (yaleB11 … yaleB39, no
yaleB14), each in 9 poses under 64 illuminations, 640×480 grey PGMs.

Raw file: the Kaggle copy `souvadrahati/extended-yale-dataset-b`, served as
`extended-yale-dataset-b.zip` (md5 published by the reference, which moved to it when the UCSD
per-subject zips went offline, after checking that the files are the same). One folder per
subject, `yaleB<NN>/`, holding `yaleB<NN>_P<pose>A<±azimuth>E<±elevation>.pgm` (e.g.
`yaleB39_P03A+070E-35.pgm`), an ambient image `yaleB<NN>_P<pose>_Ambient.pgm` per pose (no
subject lit) and `.info` file lists; the ambient images and the lists are not read.

Label rule (identity): the subject of the file name; class names are the 28 subjects sorted
(the reference's list, computed from the archive's folders there). A PGM of another subject, or
one whose name does not follow the pattern, stops the build.
Recipe (bespoke, `explicit`, by pose as the reference — the frontal poses train, the extreme ones
test): P00, P02, P03, P04, P07 → train; P05 → dev; P01 → dev_test; P06, P08 → test.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

KAGGLE_REF = "souvadrahati/extended-yale-dataset-b"
ARCHIVE = "extended-yale-dataset-b.zip"
CLASS_NAMES = tuple(f"yaleB{n}" for n in range(11, 40) if n != 14)
_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}
SPLIT_OF_POSE = {
    "P00": "train", "P02": "train", "P03": "train", "P04": "train", "P07": "train",
    "P05": "dev", "P01": "dev_test", "P06": "test", "P08": "test",
}
_IMAGE = re.compile(r"^(yaleB\d{2})_(P\d{2})A[+-]\d{3}E[+-]\d{2}\.pgm$")


def parse_name(filename: str) -> tuple[int, str] | None:
    """(label, split) of a face image; None for ambient images. Other names are errors."""
    if filename.endswith("_Ambient.pgm"):
        return None
    match = _IMAGE.match(filename)
    if match is None or match.group(1) not in _INDEX or match.group(2) not in SPLIT_OF_POSE:
        raise PrepareError(f"extended_yaleb: unexpected image name {filename!r} (expected "
                           "yaleB<11..39>_P<00..08>A<±azimuth>E<±elevation>.pgm).")
    return _INDEX[match.group(1)], SPLIT_OF_POSE[match.group(2)]


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items, ambient = [], 0
    for path in sorted(root.rglob("*.pgm"), key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file() or path.name.startswith("._"):
            continue
        parsed = parse_name(path.name)
        if parsed is None:
            ambient += 1
            continue
        label, split = parsed
        items.append(recipes.Item(path, label, split=split,
                                  name=path.relative_to(root).as_posix()))
    if not items:
        raise PrepareError(f"extended_yaleb: no yaleB<NN>_P<pose>….pgm images in {ARCHIVE}.")
    return Built(CLASS_NAMES, items, recipes.explicit(), channels=1,
                 metadata={"images": len(items), "ambient_images_skipped": ambient,
                           "split_of_pose": SPLIT_OF_POSE})


def write_fixture(folder: Path) -> None:
    """Subjects yaleB11, yaleB12, yaleB15 and yaleB39: one image per pose (16×12 PGMs), an
    ambient image and an info list each."""
    rng = np.random.default_rng(2005)
    members: dict[str, bytes | str] = {}
    for subject in ("yaleB11", "yaleB12", "yaleB15", "yaleB39"):
        for pose in sorted(SPLIT_OF_POSE):
            azimuth, elevation = rng.integers(-130, 131), rng.integers(-40, 91)
            name = f"{subject}_{pose}A{azimuth:+04d}E{elevation:+03d}.pgm"
            members[f"{subject}/{name}"] = fixtures.image_bytes(rng, "PGM", (12, 16), "L")
        members[f"{subject}/{subject}_P00_Ambient.pgm"] = fixtures.image_bytes(
            rng, "PGM", (12, 16), "L")
        members[f"{subject}/{subject}_P00.info"] = "".join(
            f"{name.split('/')[-1]}\n" for name in members if name.startswith(subject))
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="extended_yaleb",
    name="Extended YaleB",
    year=2005,
    sources=(Kaggle(KAGGLE_REF, md5="ef37284be91fe0c81dcd96baa948a2db"),),
    build=build,
    write_fixture=write_fixture,
    homepage="http://vision.ucsd.edu/~leekc/ExtYaleDatabase/ExtYaleB.html",
    num_classes=28,
    notes="UCSD per-subject zips offline; the Kaggle copy the reference moved to.",
)
