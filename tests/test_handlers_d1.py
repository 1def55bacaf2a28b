"""Handler logic of group d1 beyond the generic fixture test: Magellan's volcano rule and raw
images, Aberdeen's merged identities, Landsat's patches, CMU AMP's fixed split, Extended YaleB's
pose split, the official test lists (Butterflies, Oxford Flowers 17, PPMI, ALOI) and the class
names computed from file names (MPEG-7, Olivetti)."""

from __future__ import annotations

import collections
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nevis.data import fixtures, recipes
from nevis.data.handlers import (
    aberdeen,
    butterflies,
    cmu_amp_expression,
    extended_yaleb,
    get_handler,
    landsat,
    magellan_venus_volcanoes,
)
from nevis.data.handlers.base import BuildContext
from nevis.data.sources import PrepareError

KEYS = (
    "magellan_venus_volcanoes", "aberdeen", "landsat", "olivetti_face", "mpeg7", "butterflies",
    "umist", "cmu_amp_expression", "aloi", "scenes8", "extended_yaleb", "ppmi",
    "oxford_flowers_17", "flickr_material_database",
)


def _build(key: str, tmp_path: Path, edit=None):
    handler = get_handler(key)
    folder = handler.fixture(tmp_path)
    if edit is not None:
        edit(folder)
    files = {s.filename: folder / s.filename for s in handler.sources}
    return handler.build(BuildContext(key, files, tmp_path / "scratch"))


@pytest.mark.parametrize("key", KEYS)
def test_fixture_builds_into_every_split(key, tmp_path):
    handler = get_handler(key)
    built = _build(key, tmp_path)
    parts = built.recipe(recipes.deduplicate(built.items).items)
    assert all(parts[split] for split in ("train", "dev", "dev_test", "test")), key
    if handler.num_classes is not None:
        assert len(built.class_names) == handler.num_classes
    assert all(0 <= item.label < len(built.class_names) for item in built.items)
    size = sum(p.stat().st_size for p in (tmp_path / key).rglob("*") if p.is_file())
    assert size < 300_000


def test_magellan_label_is_a_definite_volcano():
    assert magellan_venus_volcanoes.label_of("3 1 2 3\n1 4 5 6\n") == 1
    assert magellan_venus_volcanoes.label_of("2 1 2 3\n4 4 5 6\n") == 0
    assert magellan_venus_volcanoes.label_of("") == 0


def test_magellan_reads_raw_square_images_only_from_images(tmp_path):
    built = _build("magellan_venus_volcanoes", tmp_path)
    assert all(item.name.startswith("package/Images/") for item in built.items)  # no Chips
    image = recipes.read_image(built.items[0])
    assert image.shape == (32, 32) and image.dtype == np.uint8
    labels = {Path(item.name).stem: item.label for item in built.items}
    assert labels["img1"] == 1 and labels["img2"] == 0 and labels["img4"] == 0
    bad = tmp_path / "bad.sdt"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(PrepareError, match="square"):
        magellan_venus_volcanoes.read_sdt(bad)


def test_aberdeen_merges_second_series(tmp_path):
    assert len(aberdeen.CLASS_NAMES) == 92 == len(set(aberdeen.CLASS_NAMES))
    assert aberdeen.person_of("neilg5.jpg") == "neil"
    assert aberdeen.person_of("clean_adrian2.jpg") == "adrian"
    assert aberdeen.person_of("jsheenang1.jpg") == "jsheenan"
    assert aberdeen.person_of("chris_harbron10.jpg") == "chris_harbron"
    built = _build("aberdeen", tmp_path)
    counts = collections.Counter(built.class_names[item.label] for item in built.items)
    assert counts["neil"] == counts["adrian"] == counts["jsheenan"] == 6
    assert "jsheenang" not in counts and "clean_adrian" not in counts


def test_aberdeen_unknown_name_is_an_error(tmp_path):
    def add_stranger(folder):
        with zipfile.ZipFile(folder / aberdeen.ARCHIVE, "a") as zf:
            zf.writestr("stranger1.jpg", fixtures.image_bytes(np.random.default_rng(0)))

    with pytest.raises(PrepareError, match="stranger"):
        _build("aberdeen", tmp_path, add_stranger)


