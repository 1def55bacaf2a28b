"""Handler logic of group b beyond the generic fixture test: LFW's per-subject split, Brodatz's
crops, USPS's LIBSVM lines, MNIST-M's per-folder labels, the Caltech-256 and sketch label lists."""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np
import pytest

from nevis.data import fixtures
from nevis.data.handlers import brodatz, caltech256, lfw, mnist_m, sketch, usps
from nevis.data.handlers.base import BuildContext


def _context(handler, folder: Path, scratch: Path) -> BuildContext:
    return BuildContext(
        handler.key, {s.filename: folder / s.filename for s in handler.sources}, scratch
    )


def test_lfw_per_subject_split(tmp_path):
    rng = np.random.default_rng(0)
    members = {}
    # Written out of order: the split follows file names, not archive order.
    for subject, numbers in (
        ("Zed_Z", [7, 1, 3, 2, 6, 5, 4]),
        ("Amy_A", [5, 4, 3, 2, 1]),
        ("Few_F", [1, 2, 3, 4]),
    ):
        for n in numbers:
            members[f"lfw/{subject}/{subject}_{n:04d}.jpg"] = fixtures.image_bytes(
                rng, "JPEG", (8, 8)
            )
    members["__MACOSX/lfw/Amy_A/._Amy_A_0001.jpg"] = b"resource fork, not an image"
    fixtures.write_tar(tmp_path / "lfw.tgz", members)
    built = lfw.HANDLER.build(_context(lfw.HANDLER, tmp_path, tmp_path / "scratch"))
    assert list(built.class_names) == ["Amy_A", "Zed_Z"]  # Few_F has < 5 images
    got = {(item.label, item.name.rsplit("_", 1)[1]): item.split for item in built.items}
    assert got == {
        (0, "0001.jpg"): "train",
        (0, "0002.jpg"): "dev",
        (0, "0003.jpg"): "dev_test",
        (0, "0004.jpg"): "test",
        (0, "0005.jpg"): "test",
        (1, "0001.jpg"): "train",
        (1, "0002.jpg"): "train",
        (1, "0003.jpg"): "train",
        (1, "0004.jpg"): "dev",
        (1, "0005.jpg"): "dev_test",
        (1, "0006.jpg"): "test",
        (1, "0007.jpg"): "test",
    }
    parts = built.recipe(built.items)
    assert {k: len(v) for k, v in parts.items()} == {"train": 4, "dev": 2, "dev_test": 2, "test": 4}
    assert built.metadata["subjects_in_archive"] == 3


def test_brodatz_crops_are_a_column_major_grid():
    image = np.arange(20 * 31, dtype=np.int64).reshape(20, 31)  # height 20, width 31
    cuts = brodatz.crops(image)
    assert len(cuts) == 9 and all(c.shape == (6, 10) for c in cuts)
    assert cuts[0][0, 0] == image[0, 0]
    assert cuts[1][0, 0] == image[6, 0]  # second crop: next row, same column
    assert cuts[3][0, 0] == image[0, 10]  # fourth crop: next column
    assert len({c.tobytes() for c in cuts}) == 9


def test_brodatz_five_one_one_two_per_texture(tmp_path):
    folder = brodatz.HANDLER.fixture(tmp_path)
    built = brodatz.HANDLER.build(_context(brodatz.HANDLER, folder, tmp_path / "s"))
    assert len(built.class_names) == 111 and built.class_names[:3] == ("D1", "D10", "D100")
    assert len(brodatz.HANDLER.sources) == 111
    per_label: dict[int, list[str]] = {}
    for item in built.items:
        per_label.setdefault(item.label, []).append(item.split)
        assert item.image.shape == (13 // 3, 14 // 3)
    for splits in per_label.values():
        assert sorted(splits) == sorted(brodatz.CROP_SPLITS)
    again = brodatz.HANDLER.build(_context(brodatz.HANDLER, folder, tmp_path / "s2"))
    assert [i.split for i in again.items] == [i.split for i in built.items]


def test_usps_parse_line():
    values = [-1.0] * 256
    values[0], values[17], values[255] = 1.0, 0.0, -0.5
    line = "3 " + " ".join(f"{i}:{v}" for i, v in enumerate(values, 1)) + " \n"
    image, label = usps.parse_line(line)
    assert label == 2 and image.shape == (16, 16) and image.dtype == np.uint8
    assert image[0, 0] == 255 and image[1, 1] == 127 and image[15, 15] == 63
    assert image[0, 1] == 0
    sparse, _ = usps.parse_line("10 1:1 \n")  # omitted indices are 0.0
    assert sparse[0, 0] == 255 and sparse[0, 1] == 127


def test_usps_groups(tmp_path):
    folder = usps.HANDLER.fixture(tmp_path)
    built = usps.HANDLER.build(_context(usps.HANDLER, folder, tmp_path / "s"))
    groups = {g: sum(i.group == g for i in built.items) for g in ("train", "test")}
    assert groups == {"train": 50, "test": 20}
    assert bz2.decompress((folder / "usps.bz2").read_bytes()).count(b"\n") == 50


def test_mnist_m_labels_come_from_the_images_own_list(tmp_path):
    folder = mnist_m.HANDLER.fixture(tmp_path)
    built = mnist_m.HANDLER.build(_context(mnist_m.HANDLER, folder, tmp_path / "s"))
    labels = {item.name: item.label for item in built.items}
    # The fixture gives the same file name different digits in the two sets.
    assert labels["mnist_m_train/00000000.png"] == 0
    assert labels["mnist_m_test/00000000.png"] == 3
    assert len(labels) == 70 and {i.group for i in built.items} == {"all"}


def test_caltech256_label_list():
    assert len(caltech256.CLASS_NAMES) == 257 == len(set(caltech256.CLASS_NAMES))
    assert caltech256.label_of("256_ObjectCategories/001.ak47/001_0001.jpg") == 0
    assert caltech256.label_of("256_ObjectCategories/257.clutter/257_0004.jpg") == 256
    assert caltech256.label_of("256_ObjectCategories/198.spider/RENAME2") is None
    with pytest.raises(ValueError, match="does not match"):
        caltech256.label_of("256_ObjectCategories/002.ak47/002_0001.jpg")


def test_sketch_label_list_and_unknown_folder(tmp_path):
    assert len(sketch.CLASS_NAMES) == 250 == len(set(sketch.CLASS_NAMES))
    fixtures.write_zip(
        tmp_path / "sketches_png.zip",
        {
            "png/not a category/1.png": fixtures.image_bytes(
                np.random.default_rng(0), "PNG", (8, 8), "L"
            )
        },
    )
    with pytest.raises(ValueError, match="unknown category"):
        sketch.HANDLER.build(_context(sketch.HANDLER, tmp_path, tmp_path / "s"))
