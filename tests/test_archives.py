"""Hostile and broken archives: refused or reported, never written outside their folder."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from nevis.data.archives import ArchiveError, extract
from nevis.data.fixtures import write_tar, write_zip


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        good = tarfile.TarInfo("ok/file.txt")
        good.size = 2
        tf.addfile(good, io.BytesIO(b"ok"))
        if member.isfile():
            member.size = len(data)
            tf.addfile(member, io.BytesIO(data))
        else:
            tf.addfile(member)
    return path


def _nothing_outside(tmp_path: Path, out: Path) -> None:
    allowed = {out, out.with_name(out.name + ".partial")}
    for path in tmp_path.rglob("*"):
        assert path.suffix in (".gz", ".zip") or out.is_relative_to(path) or any(
            path.is_relative_to(a) for a in allowed
        ), f"{path} was written outside the extraction folder"


@pytest.mark.parametrize("name", ["/etc/evil.txt", "../evil.txt", "ok/../../evil.txt"])
def test_tar_members_escaping_the_folder_are_refused(tmp_path, name):
    archive = _tar_with(tmp_path / "a.tar.gz", tarfile.TarInfo(name))
    out = tmp_path / "sub" / "out"
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, out)
    assert not out.exists() and not (tmp_path / "evil.txt").exists()
    _nothing_outside(tmp_path, out)


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_pointing_outside_are_refused(tmp_path, kind):
    link = tarfile.TarInfo("ok/link")
    link.type, link.linkname = kind, "../../../etc/passwd"
    archive = _tar_with(tmp_path / "a.tar.gz", link)
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["/abs.txt", "../evil.txt", "a/../../evil.txt", "C:/win.txt"])
def test_zip_members_escaping_the_folder_are_refused(tmp_path, name):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "evil")
    with pytest.raises(ArchiveError, match="refusing"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlinks_are_refused(tmp_path):
    archive = tmp_path / "a.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        extract(archive, tmp_path / "out")


def test_good_archives_extract(tmp_path):
    write_zip(tmp_path / "a.zip", {"d/x.txt": "1", "y.txt": "2"})
    write_tar(tmp_path / "b.tar.gz", {"d/x.txt": "1"})
    assert (extract(tmp_path / "a.zip", tmp_path / "za") / "d" / "x.txt").read_text() == "1"
    assert (extract(tmp_path / "b.tar.gz", tmp_path / "tb") / "d" / "x.txt").read_text() == "1"


@pytest.mark.parametrize("name", ["a.zip", "b.tar.gz"])
def test_truncated_archive_names_the_file_and_the_fix(tmp_path, name):
    members = {f"d/{i}.bin": bytes(range(256)) * 40 for i in range(5)}
    path = (write_zip if name.endswith(".zip") else write_tar)(tmp_path / name, members)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArchiveError) as info:
        extract(path, tmp_path / "out")
    assert str(path) in str(info.value) and "Delete it" in str(info.value)
    assert not (tmp_path / "out").exists()
