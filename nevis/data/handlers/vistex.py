"""VisTex — the MIT Media Lab Vision Texture database (Vision and Modeling group, 1995): colour
texture images; NEVIS'22 uses the reference textures only.

Raw file (vismod.media.mit.edu, md5 published by the reference): `VisTex.tar.gz`, holding a
`VisionTexture/` folder of Unix-`compress`ed (LZW, `.tar.Z`) tar archives. Unpacked next to each
other they form `VisTex/`, where `VisTex/Images/Reference/<class>/<image>.ppm` organises the
reference textures by class — as symbolic links into folders that hold the actual images by
resolution (the reference's description).

Extraction: every inner `*.tar.Z` (or `*.tar`) is extracted safely into its own folder by
`nevis.data.archives` (libarchive decodes `compress`); a reference-texture link is then resolved
across all the extracted archives, as if they had been unpacked into one folder (as the
reference does). A link that leads nowhere stops the build.

Label rule (the reference's): the class is the path between `Images/Reference/` and the file.
Classes are computed at extraction — the classes found, sorted by name (the reference keeps the
order in which `os.walk` met them, which depends on the file system). Recipe: no official split,
random 56/12/12/20 (`random_split()`; stratified here, so every class reaches every split where
it has enough images — the reference's TODO). Its "random_crop" note is not a stored
transformation.

Unverified: the names of the inner `.tar.Z` archives and the exact link targets (the fixture
invents them: one archive of class-organised links and plain files, one of images by
resolution); the build reads any `*.tar.Z`/`*.tar` names and any relative link targets.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import tarfile
from pathlib import Path

import numpy as np

from nevis.data import archives, fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "VisTex.tar.gz"
_REFERENCE = re.compile(r"(?:^|/)Images/Reference/(.+)/[^/]+\.ppm$")
_MAX_LINKS = 32

# ---------------------------------------------------------------------------------- build


def _unpack_inner(outer: Path, scratch: Path) -> list[Path]:
    """Extracts every inner `*.tar.Z` and `*.tar` under `outer` (safely, each into its own
    folder `<name>.tar.d`); returns those folders."""
    roots = []
    for path in sorted(p for p in outer.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.name.endswith(".tar.Z"):
            tar_name = path.name[:-2]
        elif path.name.endswith(".tar"):
            tar_name = path.name
        else:
            continue
        destination = scratch / (tar_name + ".d")
        if not destination.is_dir():
            archives.extract(path, destination)
        roots.append(destination)
    return roots


def _index(roots: list[Path]) -> dict[str, Path]:
    """Relative path -> file (or link) over all roots; the first root holding a path wins."""
    index: dict[str, Path] = {}
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                path = Path(folder) / name
                index.setdefault(path.relative_to(root).as_posix(), path)
    return index


def resolve(relative: str, index: dict[str, Path]) -> Path | None:
    """The regular file a (possibly linked) path leads to, across the unpacked archives."""
    for _ in range(_MAX_LINKS):
        path = index.get(relative)
        if path is None:
            return None
        if not path.is_symlink():
            return path if path.is_file() else None
        target = os.readlink(path)
        if target.startswith("/"):
            return None
        relative = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
        if relative.startswith("../"):
            return None
    return None


def build(ctx: BuildContext) -> Built:
    outer = ctx.extract(ARCHIVE)
    inner = ctx.scratch / "vistex_inner"
    inner.mkdir(parents=True, exist_ok=True)
    top = outer / "VisionTexture"
    roots = [top if top.is_dir() else outer, *_unpack_inner(outer, inner)]
    index = _index(roots)
    found: list[tuple[Path, str, str]] = []
    dangling = []
    for relative in sorted(index):
        match = _REFERENCE.search(relative)
        if not match:
            continue
        path = resolve(relative, index)
        if path is None:
            dangling.append(relative)
            continue
        found.append((path, match.group(1), relative))
    if dangling:
        raise PrepareError(f"vistex: {len(dangling)} reference textures link to no file in the "
                           f"unpacked archives (first: {dangling[0]}).")
    if not found:
        raise PrepareError("vistex: no Images/Reference/<class>/<image>.ppm in the unpacked "
                           "archives; has the layout changed?")
    class_names = sorted({c for _, c, _ in found})
    label = {c: i for i, c in enumerate(class_names)}
    items = [recipes.Item(path, label[c], name=name) for path, c, name in found]
    return Built(class_names, items, recipes.random_split(), channels=3,
                 metadata={"inner_archives": [r.name for r in roots[1:]],
                           "images_per_class": {c: sum(x == c for _, x, _ in found)
                                                for c in class_names}})


# -------------------------------------------------------------------------------- fixture

FIXTURE_CLASSES = ("Bark", "Brick", "Fabric", "Food", "Water")


def _tar_bytes(files: dict[str, bytes], links: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
            tf.addfile(info)
    return buffer.getvalue()


def write_fixture(folder: Path) -> None:
    """Two inner archives: images by resolution, and the class-organised reference links (plus
    one plain file among them); texture scenes that are not reference textures are left out."""
    rng = np.random.default_rng(1995)
    images: dict[str, bytes] = {}
    links: dict[str, str] = {}
    plain: dict[str, bytes] = {}
    for c, name in enumerate(FIXTURE_CLASSES):
        for i in range(6):
            stem = f"{name}.{i:04d}"
            if c == 0 and i == 0:  # a plain file among the links
                plain[f"VisTex/Images/Reference/{name}/{stem}.ppm"] = fixtures.image_bytes(
                    rng, "PPM", (16, 16))
                continue
            images[f"VisTex/Images/512x512/{stem}.ppm"] = fixtures.image_bytes(
                rng, "PPM", (16, 16))
            links[f"VisTex/Images/Reference/{name}/{stem}.ppm"] = f"../../512x512/{stem}.ppm"
    images["VisTex/Images/512x512/Scene.0000.ppm"] = fixtures.image_bytes(rng, "PPM", (16, 16))
    links["VisTex/Images/Scenes/Street/Scene.0000.ppm"] = "../../512x512/Scene.0000.ppm"
    members = {
        "VisionTexture/README": "VisTex fixture: reference textures by class are links.\n",
        "VisionTexture/VisTex.Images.512x512.tar.Z": fixtures.compress_z(
            _tar_bytes(images, {})),
        "VisionTexture/VisTex.Images.Reference.tar.Z": fixtures.compress_z(
            _tar_bytes(plain, links)),
    }
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="vistex",
    name="VisTex",
    year=1995,
    sources=(Url("http://vismod.media.mit.edu/pub/VisTex/VisTex.tar.gz",
                 md5="f176ad5c9383141f981e3668b232add7"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://vismod.media.mit.edu/vismod/imagery/VisionTexture/vistex.html",
    num_classes=None,
)
