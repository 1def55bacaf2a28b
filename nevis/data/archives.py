"""Safe archive extraction: nothing is written outside the extraction folder.

Downloaded archives are untrusted input. A member with an absolute path, a `..` component, or a
link (symbolic or hard) pointing outside the folder is refused with an error naming the archive
and the member; tar archives additionally go through Python's `filter="data"`. A truncated or
corrupt archive raises `ArchiveError` naming the file and the fix.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath


class ArchiveError(Exception):
    """An archive is corrupt, truncated, of an unknown kind, or hostile."""


def _check_member(archive: Path, name: str) -> None:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        raise ArchiveError(f"{archive}: refusing member {name!r} with an absolute path.")
    if ".." in PurePosixPath(normal).parts:
        raise ArchiveError(f"{archive}: refusing member {name!r}, which escapes the folder.")


def _corrupt(archive: Path, error: Exception) -> ArchiveError:
    return ArchiveError(
        f"{archive} is corrupt or truncated ({type(error).__name__}: {error}). Delete it and "
        "run the same command again to fetch it anew."
    )


def archive_kind(path: Path) -> str | None:
    """'zip', 'tar', 'gz', 'bz2', 'xz' (single compressed files) or None, from the name."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    for suffix, kind in ((".gz", "gz"), (".bz2", "bz2"), (".xz", "xz")):
        if name.endswith(suffix):
            return kind
    return None


def extract(archive: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Extracts `archive` into `destination` (created) and returns it.

    Extraction goes to a temporary sibling folder that is renamed into place at the end, so an
    interrupted extraction never looks complete.
    """
    archive, destination = Path(archive), Path(destination)
    kind = archive_kind(archive)
    if kind is None:
        raise ArchiveError(f"{archive}: unknown archive type (expected .zip, .tar[.gz|.bz2|.xz], "
                           ".tgz, .gz, .bz2 or .xz).")
    tmp = destination.with_name(destination.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if kind == "zip":
            _extract_zip(archive, tmp)
        elif kind == "tar":
            _extract_tar(archive, tmp)
        else:
            _decompress(archive, kind, tmp)
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return destination


def _extract_zip(archive: Path, out: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(archive, info.filename)
                # A zip "symlink" is a regular entry with S_IFLNK mode; refuse it.
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ArchiveError(f"{archive}: refusing symbolic link member "
                                       f"{info.filename!r}.")
            for info in zf.infolist():
                target = (out / info.filename).resolve()
                if not target.is_relative_to(out.resolve()):
                    raise ArchiveError(f"{archive}: refusing member {info.filename!r}.")
                zf.extract(info, out)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise _corrupt(archive, e) from e


def _extract_tar(archive: Path, out: Path) -> None:
    try:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                _check_member(archive, member.name)
                if member.issym() or member.islnk():
                    link = PurePosixPath(member.linkname)
                    resolved = (out / PurePosixPath(member.name).parent / link).resolve()
                    if link.is_absolute() or not resolved.is_relative_to(out.resolve()):
                        raise ArchiveError(f"{archive}: refusing link {member.name!r} -> "
                                           f"{member.linkname!r}, which points outside.")
            tf.extractall(out, filter="data")
    except ArchiveError:
        raise
    except tarfile.FilterError as e:
        raise ArchiveError(f"{archive}: refusing a hostile member ({e}).") from e
    except (tarfile.TarError, EOFError, OSError, zlib_error()) as e:
        raise _corrupt(archive, e) from e


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def _decompress(archive: Path, kind: str, out: Path) -> None:
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind]
    target = out / archive.name.rsplit(".", 1)[0]
    try:
        with opener(archive, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, EOFError, lzma.LZMAError, zlib_error()) as e:
        raise _corrupt(archive, e) from e
