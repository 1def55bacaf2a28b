"""What a NEVIS'22 dataset handler is: one module per dataset, one `HANDLER` in it.

A handler carries the facts of its dataset — catalog key, paper year, raw files with their
published checksums, the archive layout, the label list, the task kind, the split recipe — and a
fixture writer that fabricates a miniature copy of the raw files (same names, folders, formats and
annotation files, a few images per class) so that every handler is tested through the real
preparation path without a download.

`build(ctx)` reads the raw files (`ctx.path(filename)`, `ctx.extract(filename)`) and returns a
`Built`: the class names and the dataset as `Item`s plus a recipe (`nevis.data.recipes`), which
the pipeline deduplicates, splits and writes. Handlers never write to the data directory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nevis.data import archives
from nevis.data.recipes import Item, Recipe
from nevis.data.sources import Source
from nevis.tasks import TaskKind


@dataclasses.dataclass
class Built:
    """A handler's result: the dataset as items plus the recipe that splits them.

    class_names: one name per class index (their count is the task's number of classes).
    channels: 1 for grey datasets, 3 otherwise (images are converted to match).
    metadata: JSON-able facts computed at extraction, stored in the dataset's manifest.
    deduplicate: remove exact duplicates within each group before splitting (reads every image
        once more); TFDS-backed datasets keep their published splits and skip it, as the
        reference does. Duplicates across the stored splits are counted either way.
    """

    class_names: Sequence[str]
    items: Sequence[Item]
    recipe: Recipe
    channels: int = 3
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    deduplicate: bool = True


@dataclasses.dataclass
class BuildContext:
    """What a handler's `build` may use: its fetched files and a scratch folder."""

    key: str
    files: Mapping[str, Path]  # source filename -> local path (verified, or unverified on request)
    scratch: Path  # extraction folder for this dataset; removed after a successful build
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def path(self, filename: str) -> Path:
        """The local path of one of the handler's source files."""
        if filename not in self.files:
            raise KeyError(
                f"{self.key}: no source file named {filename!r}; the handler's sources give "
                f"{sorted(self.files)}."
            )
        return self.files[filename]

    def extract(self, filename: str) -> Path:
        """Safely extracts a source archive (once) and returns the folder it went to."""
        destination = self.scratch / (filename + ".d")
        if not destination.is_dir():
            archives.extract(self.path(filename), destination)
        return destination


@dataclasses.dataclass(frozen=True)
class Handler:
    """One dataset of the NEVIS'22 catalog.

    key: the catalog key prefix (`nevis.streams` catalog), e.g. "coil20".
    name: the dataset's display name; year: its paper's year (not its stream year).
    sources: raw files (nevis.data.sources), fetched before `build` runs.
    build: raw files -> Built (items, class names, recipe).
    write_fixture: writes a miniature copy of every source file into the given folder, under
        the sources' file names (the `--mirror` layout for this dataset).
    homepage: where a person learns about the dataset (and fetches manual files).
    num_classes: as published; None when computed at extraction (then taken from `Built`).
    max_image_side: images with a longer side are downscaled to it (AWA2, WikiArt: 256).
    kind: the task kind; version: bump when the stored result changes.
    """

    key: str
    name: str
    year: int
    sources: tuple[Source, ...]
    build: Callable[[BuildContext], Built]
    write_fixture: Callable[[Path], None]
    homepage: str
    num_classes: int | None = None
    kind: TaskKind = TaskKind.SINGLE_LABEL
    max_image_side: int | None = None
    version: str = "1.0.0"
    notes: str = ""

    def fixture(self, directory: str | os.PathLike) -> Path:
        """Writes this handler's fixture into `directory/<key>/` and returns that folder."""
        folder = Path(directory) / self.key
        folder.mkdir(parents=True, exist_ok=True)
        self.write_fixture(folder)
        missing = [s.filename for s in self.sources if not (folder / s.filename).exists()]
        if missing:
            raise RuntimeError(f"{self.key}: the fixture writer did not write {missing}.")
        return folder
