"""Your own data in a stream: `--dataset=folder:PATH` and `--dataset=tfds:NAME`.

`folder:PATH` reads the layout people know from torchvision's ImageFolder:

    PATH/<class>/<image>                      no official split: random 56/12/12/20
    PATH/train/<class>/…, PATH/test/<class>/… official test: train → 70/15/15, test → test
    PATH/train/…, PATH/val/…, PATH/test/…     train → 80/20, val → dev_test, test → test
    PATH/labels.csv                           multi-label: rows `path,label` (path relative to
                                              PATH; several rows or `a;b` for several labels)

Class names are the sorted folder names (or the sorted labels of the CSV). `tfds:NAME` converts a
TFDS dataset (from `--tfds_data_dir`, or built by TFDS) with its official splits. Either is stored
under `--key` (default: the folder's or dataset's name) and can then be listed in a stream:
`python -m nevis.run --stream=prepared --config.stream.tasks=KEY[,KEY…]`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
from pathlib import Path

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built
from nevis.data.sources import PrepareError
from nevis.tasks import TaskKind, canonical_key

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm",
                  ".pbm", ".webp")
_SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _single_label(root: Path, groups: dict[str, Path]) -> tuple[list[str], list[recipes.Item]]:
    names = sorted({c.name for folder in groups.values() for c in _class_folders(folder)})
    if not names:
        raise PrepareError(f"{root} has no class folders: expected {root}/<class>/<image> "
                           "(or train/ and test/ folders holding class folders)")
    index = {name: i for i, name in enumerate(names)}
    items = []
    for group, folder in groups.items():
        for class_folder in _class_folders(folder):
            found = _images(class_folder)
            if not found:
                raise PrepareError(f"class folder {class_folder} holds no image "
                                   f"({', '.join(IMAGE_SUFFIXES)}); remove it or add images")
            items += [recipes.Item(p, index[class_folder.name], group=group, name=str(p))
                      for p in found]
    return names, items


def _multi_label(root: Path, table: Path) -> tuple[list[str], list[recipes.Item]]:
    labels: dict[str, set[str]] = {}
    with open(table, newline="") as f:
        for line, row in enumerate(csv.reader(f), 1):
            if not row or (line == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]):
                continue
            if len(row) < 2:
                raise PrepareError(f"{table}:{line}: expected `path,label`, got {row}")
            path = row[0].strip()
            if not (root / path).is_file():
                raise PrepareError(f"{table}:{line}: {root / path} does not exist")
            labels.setdefault(path, set()).update(
                x.strip() for x in row[1].split(";") if x.strip())
    names = sorted({name for values in labels.values() for name in values})
    if not names:
        raise PrepareError(f"{table} lists no labelled image")
    index = {name: i for i, name in enumerate(names)}
    items = [recipes.Item(root / p, sorted(index[n] for n in values), name=str(root / p))
             for p, values in sorted(labels.items())]
    return names, items


@dataclasses.dataclass(frozen=True)
class FolderHandler:
    """A handler (same interface as the catalog's) for an image folder on this machine."""

    key: str
    folder: Path
    name: str
    year: int
    kind: TaskKind
    sources: tuple = ()
    homepage: str = ""
    num_classes: int | None = None
    max_image_side: int | None = None
    version: str = "1.0.0"
    source: str = "folder"

    def build(self, ctx: BuildContext) -> Built:
        root = self.folder
        if not root.is_dir():
            raise PrepareError(f"{root} is not a folder")
        table = root / "labels.csv"
        if table.is_file():
            names, items = _multi_label(root, table)
            return Built(names, items, recipes.random_split(), channels=3,
                         metadata={"folder": str(root)})
        split_dirs = {_SPLIT_DIRS[p.name.lower()]: p for p in _class_folders(root)
                      if p.name.lower() in _SPLIT_DIRS}
        if split_dirs and set(split_dirs) >= {"train", "test"}:
            names, items = _single_label(root, split_dirs)
            recipe = (recipes.official_val_test() if "val" in split_dirs
                      else recipes.official_test())
        else:
            names, items = _single_label(root, {"all": root})
            recipe = recipes.random_split()
        return Built(names, items, recipe, channels=3, metadata={"folder": str(root)})

    def fixture(self, directory):
        return None


def handler_for(spec: str, key: str | None = None):
    """The handler for a `folder:PATH` or `tfds:NAME` dataset argument."""
    kind, _, value = spec.partition(":")
    if not value:
        raise ValueError(f"{spec!r}: give a path or name after '{kind}:'")
    if kind == "folder":
        folder = Path(value).expanduser().absolute()
        multi = (folder / "labels.csv").is_file()
        return FolderHandler(
            key=key or canonical_key(folder.name), folder=folder, name=folder.name,
            year=datetime.date.today().year,
            kind=TaskKind.MULTI_LABEL if multi else TaskKind.SINGLE_LABEL,
        )
    from nevis.data.handlers import tfds_backed

    return tfds_backed.user_handler(value, key)