def test_landsat_patch_is_three_bands_pixel_by_pixel(tmp_path):
    path = tmp_path / "sat.trn"
    path.write_text(" ".join(str(v) for v in [*range(36), 7]) + "\n")
    patches, labels = landsat.read_table(path)
    assert patches.shape == (1, 3, 3, 3) and labels.tolist() == [6]
    assert patches[0, 0, 0].tolist() == [0, 1, 2]  # top-left pixel, bands 1-3
    assert patches[0, 0, 1].tolist() == [4, 5, 6]  # top-middle pixel
    assert patches[0, 2, 2].tolist() == [32, 33, 34]  # bottom-right; band 4 dropped
    built = _build("landsat", tmp_path / "fixture")
    assert {item.group for item in built.items} == {"train", "test"}
    assert 5 not in {item.label for item in built.items}  # no "mixture class", as the real data


def test_cmu_amp_split_is_the_reference_assignment():
    splits = cmu_amp_expression.split_of_images()
    rng = np.random.default_rng(1)  # the reference: one permutation per subject, np.split
    for subject in cmu_amp_expression.CLASS_NAMES:
        parts = np.split(rng.permutation(75), [41, 50, 59])
        for split, numbers in zip(("train", "dev", "dev_test", "test"), parts, strict=True):
            assert {splits[f"{subject}{n:02d}.bmp"] for n in numbers} == {split}
    assert collections.Counter(splits.values()) == {
        "train": 13 * 41, "dev": 13 * 9, "dev_test": 13 * 9, "test": 13 * 16}


def test_extended_yaleb_splits_by_pose(tmp_path):
    assert len(extended_yaleb.CLASS_NAMES) == 28 and "yaleB14" not in extended_yaleb.CLASS_NAMES
    assert extended_yaleb.parse_name("yaleB39_P03A+070E-35.pgm") == (27, "train")
    assert extended_yaleb.parse_name("yaleB11_P01A-005E+10.pgm") == (0, "dev_test")
    assert extended_yaleb.parse_name("yaleB11_P00_Ambient.pgm") is None
    with pytest.raises(PrepareError):
        extended_yaleb.parse_name("yaleB14_P00A+000E+00.pgm")
    built = _build("extended_yaleb", tmp_path)
    by_split = collections.defaultdict(set)
    for item in built.items:
        by_split[item.split].add(Path(item.name).name.split("_")[1][:3])
    assert by_split == {"train": {"P00", "P02", "P03", "P04", "P07"}, "dev": {"P05"},
                        "dev_test": {"P01"}, "test": {"P06", "P08"}}
    assert built.metadata["ambient_images_skipped"] == 4


def test_official_test_lists(tmp_path):
    built = _build("butterflies", tmp_path / "b")
    for item in built.items:
        number = int(Path(item.name).stem[3:])
        listed = number in butterflies.TEST_NUMBERS[item.name.split("/")[0]]
        assert (item.group == "test") == listed
    flowers = _build("oxford_flowers_17", tmp_path / "f")
    for item in flowers.items:
        number = int(Path(item.name).stem.split("_")[1])
        assert item.label == (number - 1) // 80
    assert collections.Counter(i.group for i in flowers.items) == {"train": 85, "val": 17,
                                                                   "test": 17}
    assert flowers.metadata["images_in_no_split"] == 1
    aloi = _build("aloi", tmp_path / "a")
    assert {i.group for i in aloi.items if "ill" in i.name} == {"test"}
    assert {i.group for i in aloi.items if "ill" not in i.name} == {"train"}
    assert {aloi.class_names[i.label] for i in aloi.items} == {"1", "2", "500", "1000"}


def test_computed_class_names(tmp_path):
    ppmi = _build("ppmi", tmp_path / "p")
    assert "play_instrument/violin" in ppmi.class_names
    assert "with_instrument/violin" in ppmi.class_names and len(ppmi.class_names) == 8
    assert {i.group for i in ppmi.items if "/test/" in i.name} == {"test"}
    mpeg7 = _build("mpeg7", tmp_path / "m")
    assert mpeg7.class_names == sorted(mpeg7.class_names) and "Bone" in mpeg7.class_names
    assert not any("confusion" in i.name or "shapedata" in i.name for i in mpeg7.items)
    olivetti = _build("olivetti_face", tmp_path / "o")
    labels = {Path(i.name).stem: i.label for i in olivetti.items}
    assert labels["401_41"] == 40 and labels["12_2"] == 1

