"""Helpers for handlers' fixture writers: small random images and archives in real layouts.

A fixture is a miniature copy of a dataset's raw files — the same archive names, folders, file
formats and annotation files as the real download, with a few generated images per class — so
that tests exercise each handler's real parsing code. Images are random noise with a random
rectangle, so no two are identical (deduplication would otherwise remove them).
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image


def random_image(
    rng: np.random.Generator, size: tuple[int, int] = (24, 32), mode: str = "RGB"
) -> Image.Image:
    """A random (height, width) image in PIL `mode` ("RGB", "L", "RGBA", "P", …)."""
    h, w = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(mode, 3)
    array = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    y, x = int(rng.integers(0, max(1, h // 2))), int(rng.integers(0, max(1, w // 2)))
    array[y : y + h // 3 + 1, x : x + w // 3 + 1] = rng.integers(0, 256, channels, dtype=np.uint8)
    pil = Image.fromarray(array[:, :, 0] if channels == 1 else array, "L" if channels == 1
                          else ("RGBA" if channels == 4 else "RGB"))
    return pil if pil.mode == mode else pil.convert(mode)


def image_bytes(
    rng: np.random.Generator,
    fmt: str = "JPEG",
    size: tuple[int, int] = (24, 32),
    mode: str = "RGB",
) -> bytes:
    """A random image encoded in `fmt` (any format Pillow writes: JPEG, PNG, PPM, PGM, BMP…)."""
    buffer = io.BytesIO()
    pil_format = {"PGM": "PPM", "PBM": "PPM"}.get(fmt.upper(), fmt.upper())
    random_image(rng, size, mode).save(buffer, format=pil_format)
    return buffer.getvalue()


def write_zip(path: str | os.PathLike, members: Mapping[str, bytes | str]) -> Path:
    """A zip archive with the given member names (folders are implied by the names)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data.encode() if isinstance(data, str) else data)
    return path


def write_tar(path: str | os.PathLike, members: Mapping[str, bytes | str]) -> Path:
    """A tar archive; compression follows the name (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    mode = "w"
    if name.endswith((".gz", ".tgz")):
        mode = "w:gz"
    elif name.endswith((".bz2", ".tbz2")):
        mode = "w:bz2"
    elif name.endswith((".xz", ".txz")):
        mode = "w:xz"
    with tarfile.open(path, mode) as tf:
        for member, data in members.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(member)
            info.size = len(raw)
            info.mtime = 0
            tf.addfile(info, io.BytesIO(raw))
    return path
