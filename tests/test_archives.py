"""Hostile and broken archives: refused or reported, never written outside their folder."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from nevis.data.archives import ArchiveError, extract
from nevis.data.fixtures import compress_z, write_rar, write_tar, write_zip
from nevis.data.sources import NeedsExtra

ARCHIVE_SUFFIXES = (".gz", ".zip", ".rar", ".Z", ".7z")


def _tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    """A tar (.tar.gz, or .tar.Z through libarchive's compress) with a good file first."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        good = tarfile.TarInfo("ok/file.txt")
        good.size = 2
        tf.addfile(good, io.BytesIO(b"ok"))
        for member, data in members:
            if member.isfile():
                member.size = len(data)
                tf.addfile(member, io.BytesIO(data))
            else:
                tf.addfile(member)
    compress = compress_z if path.name.endswith(".Z") else gzip.compress
    path.write_bytes(compress(buffer.getvalue()))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def _nothing_outside(tmp_path: Path, out: Path) -> None:
    allowed = {out, out.with_name(out.name + ".partial")}
    for path in tmp_path.rglob("*"):
        assert path.suffix in ARCHIVE_SUFFIXES or out.is_relative_to(path) or any(
            path.is_relative_to(a) for a in allowed
        ), f"{path} was written outside the extraction folder"


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.Z"])
@pytest.mark.parametrize("name", ["/etc/evil.txt", "../evil.txt", "ok/../../evil.txt"])
def test_tar_members_escaping_the_folder_are_refused(tmp_path, name, suffix):
    archive = _tar_with(tmp_path / f"a{suffix}", (tarfile.TarInfo(name), b"x"))
    out = tmp_path / "sub" / "out"
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, out)
    assert not out.exists() and not (tmp_path / "evil.txt").exists()
    _nothing_outside(tmp_path, out)


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.Z"])
@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_pointing_outside_are_refused(tmp_path, kind, suffix):
    archive = _tar_with(tmp_path / f"a{suffix}", _link("ok/link", "../../../etc/passwd", kind))
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.Z"])
@pytest.mark.parametrize("write_through_it", [True, False])
def test_link_turned_outward_by_a_later_member_is_refused(tmp_path, write_through_it, suffix):
    # "a" points inside when written (b does not exist yet); "b" -> "." then makes it point to
    # the parent of the folder. A member written through "a" would land outside.
    members = [_link("a", "b/c/../.."), _link("b", ".")]
    if write_through_it:
        members.append((tarfile.TarInfo("a/evil.txt"), b"x"))
    archive = _tar_with(tmp_path / f"a{suffix}", *members)
    out = tmp_path / "sub" / "out"
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, out)
    assert not out.exists() and not (tmp_path / "sub" / "evil.txt").exists()
    _nothing_outside(tmp_path, out)


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.Z"])
def test_special_files_are_refused(tmp_path, suffix):
    fifo = tarfile.TarInfo("ok/pipe")
    fifo.type = tarfile.FIFOTYPE
    archive = _tar_with(tmp_path / f"a{suffix}", (fifo, b""))
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_links_inside_a_tar_z_are_kept(tmp_path):
    archive = _tar_with(tmp_path / "a.tar.Z", _link("ok/link.txt", "file.txt"),
                        _link("ok/hard.txt", "ok/file.txt", tarfile.LNKTYPE))
    out = extract(archive, tmp_path / "out")
    assert (out / "ok" / "link.txt").is_symlink()
    assert (out / "ok" / "link.txt").read_text() == (out / "ok" / "hard.txt").read_text() == "ok"


@pytest.mark.parametrize("name", ["/abs.txt", "../evil.txt", "a/../../evil.txt", "C:/win.txt"])
def test_zip_members_escaping_the_folder_are_refused(tmp_path, name):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "evil")
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name", ["/abs.txt", "../evil.txt", "a/../../evil.txt", "C:/win.txt",
                                  "a\\..\\..\\evil.txt"])
