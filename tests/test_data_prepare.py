"""nevis.data.prepare: the command-line entry point."""

from __future__ import annotations

import subprocess
import sys

from nevis.data import prepare, storage


def test_unknown_key_lists_valid_keys(capsys, tmp_path):
    assert prepare.main(["--dataset=not_a_dataset", f"--data_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not_a_dataset" in err and "uci_digits" in err and "shapes_multilabel" in err
    assert list(tmp_path.iterdir()) == []


def test_a_dataset_that_cannot_be_prepared_does_not_stop_the_others(capsys, tmp_path):
    mirror = tmp_path / "empty_mirror"  # offline: the mirror lacks aberdeen's archive
    mirror.mkdir()
    code = prepare.main(["--dataset=aberdeen,lfw_faces", f"--data_dir={tmp_path / 'data'}",
                         f"--mirror={mirror}", f"--download_dir={tmp_path / 'raw'}"])
    assert code == 1  # not every requested dataset is ready
    out = capsys.readouterr().out
    assert "aberdeen" in out and "the mirror" in out and "Aberdeen.zip" in out
    assert storage.is_prepared("lfw_faces", tmp_path / "data")


def test_module_entry_point_exit_code():
    result = subprocess.run(
        [sys.executable, "-m", "nevis.data.prepare", "--dataset=bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown dataset 'bogus'" in result.stderr and "lfw_faces" in result.stderr


def test_builds_and_forces(capsys, tmp_path):
    args = ["--dataset=lfw_faces", f"--data_dir={tmp_path}"]
    assert prepare.main(args) == 0
    assert storage.is_prepared("lfw_faces", tmp_path)
    manifest = tmp_path / "lfw_faces/1.0.0" / storage.MANIFEST
    before = manifest.stat().st_mtime_ns
    assert prepare.main(args) == 0 and manifest.stat().st_mtime_ns == before
    assert prepare.main([*args, "--force"]) == 0 and manifest.stat().st_mtime_ns != before
    assert "lfw_faces" in capsys.readouterr().out
