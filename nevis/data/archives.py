"""Safe archive extraction: nothing is written outside the extraction folder.

Downloaded archives are untrusted input. A member with an absolute path (or a drive letter), a
`..` component, or a link (symbolic or hard) pointing outside the folder is refused with an error
naming the archive and the member; tar archives additionally go through Python's
`filter="data"`. After extraction every symbolic link must still resolve inside the folder (a
later member can turn a path an earlier link goes through into a link). A truncated or corrupt
archive raises `ArchiveError` naming the file and the fix.

zip, tar (plain, gzip, bzip2, xz) and single gzip/bzip2/xz files are read with the standard
library. RAR (1.5–4.x and 5, compressed or stored), 7z and Unix `compress` files (`.Z`, `.tar.Z`,
`.taz`) are read with libarchive through its ctypes bindings `libarchive-c` (a core dependency;
the shared library is the system's `libarchive.so.13`). libarchive only decodes here: this module
checks and writes every member itself, one at a time, refusing any whose folder resolves outside
(through a link written earlier). Without libarchive these kinds raise `NeedsExtra` (the
pipeline's "needs an extra" status) with the install command.

Known gaps, both covered by the published checksum of the download: libarchive 3.6 does not
verify the CRC of RAR members stored without compression, and a truncated single `.Z` file
cannot be told from a complete one (the format has no length or checksum).
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
from types import ModuleType
from typing import TYPE_CHECKING

from nevis.data.sources import NeedsExtra

if TYPE_CHECKING:
    from libarchive.entry import ArchiveEntry

LIBARCHIVE_INSTALL = ("pip install libarchive-c (a core dependency of nevis) and the system "
                      "library (Debian/Ubuntu: apt-get install libarchive13)")
_LIBARCHIVE_KINDS = ("rar", "7z", "tar.Z", "Z")
_BLOCK = 1 << 20  # bytes copied from libarchive per Python call (its default, a page, is slow)


class ArchiveError(Exception):
    """An archive is corrupt, truncated, of an unknown kind, or hostile."""


def _check_member(archive: Path, name: str) -> None:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        raise ArchiveError(f"{archive}: refusing member {name!r} with an absolute path.")
    if ".." in PurePosixPath(normal).parts:
        raise ArchiveError(f"{archive}: refusing member {name!r}, which escapes the folder.")


def _corrupt(archive: Path, error: Exception, reason: str | None = None) -> ArchiveError:
    reason = reason or f"{type(error).__name__}: {error}"
    return ArchiveError(
        f"{archive} is corrupt or truncated ({reason}). Delete it and run the same command "
        "again to fetch it anew."
    )


def archive_kind(path: Path) -> str | None:
    """The archive kind from the name, or None.

    'zip', 'tar' (plain or gzip/bzip2/xz-compressed), 'gz', 'bz2', 'xz' (single compressed
    files), and, read by libarchive: 'rar', '7z', 'tar.Z' (`.tar.Z`, `.taz`) and 'Z' (a single
    Unix-compressed file; only the upper-case `.Z` is `compress`, `.z` was the older `pack`).
    """
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    if name.endswith(".rar"):
        return "rar"
    if name.endswith(".7z"):
        return "7z"
    if path.name.endswith(".tar.Z") or name.endswith(".taz"):
        return "tar.Z"
    if path.name.endswith(".Z"):
        return "Z"
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
                           ".tgz, .gz, .bz2, .xz, .rar, .7z, .tar.Z, .taz or .Z).")
    library = libarchive_module(f"extracting {archive}") if kind in _LIBARCHIVE_KINDS else None
    tmp = destination.with_name(destination.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if kind == "zip":
            _extract_zip(archive, tmp)
        elif kind == "tar":
            _extract_tar(archive, tmp)
        elif library is not None:
            _extract_libarchive(library, archive, kind, tmp)
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
    _check_links(archive, out.resolve())


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


# ------------------------------------------------------------------------ libarchive kinds


def libarchive_module(purpose: str) -> ModuleType:
    """The `libarchive` (libarchive-c) module, or NeedsExtra saying what needs it and how to
    install it.

    The import fails with ImportError without the package, and with OSError or AttributeError
    (ctypes finds no `libarchive.so`, or an old one) without the system library.
    """
    try:
        import libarchive
    except (ImportError, OSError, AttributeError) as e:
        raise NeedsExtra(f"{purpose} needs libarchive (RAR, 7z and Unix-compress archives): "
                         f"{LIBARCHIVE_INSTALL} ({type(e).__name__}: {e}).") from e
    return libarchive


def _extract_libarchive(library: ModuleType, archive: Path, kind: str, out: Path) -> None:
    """Decodes with libarchive; checks and writes every member itself (see the docstring)."""
    root = out.resolve()
    try:
        with library.file_reader(str(archive), format_name="raw" if kind == "Z" else "all") \
                as reader:
            for entry in reader:
                if kind == "Z":
                    filters = [f.decode() if isinstance(f, bytes) else str(f)
                               for f in reader.filter_names]  # e.g. [b"compress (.Z)"]
                    if not any(f.startswith("compress") for f in filters):
                        raise ArchiveError(f"{archive} is not a Unix compress (.Z) file; "
                                           "delete it and fetch it again.")
                    name = archive.name[:-2]
                else:
                    name = entry.pathname
                if not isinstance(name, str) or not name.strip("/"):
                    raise ArchiveError(f"{archive}: refusing a member with the undecodable or "
                                       f"empty name {name!r}.")
                _write_entry(archive, root, name, entry)
    except ArchiveError:
        raise
    except library.ArchiveError as e:
        raise _corrupt(archive, e, f"libarchive: {e.msg}") from e
    except OSError as e:
        raise _corrupt(archive, e) from e
    _check_links(archive, root)


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _write_entry(archive: Path, root: Path, name: str, entry: ArchiveEntry) -> None:
    """Writes one libarchive entry under `root` after checking where it (and a link) lead."""
    _check_member(archive, name)
    target = root / name
    if not _inside(root, target.parent):
        raise ArchiveError(f"{archive}: refusing member {name!r}, whose folder resolves "
                           "outside (through a link).")
    if entry.isdir:
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise ArchiveError(f"{archive}: member {name!r} replaces a folder of the archive.")
    if target.is_symlink() or target.exists():
        target.unlink()  # a later member of the same name wins, as in tar; never follow a link
    if entry.islnk:  # hard link: a copy of an earlier member
        link = entry.linkpath or ""
        _check_member(archive, link)
        source = root / link
        if not _inside(root, source) or not source.resolve().is_file():
            raise ArchiveError(f"{archive}: refusing hard link {name!r} -> {link!r}, which "
                               "points outside or to no earlier file.")
        shutil.copyfile(source.resolve(), target)
    elif entry.issym:
        link = entry.linkpath or ""
        if PurePosixPath(link).is_absolute() or not _inside(root, target.parent / link):
            raise ArchiveError(f"{archive}: refusing link {name!r} -> {link!r}, which points "
                               "outside.")
        os.symlink(link, target)
    elif entry.isdev:
        raise ArchiveError(f"{archive}: refusing special file member {name!r} (device, pipe "
                           "or socket).")
    else:  # a regular file, or one with no type (a RAR 5 from Unix keeps raw mode bits)
        with open(target, "xb") as f:  # "x": never through a link left at this name
            for block in entry.get_blocks(_BLOCK):
                f.write(block)


def _check_links(archive: Path, root: Path) -> None:
    """Refuses the extraction if a symbolic link under `root` resolves outside it: a later member
    may have turned a path an earlier link goes through into a link itself. (`scandir` knows
    links from the directory listing: no extra system call per file.)"""
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    path = Path(entry.path)
                    if not _inside(root, path):
                        raise ArchiveError(f"{archive}: refusing link {path.relative_to(root)} "
                                           f"-> {os.readlink(path)!r}, which points outside.")
                elif entry.is_dir():
                    folders.append(Path(entry.path))