def test_rar_members_escaping_the_folder_are_refused(tmp_path, name):
    archive = write_rar(tmp_path / "a.rar", {"ok.txt": "ok", name: "evil"})
    out = tmp_path / "sub" / "out"
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, out)
    assert not out.exists() and not (tmp_path / "sub" / "evil.txt").exists()
    _nothing_outside(tmp_path, out)


def test_zip_symlinks_are_refused(tmp_path):
    archive = tmp_path / "a.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        extract(archive, tmp_path / "out")


def _write_7z(path: Path, members: dict[str, bytes]) -> Path:
    import libarchive

    with libarchive.file_writer(str(path), "7zip") as writer:
        for name, data in members.items():
            writer.add_file_from_memory(name, len(data), data)
    return path


def test_good_archives_extract(tmp_path):
    write_zip(tmp_path / "a.zip", {"d/x.txt": "1", "y.txt": "2"})
    write_tar(tmp_path / "b.tar.gz", {"d/x.txt": "1"})
    write_rar(tmp_path / "c.rar", {"d/e/x.txt": "1", "y.txt": "2"})  # stored as d\e\x.txt
    write_tar(tmp_path / "d.tar.Z", {"d/x.txt": "1"})
    _write_7z(tmp_path / "e.7z", {"d/x.txt": b"1"})
    (tmp_path / "f.txt.Z").write_bytes(compress_z(b"12" * 5000))
    assert (extract(tmp_path / "a.zip", tmp_path / "za") / "d" / "x.txt").read_text() == "1"
    assert (extract(tmp_path / "b.tar.gz", tmp_path / "tb") / "d" / "x.txt").read_text() == "1"
    rar = extract(tmp_path / "c.rar", tmp_path / "rc")
    assert {p.relative_to(rar).as_posix(): p.read_text() for p in rar.rglob("*")
            if p.is_file()} == {"d/e/x.txt": "1", "y.txt": "2"}
    assert (extract(tmp_path / "d.tar.Z", tmp_path / "zd") / "d" / "x.txt").read_text() == "1"
    assert (extract(tmp_path / "e.7z", tmp_path / "se") / "d" / "x.txt").read_text() == "1"
    assert (extract(tmp_path / "f.txt.Z", tmp_path / "zf") / "f.txt").read_text() == "12" * 5000


def test_unix_compress_fixtures_are_the_real_format(tmp_path):
    data = bytes(range(256)) * 300 + b"abc" * 20_000
    packed = compress_z(data)
    assert packed[:2] == b"\x1f\x9d" and len(packed) < len(data)
    if shutil.which("gzip"):  # gzip -d reads .Z: an independent decoder agrees
        out = subprocess.run(["gzip", "-dc"], input=packed, capture_output=True, check=True)
        assert out.stdout == data
    (tmp_path / "plain.Z").write_bytes(data)
    with pytest.raises(ArchiveError, match="not a Unix compress"):
        extract(tmp_path / "plain.Z", tmp_path / "out")


@pytest.mark.parametrize("name", ["a.zip", "b.tar.gz", "c.rar", "d.tar.Z"])
def test_truncated_archive_names_the_file_and_the_fix(tmp_path, name):
    members = {f"d/{i}.bin": bytes(range(256)) * 40 for i in range(5)}
    writer = {"zip": write_zip, "rar": write_rar}.get(name.rsplit(".", 1)[1], write_tar)
    path = writer(tmp_path / name, members)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArchiveError) as info:
        extract(path, tmp_path / "out")
    assert str(path) in str(info.value) and "Delete it" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_without_libarchive_rar_needs_an_extra(tmp_path, monkeypatch):
    archive = write_rar(tmp_path / "a.rar", {"x.txt": "1"})
    monkeypatch.setitem(sys.modules, "libarchive", None)  # import fails as if not installed
    with pytest.raises(NeedsExtra, match="pip install libarchive-c.*libarchive13") as info:
        extract(archive, tmp_path / "out")
    assert str(archive) in str(info.value) and not (tmp_path / "out.partial").exists()
