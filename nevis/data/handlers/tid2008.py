"""TID2008 (Ponomarenko, Lukin, Zelensky, Egiazarian, Carli & Battisti, "TID2008 – A Database
for Evaluation of Full-Reference Visual Quality Assessment Metrics", Advances of Modern
Radioelectronics 2009): 25 reference images, each distorted by 17 distortion types at 4 levels
(1,700 distorted 512×384 BMPs). NEVIS'22 turns quality into 5-way classification.

Raw file: `tid2008.rar` (ponomarenko.info, md5 published by the reference), a RAR archive with
the distorted images `i<SS>_<DD>_<L>.bmp` (subject SS = 01..25, distortion DD, level L; the
reference lower-cases names before matching them, so some may start with a capital I), the
reference images, the subjective scores (`mos.txt`, not read) and the values of several quality
metrics, among them `MSSIM.TXT`: the MS-SSIM of every distorted image, one value a line, in
subject, distortion, level order. Folder names inside the archive are not relied on (TID2013's
are `distorted_images/`, `reference_images/`, `metrics_values/`; the fixture uses them).

Label rule (as the reference, which scores images by MS-SSIM, not by the subjective MOS): the
1,700 values are sorted and cut into 5 buckets of 340; an image's label is the first bucket
holding its value (so ties at a boundary fall in the lower bucket). Bucket 0 holds the lowest
MS-SSIM (the most distorted images). Class names give each bucket's MS-SSIM range. Files are
matched by lower-cased name anywhere in the archive (the reference extracts with `unrar e`,
which flattens folders; it only takes names ending in lower-case "bmp"). No official split:
random 56/12/12/20.

The RAR archive is extracted by `nevis.data.archives` (libarchive, with the same member checks
as zip and tar); the fixture is a stored RAR 4 archive (`fixtures.write_rar`).
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

NUM_CLASSES = 5
NUM_SUBJECTS = 25

def distorted_names(num_types: int, num_levels: int) -> list[str]:
    """Distorted image names in the order of the metric files' lines."""
    return [f"i{s:02d}_{d:02d}_{level}.bmp" for s in range(1, NUM_SUBJECTS + 1)
            for d in range(1, num_types + 1) for level in range(1, num_levels + 1)]


def quality_buckets(values: list[float]) -> tuple[list[int], list[str]]:
    """The reference's 5 buckets: (label of each value, class names with the value ranges)."""
    ordered = sorted(values)
    per_bucket = len(ordered) // NUM_CLASSES
    labels = [bisect.bisect_left(ordered, v) // per_bucket for v in values]
    if max(labels) >= NUM_CLASSES:
        raise ValueError(f"{len(values)} values do not cut into {NUM_CLASSES} equal buckets.")
    names = []
    for bucket in range(NUM_CLASSES):
        members = [v for v, b in zip(values, labels, strict=True) if b == bucket]
        names.append(f"MS-SSIM {min(members):.4f}-{max(members):.4f}" if members
                     else f"MS-SSIM bucket {bucket}")
    return labels, names


def make_build(archive: str, num_types: int, num_levels: int) -> Callable[[BuildContext], Built]:
    def build(ctx: BuildContext) -> Built:
        root = ctx.extract(archive)
        files = sorted(p for p in root.rglob("*") if p.is_file())
        metric_files = [p for p in files if p.name.lower() == "mssim.txt"]
        if len(metric_files) != 1:
            raise ValueError(f"{archive}: expected one MSSIM metric file, found "
                             f"{[p.relative_to(root).as_posix() for p in metric_files]}.")
        names = distorted_names(num_types, num_levels)
        lines = [line for line in metric_files[0].read_text().splitlines() if line.strip()]
        if len(lines) < len(names):
            raise ValueError(f"{metric_files[0].name}: {len(lines)} values, expected one per "
                             f"distorted image ({len(names)}).")
        labels, class_names = quality_buckets([float(line) for line in lines[: len(names)]])
        label_of = dict(zip(names, labels, strict=True))
        items, seen, duplicates = [], set(), 0
        for path in files:
            name = path.name.lower()
            if name not in label_of:
                continue
            if name in seen:
                duplicates += 1
                continue
            seen.add(name)
            items.append(recipes.Item(path, label_of[name], name=path.relative_to(root)
                                      .as_posix()))
        if not items:
            raise ValueError(f"{archive}: no distorted images named like {names[0]}.")
        return Built(class_names, items, recipes.random_split(), channels=3,
                     metadata={"images": len(items), "scored_images": len(names),
                               "duplicate_names": duplicates, "score": "MS-SSIM"})

    return build


def make_fixture_writer(archive: str, metric_file: str, num_types: int, num_levels: int,
                        seed: int) -> Callable[[Path], None]:
    def write_fixture(folder: Path) -> None:
        """Every metric value (4 decimals, so some tie) but only 40 distorted 8×8 BMPs, 8 per
        bucket (one with a capital I), two reference images and the MOS file."""
        rng = np.random.default_rng(seed)
        names = distorted_names(num_types, num_levels)
        values = np.round(rng.uniform(0.3, 1.0, len(names)), 4)
        labels, _ = quality_buckets(values.tolist())
        members: dict[str, bytes] = {
            f"metrics_values/{metric_file}": "".join(f"{v:.4f}\n" for v in values).encode(),
            "mos.txt": "".join(f"{v:.5f}\n" for v in rng.uniform(0, 9, len(names))).encode(),
        }
        for subject in (1, 25):
            members[f"reference_images/I{subject:02d}.BMP"] = _bmp(rng)
        chosen = [i for b in range(NUM_CLASSES) for i in np.flatnonzero(np.array(labels) == b)[:8]]
        for k, i in enumerate(sorted(chosen)):
            name = names[i] if k else "I" + names[i][1:]
            members[f"distorted_images/{name}"] = _bmp(rng)
        fixtures.write_rar(folder / archive, members)

    return write_fixture


def _bmp(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    fixtures.random_image(rng, (8, 8)).save(buffer, format="BMP")
    return buffer.getvalue()


ARCHIVE = "tid2008.rar"
NUM_TYPES, NUM_LEVELS = 17, 4

HANDLER = Handler(
    key="tid2008",
    name="TID2008",
    year=2009,
    sources=(Url("https://ponomarenko.info/tid/tid2008.rar",
                 md5="732aeec405a57b589aeee4f1c58a4c1b"),),
    build=make_build(ARCHIVE, NUM_TYPES, NUM_LEVELS),
    write_fixture=make_fixture_writer(ARCHIVE, "MSSIM.TXT", NUM_TYPES, NUM_LEVELS, seed=2008),
    homepage="https://ponomarenko.info/tid2008.htm",
    num_classes=NUM_CLASSES,
)
