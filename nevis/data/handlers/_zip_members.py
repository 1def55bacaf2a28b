"""Reading images in place from large zip archives (no extraction).

Several NEVIS'22 datasets come as one big zip (Kaggle downloads of 1–45 GB: NIH Chest X-ray,
AWA2, CBIS-DDSM, …). Extracting them would double the disk they take; their members are read
where they are instead. Nothing is written, so member names need no sanitising.

An archive is opened once per process (cached by path, size and modification time) and shared
by the pipeline's reader threads: `zipfile` serialises the seek+read of concurrent member reads
on one archive, and re-reading the central directory of a 100,000-member zip for every image
would take hours.
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

from nevis.data.archives import ArchiveError


@functools.lru_cache(maxsize=16)
def _open(path: str, size: int, mtime_ns: int) -> zipfile.ZipFile:
    del size, mtime_ns  # cache key only: a rewritten file is opened anew
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ArchiveError(
            f"{path} is corrupt or truncated ({type(e).__name__}: {e}). Delete it and run the "
            "same command again to fetch it anew."
        ) from e


def open_zip(archive: str | os.PathLike) -> zipfile.ZipFile:
    """The (cached, shared) open archive; do not close it."""
    stat = os.stat(archive)
    return _open(os.fspath(archive), stat.st_size, stat.st_mtime_ns)


def files(archive: str | os.PathLike) -> list[str]:
    """Names of the archive's file members (no folders), in archive order."""
    return [info.filename for info in open_zip(archive).infolist() if not info.is_dir()]


def read(archive: str | os.PathLike, member: str) -> bytes:
    """One member's bytes."""
    try:
        return open_zip(archive).read(member)
    except (zipfile.BadZipFile, EOFError) as e:
        raise ArchiveError(f"{archive}: member {member!r} is corrupt ({e}).") from e


def reader(archive: str | os.PathLike, member: str) -> Callable[[], bytes]:
    """A lazy image reference for `recipes.Item`: reads the member when called."""
    return functools.partial(read, Path(archive), member)
