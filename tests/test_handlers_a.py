"""Handler logic of group "a" beyond the generic fixture test: VOC 2005 folder classes, VOC 2006
image-set parsing, UIUC's train-image rule, Caltech's nested tars, IG02's masks, 15 Scenes'
folder check."""

from __future__ import annotations

import collections
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nevis.data import fixtures
from nevis.data.handlers import get_handler, pascal_voc2006
from nevis.data.handlers.base import BuildContext

KEYS = ("pascal_voc2005", "pascal_voc2006", "caltech_categories", "uiuc_cars", "ig02", "scenes15")


def _build(key: str, tmp_path: Path, edit=None):
    handler = get_handler(key)
    folder = handler.fixture(tmp_path)
    if edit is not None:
        edit(folder)
    ctx = BuildContext(key, {s.filename: folder / s.filename for s in handler.sources},
                       tmp_path / "scratch")
    return handler.build(ctx)


@pytest.mark.parametrize("key", KEYS)
def test_fixture_builds_into_every_split(key, tmp_path):
    handler = get_handler(key)
    built = _build(key, tmp_path)
    parts = built.recipe(built.items)
    assert all(parts[split] for split in ("train", "dev", "dev_test", "test")), key
    if handler.num_classes is not None:
        assert len(built.class_names) == handler.num_classes
    labels = {item.label for item in built.items}
    assert labels == set(range(len(built.class_names)))
    size = sum(p.stat().st_size for p in (tmp_path / key).rglob("*") if p.is_file())
    assert size < 300_000


def test_voc2005_labels_come_from_source_folders(tmp_path):
    built = _build("pascal_voc2005", tmp_path)
    names = built.class_names
    by_folder = {item.name.split("/")[2]: (names[item.label], item.group) for item in built.items}
    assert by_folder["ETHZ_sideviews-cars"] == ("car", "train")
    assert by_folder["TUGraz_bike"] == ("bike", "train")
    assert by_folder["Caltech_motorbikes_side"] == ("motorbike", "train")
    assert by_folder["velo"] == ("bike", "test")
    assert by_folder["motocyclette"] == ("motorbike", "test")
    assert by_folder["pieton"] == ("person", "test")
    assert all(item.name.endswith(".png") for item in built.items)  # annotations not read
    assert built.metadata["images_per_folder"]["train/TUGraz_person"] == 5


def test_voc2005_missing_folder_is_an_error(tmp_path):
    def drop_velo(folder):
        root = tmp_path / "rewritten"
        with tarfile.open(folder / "voc2005_2.tar.gz") as tf:
            members = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
        members = {k: v for k, v in members.items() if "/velo/" not in k}
        fixtures.write_tar(root / "voc2005_2.tar.gz", members)
        (root / "voc2005_2.tar.gz").replace(folder / "voc2005_2.tar.gz")

    with pytest.raises(ValueError, match="velo"):
        _build("pascal_voc2005", tmp_path, drop_velo)


def test_voc2006_image_sets(tmp_path):
    built = _build("pascal_voc2006", tmp_path)
    assert list(built.class_names) == list(pascal_voc2006.DOCUMENTED_CLASSES)
    labels = {Path(item.name).stem: (built.class_names[item.label], item.group)
              for item in built.items}
    assert labels["000900"] == ("person", "train")  # bicycle and person present: the later
    assert "000901" not in labels  # only a difficult cat: dropped
    groups = collections.Counter(item.group for item in built.items)
    assert groups == {"train": 51, "test": 10}
    assert built.metadata["train"] == {"images": 51, "multi_class": 1,
                                       "dropped_no_present_class": 1}
    # Every image keeps its class from the per-class files (not from train.txt/val.txt).
    for image_id, (class_name, _) in labels.items():
        if image_id != "000900":
            flags = pascal_voc2006.fixture_images("train" if image_id < "005000" else "test")
            assert flags[image_id] == {class_name: 1}


def test_uiuc_uses_training_images_only(tmp_path):
    built = _build("uiuc_cars", tmp_path)
    assert all("/TrainImages/" in item.name for item in built.items)
    assert {(item.name.rsplit("/", 1)[1][:3], item.label) for item in built.items} == {
        ("neg", 0), ("pos", 1)}
    assert built.metadata["test_images_left_out"] == 3


def test_caltech_categories_reads_the_nested_tars(tmp_path):
    built = _build("caltech_categories", tmp_path)
    counts = collections.Counter(
        (item.name.split(":")[0], built.class_names[item.label]) for item in built.items)
    assert counts == {
        ("Cars_1999/cars_markus.tar", "car"): 6,
        ("Cars_2001/cars_brad.tar", "car"): 6,
        ("motorbikes_side/motorbikes_side.tar", "motorcycle"): 6,
    }  # README members skipped


def test_ig02_skips_masks(tmp_path):
    built = _build("ig02", tmp_path)
    assert len(built.items) == 18
    assert all(item.name.endswith(".image.png") for item in built.items)


def test_scenes15_unknown_folder_is_an_error(tmp_path):
    def add_folder(folder):
        rng = np.random.default_rng(0)
        fixtures.write_zip(folder / "scene_categories.zip",
                           {"office/image_0001.jpg": fixtures.image_bytes(rng)})

    with pytest.raises(ValueError, match="office"):
        _build("scenes15", tmp_path, add_folder)
