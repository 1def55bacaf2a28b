"""`python -m nevis.prepare`: selection, status table, exit codes, your own image folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from nevis import prepare
from nevis.data import fixtures, storage
from nevis.streams import make_stream
from nevis.tasks import TaskKind


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return [f"--data_dir={tmp_path / 'data'}", f"--download_dir={tmp_path / 'raw'}",
            "--noprogress", *extra]


def _image_folder(root: Path, classes: dict[str, int], seed: int = 0, fmt: str = "PNG") -> Path:
    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / name / f"{i}.{fmt.lower()}").write_bytes(fixtures.image_bytes(rng, fmt))
    return root


def test_unknown_key_lists_valid_keys_and_touches_nothing(tmp_path, capsys):
    assert prepare.main(_args(tmp_path, "--dataset=cifar11")) == prepare.EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown dataset 'cifar11'" in err and "cifar10" in err and "folder:PATH" in err
    assert not (tmp_path / "data").exists()


def test_unknown_stream_is_a_usage_error(tmp_path, capsys):
    assert prepare.main(_args(tmp_path, "--stream=shortest")) == prepare.EXIT_USAGE
    assert "valid choices" in capsys.readouterr().err


def test_folder_dataset_random_split(tmp_path, capsys):
    folder = _image_folder(tmp_path / "birds", {"crow": 12, "owl": 10, "wren": 9})
    assert prepare.main(_args(tmp_path, f"--dataset=folder:{folder}")) == 0
    out = capsys.readouterr().out
    assert "birds" in out and "prepared now" in out
    manifest = storage.stored_manifest("birds", tmp_path / "data")
    assert manifest["num_classes"] == 3 and manifest["kind"] == "single_label"
    assert manifest["splits"] == {"train": 17, "dev": 4, "dev_test": 4, "test": 6}
    # A stream of prepared keys, in the given order, with the manifest's facts.
    stream = make_stream("prepared", tasks=["birds"], data_dir=tmp_path / "data")
    assert stream.tasks[0].num_classes == 3 and stream.tasks[0].name == "birds"
    # Idempotent: a second run finds it ready.
    assert prepare.main(_args(tmp_path, f"--dataset=folder:{folder}")) == 0
    assert "ready" in capsys.readouterr().out


def test_folder_dataset_with_official_splits_and_a_chosen_key(tmp_path):
    root = tmp_path / "cars"
    _image_folder(root / "train", {"a": 10, "b": 10}, seed=1, fmt="JPEG")
    _image_folder(root / "test", {"a": 3, "b": 2}, seed=2)
    assert prepare.main(_args(tmp_path, f"--dataset=folder:{root}", "--key=my_cars")) == 0
    manifest = storage.stored_manifest("my_cars", tmp_path / "data")
    assert manifest["splits"] == {"train": 14, "dev": 3, "dev_test": 3, "test": 5}


def test_folder_dataset_multilabel_csv(tmp_path):
    root = tmp_path / "scenes"
    root.mkdir()
    rng = np.random.default_rng(3)
    rows = []
    for i in range(30):
        (root / f"{i}.png").write_bytes(fixtures.image_bytes(rng, "PNG"))
        rows.append((f"{i}.png", "sky;tree" if i % 3 == 0 else ("sea" if i % 3 == 1 else "sky")))
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    assert prepare.main(_args(tmp_path, f"--dataset=folder:{root}")) == 0
    manifest = storage.stored_manifest("scenes", tmp_path / "data")
    assert manifest["kind"] == TaskKind.MULTI_LABEL.value and manifest["num_classes"] == 3
    assert sum(manifest["splits"].values()) == 30


def test_empty_class_folder_names_the_folder(tmp_path, capsys):
    folder = _image_folder(tmp_path / "pets", {"cat": 8, "dog": 8})
    (folder / "ferret").mkdir()
    assert prepare.main(_args(tmp_path, f"--dataset=folder:{folder}")) == prepare.EXIT_NOT_READY
    out = capsys.readouterr().out
    assert "failed" in out and str(folder / "ferret") in out and "holds no image" in out


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_undecodable_image_names_the_file(tmp_path, capsys, damage):
    folder = _image_folder(tmp_path / "pets", {"cat": 8, "dog": 8})
    good = fixtures.image_bytes(np.random.default_rng(9), "JPEG", (120, 120))
    data = b"\xff\xd8\xff\xe0 this is not a jpeg" if damage == "garbage" else good[:-300]
    (folder / "dog" / "broken.jpg").write_bytes(data)
    assert prepare.main(_args(tmp_path, f"--dataset=folder:{folder}")) == prepare.EXIT_NOT_READY
    out = capsys.readouterr().out
    assert "broken.jpg" in out and "cannot decode" in out
    assert not storage.is_prepared("pets", tmp_path / "data")  # nothing half-built


@pytest.mark.parametrize("stream", ["debug", "short"])
def test_write_fixtures_writes_a_mirror_for_every_handled_dataset(tmp_path, stream, capsys):
    mirror = tmp_path / "mirror"
    assert prepare.main(["--stream=" + stream, f"--write_fixtures={mirror}"]) == 0
    from nevis.data.handlers import all_handlers

    handlers = all_handlers()
    for task in make_stream(stream).unique_tasks():
        if task.key in handlers and handlers[task.key].sources:
            for source in handlers[task.key].sources:
                assert (mirror / task.key / source.filename).is_file()
