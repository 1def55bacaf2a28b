"""Graz-02 (Opelt et al., "Generic object recognition with boosting", PAMI 2006), as IG02.

The images come in the INRIA annotation of Graz-02, IG02 v1.0 (Marszałek & Schmid, CVPR 2007):
bikes, cars and people in street scenes.

Raw files (lear.inrialpes.fr, md5 published by the reference): `ig02-v1.0-<class>.zip` for
class in bikes, cars, people. Each holds `<class>/<name>.image.png` (the images), object masks
beside them (`<class>/<name>.mask.<k>.png`, not read) and the official lists
`<class>_train.txt` / `<class>_test.txt` (one image name per line, not read: see below).

Classes: bikes (0), cars (1), people (2). Label rule: the image's folder. Recipe: random
56/12/12/20 over every `*.image.png` of the three archives. The reference chains the train list
with a second pass that (by a bug in its split test) takes every image, then removes exact
duplicates: the result is all images, each once, which is what this handler lists (the pipeline
removes exact duplicates itself).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

CLASS_NAMES = ("bikes", "cars", "people")
IMAGE_SUFFIX = ".image.png"
_URL = "http://lear.inrialpes.fr/people/marszalek/data/ig02/ig02-v1.0-{}.zip"
_MD5 = {
    "bikes": "13266fdf968176fa3aebdd439184254f",
    "cars": "34de933832755ee009c6f0e9d9c6426e",
    "people": "f80d8d21f018197979c72b977986fd2f",
}


def archive(class_name: str) -> str:
    return f"ig02-v1.0-{class_name}.zip"


def build(ctx: BuildContext) -> Built:
    items: list[recipes.Item] = []
    for label, class_name in enumerate(CLASS_NAMES):
        root = ctx.extract(archive(class_name))
        images = sorted((root / class_name).glob(f"*{IMAGE_SUFFIX}"))
        if not images:
            raise ValueError(f"ig02: no {class_name}/*{IMAGE_SUFFIX} in {archive(class_name)}.")
        items += [recipes.Item(p, label, name=f"{class_name}/{p.name}") for p in images]
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3)


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(2)
    stems = {"bikes": "bike", "cars": "carsgraz", "people": "person"}
    for class_name in CLASS_NAMES:
        names = [f"{stems[class_name]}_{i:03d}" for i in range(1, 7)]
        members: dict[str, bytes | str] = {}
        for i, name in enumerate(names):
            members[f"{class_name}/{name}{IMAGE_SUFFIX}"] = fixtures.image_bytes(
                rng, "PNG", (18, 24))
            if i < 2:
                members[f"{class_name}/{name}.mask.0.png"] = fixtures.image_bytes(
                    rng, "PNG", (18, 24), "L")
        members[f"{class_name}_train.txt"] = "".join(f"{n}\n" for n in names[::2])
        members[f"{class_name}_test.txt"] = "".join(f"{n}\n" for n in names[1::2])
        fixtures.write_zip(folder / archive(class_name), members)


HANDLER = Handler(
    key="ig02",
    name="Graz-02",
    year=2006,
    sources=tuple(Url(_URL.format(c), md5=_MD5[c]) for c in CLASS_NAMES),
    build=build,
    write_fixture=write_fixture,
    homepage="http://lear.inrialpes.fr/people/marszalek/data/ig02/",
    num_classes=3,
)
