"""Handler logic of group c beyond the generic fixture test: domain recasts (Office-Caltech, PACS),
the PACS file-name guard, ISIC label flags and the Stanford Cars annotation file."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from nevis.data import recipes
from nevis.data.handlers import get_handler, melanoma, pacs, stanford_cars
from nevis.data.handlers.base import BuildContext
from nevis.data.sources import PrepareError


def _build(key: str, tmp_path: Path):
    handler = get_handler(key)
    folder = handler.fixture(tmp_path)
    files = {s.filename: folder / s.filename for s in handler.sources}
    return folder, handler.build(BuildContext(handler.key, files, tmp_path / "scratch"))


def test_office_caltech_keeps_shared_classes_and_holds_out_caltech(tmp_path):
    folder, built = _build("office_caltech_10", tmp_path)
    names = [item.name for item in built.items]
    assert not any("ruler" in n or "ak47" in n or "clutter" in n for n in names)
    parts = built.recipe(built.items)
    assert {i.group for s in ("train", "dev") for i in parts[s]} == {"amazon", "dslr", "webcam"}
    assert {i.group for s in ("dev_test", "test") for i in parts[s]} == {"caltech"}
    # Caltech members are read in place from the uncompressed tar: same bytes as the member.
    item = next(i for i in built.items if i.group == "caltech")
    with tarfile.open(folder / "256_ObjectCategories.tar") as tf:
        assert recipes.read_image(item) == tf.extractfile(item.name).read()
    assert item.label == built.class_names.index(item.name.split("/")[1].split(".", 1)[1])


def test_pacs_file_size_guard():
    sizes = {"photo": 10, "art_painting": 20, "cartoon": 30, "sketch": 40}
    good = {}
    for domain, n in sizes.items():
        good |= {f"{domain}_test.hdf5": n, f"{domain}_train.hdf5": n - 3,
                 f"{domain}_val.hdf5": 3}
    pacs.check_file_sizes(good, sizes)
    swapped = dict(good, **{"photo_test.hdf5": 40, "sketch_test.hdf5": 10})
    with pytest.raises(PrepareError, match="sketch domain"):
        pacs.check_file_sizes(swapped, sizes)
    mixed = dict(good, **{"photo_train.hdf5": 37, "sketch_train.hdf5": 7})
    with pytest.raises(PrepareError, match="photo_train.hdf5"):
        pacs.check_file_sizes(mixed, sizes)
    pacs.check_file_sizes({name: 5 for name in good}, sizes)  # unknown sizes: not checked


def test_pacs_reads_bgr_and_holds_out_sketch(tmp_path):
    h5py = pytest.importorskip("h5py")
    folder, built = _build("pacs", tmp_path)
    parts = built.recipe(recipes.deduplicate(built.items).items)
    assert sum(map(len, parts.values())) == 4 * 14  # each domain's images once
    assert {i.group for s in ("dev_test", "test") for i in parts[s]} == {"sketch"}
    assert {i.group for s in ("train", "dev") for i in parts[s]} == {"seen"}
    item = built.items[0]
    with h5py.File(folder / "art_painting_test.hdf5") as f:
        assert np.array_equal(recipes.read_image(item), f["images"][0][..., ::-1])
        assert item.label == int(f["labels"][0]) - 1


def test_melanoma_label_flags():
    row = {"image_id": "ISIC_0000000", "melanoma": "1.0", "seborrheic_keratosis": "0.0"}
    assert melanoma.label_of(row, "x") == 0
    assert melanoma.label_of(dict(row, melanoma="0.0", seborrheic_keratosis="1.0"), "x") == 1
    assert melanoma.label_of(dict(row, melanoma="0.0"), "x") == 2
    with pytest.raises(PrepareError, match="both"):
        melanoma.label_of(dict(row, seborrheic_keratosis="1.0"), "x")


def test_melanoma_uses_only_listed_jpegs(tmp_path):
    _, built = _build("melanoma", tmp_path)
    assert all(i.name.endswith(".jpg") and "superpixels" not in i.name for i in built.items)
    assert {i.group for i in built.items} == {"train", "val", "test"}


def test_stanford_cars_annotations(tmp_path):
    folder = get_handler("stanford_cars").fixture(tmp_path)
    rows = stanford_cars.read_annotations(folder / "cars_annos.mat")
    assert rows[0] == ("000001.jpg", 0, "train")
    assert {label for _, label, _ in rows} == {0, 1, 96, 195}
    assert sum(group == "test" for _, _, group in rows) == 8
    assert len(stanford_cars.CLASS_NAMES) == 196
