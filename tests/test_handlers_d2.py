"""Handler logic of group d2 beyond the generic fixture test: VisTex's .Z archives and links,
COCO's box crops, IAPR TC-12's region labels, WikiArt's CSVs and unreadable members, the
traffic-sign label files, CVC-MUSCIMA's partitions, KTH-TIPS materials, ANIMAL's class union."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nevis.data import recipes
from nevis.data.handlers import (
    coco_single_label,
    get_handler,
    iaprtc12,
    kth_tips,
    vistex,
    wiki_paintings_style,
)
from nevis.data.handlers.base import BuildContext
from nevis.data.sources import PrepareError

KEYS = ("belgium_tsc", "german_tsr", "vistex", "umd", "kth_tips", "uiuc_texture",
        "kth_tips_2b", "cvc_muscima", "iaprtc12", "kth_tips_2a", "wiki_paintings_style",
        "mit_scenes", "coco_single_label", "animal")


def _build(key: str, tmp_path: Path, edit=None):
    handler = get_handler(key)
    folder = handler.fixture(tmp_path)
    if edit is not None:
        edit(folder)
    files = {s.filename: folder / s.filename for s in handler.sources}
    return handler.build(BuildContext(key, files, tmp_path / "scratch"))


@pytest.mark.parametrize("key", KEYS)
def test_fixture_is_small_and_fills_every_split(key, tmp_path):
    handler = get_handler(key)
    start = time.perf_counter()
    folder = handler.fixture(tmp_path)
    assert time.perf_counter() - start < 2.0  # < 1 s alone; slack for a busy machine
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 300_000
    built = _build(key, tmp_path / "again")
    if handler.num_classes is not None:
        assert len(built.class_names) == handler.num_classes
    parts = built.recipe(recipes.deduplicate(built.items).items)
    assert all(parts[s] for s in recipes.STORED_SPLITS), {s: len(v) for s, v in parts.items()}


# ------------------------------------------------------------------------------------ VisTex


def test_vistex_inner_archives_are_unix_compressed_tars(tmp_path):
    folder = get_handler("vistex").fixture(tmp_path)
    with tarfile.open(folder / vistex.ARCHIVE) as outer:
        inner = {m.name: outer.extractfile(m).read() for m in outer.getmembers()
                 if m.name.endswith(".tar.Z")}
    assert len(inner) == 2 and all(data[:2] == b"\x1f\x9d" for data in inner.values())
    for data in inner.values() if shutil.which("gzip") else ():
        # gzip -d reads .Z: an independent decoder sees a tar
        out = subprocess.run(["gzip", "-dc"], input=data, capture_output=True, check=True)
        assert tarfile.open(fileobj=io.BytesIO(out.stdout)).getnames()


def test_vistex_resolves_reference_links_across_archives(tmp_path):
    built = _build("vistex", tmp_path)
    assert built.class_names == sorted(vistex.FIXTURE_CLASSES)
    assert len(built.items) == 6 * len(vistex.FIXTURE_CLASSES)  # scenes are not read
    for item in built.items:
        assert item.image.is_file() and not item.image.is_symlink()
        assert built.class_names[item.label] in item.name
    linked = [i for i in built.items if "512x512" in i.image.as_posix()]
    assert len(linked) == len(built.items) - 1  # one plain file among the links


def test_vistex_dangling_link_is_an_error(tmp_path):
    index = {"VisTex/Images/Reference/Bark/a.ppm": tmp_path / "a.ppm"}
    (tmp_path / "a.ppm").symlink_to("missing.ppm")
    assert vistex.resolve("VisTex/Images/Reference/Bark/a.ppm", index) is None


# -------------------------------------------------------------------------------------- COCO


def test_coco_crops_boxes_as_pillow_and_skips_small_ones(tmp_path):
    built = _build("coco_single_label", tmp_path)
    assert len(built.class_names) == 90 and built.class_names[89] == "toothbrush"
    assert built.metadata["train"] == {"boxes_kept": 42, "boxes_smaller_than_16": 36}
    info = json.loads(zipfile.ZipFile(tmp_path / "coco_single_label" /
                                      coco_single_label.ANNOTATIONS_ARCHIVE)
                      .read("annotations/instances_train2017.json"))
    sizes = {image["id"]: (image["width"], image["height"]) for image in info["images"]}
    kept = [a for a in info["annotations"] if min(a["bbox"][2:]) >= 16]
    train = [item for item in built.items if item.group == "train"]
    assert len(train) == len(kept)
    for item in train:
        annotation = kept[int(item.name.rsplit("#box", 1)[1])]
        assert item.name.split("#")[0].endswith(f"{annotation['image_id']:012d}.jpg")
        x, y, w, h = annotation["bbox"]
        width, height = sizes[annotation["image_id"]]
        expected = (round(min(width, x + w)) - round(x), round(min(height, y + h)) - round(y))
        crop = recipes.read_image(item)
        assert crop.dtype == np.uint8 and (crop.shape[1], crop.shape[0]) == expected
        assert item.label == annotation["category_id"] - 1
    assert {item.group for item in built.items} == {"train", "test"}
    forward = [recipes.read_image(item) for item in built.items]
    backward = [recipes.read_image(item) for item in reversed(built.items)][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward, strict=True))


def test_coco_category_names_are_checked():
    coco_single_label.check_categories([{"id": 1, "name": "person"}, {"id": 90,
                                                                      "name": "toothbrush"}])
    with pytest.raises(PrepareError, match="category 12"):
        coco_single_label.check_categories([{"id": 12, "name": "stop sign"}])


# -------------------------------------------------------------------------------- IAPR TC-12


def test_iaprtc12_labels_are_every_region_word(tmp_path):
    labels = iaprtc12.read_region_labels(["25 1 3\n25 2 7\n25 3 3\n26 1 1\n", "27 1 276\n"])
    assert labels == {25: {2, 6}, 26: {0}, 27: {275}}  # the reference keeps {2} for image 25
    built = _build("iaprtc12", tmp_path)
    assert len(built.class_names) == iaprtc12.FIXTURE_WORDS
    assert built.metadata["official_ids"] == {"training": 25, "validation": 10, "testing": 5}
    assert len(built.items) == 35  # training + validation only
    assert all(item.name.startswith("iaprtc12/images/") for item in built.items)  # one copy
    assert any(len(item.label) > 1 for item in built.items)
    assert iaprtc12.read_words("1\tsky\n2\t\n4\tcat\n") == ["sky", " ", "unlisted_3", "cat"]


# ------------------------------------------------------------------------------------ WikiArt


def test_wikiart_csv_header_only_when_not_numeric():
    assert wiki_paintings_style.read_rows("a/x.jpg,3\nb/y.jpg,4\n", "f") == [
        ("a/x.jpg", 3), ("b/y.jpg", 4)]
    assert wiki_paintings_style.read_rows("path,label\na/x,y.jpg,5\n", "f") == [("a/x,y.jpg", 5)]


def test_wikiart_skips_unreadable_members(tmp_path):
    def corrupt_one(folder):
        path = folder / wiki_paintings_style.IMAGES_ARCHIVE
        with zipfile.ZipFile(path) as zf:
            info = zf.infolist()[3]
        data = bytearray(path.read_bytes())
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        data[start + 20] ^= 0xFF  # stored member: the CRC no longer matches
        path.write_bytes(bytes(data))
        corrupt_one.name = info.filename

    built = _build("wiki_paintings_style", tmp_path, corrupt_one)
    assert built.metadata["unreadable_members"] == [corrupt_one.name]
    assert len(built.items) == 39 and corrupt_one.name not in {i.name for i in built.items}
    item = built.items[0]
    assert Image.open(io.BytesIO(recipes.read_image(item))).size == (300, 12)
    assert get_handler("wiki_paintings_style").max_image_side == 256


# --------------------------------------------------------------------- smaller label rules


def test_traffic_signs_labels(tmp_path):
    gtsrb = _build("german_tsr", tmp_path / "g")
    test = [item for item in gtsrb.items if item.group == "test"]
    assert [item.label for item in test] == [0, 0, 1, 1, 2, 2, 13, 13, 25, 25, 42, 42]
    belgium = _build("belgium_tsc", tmp_path / "b")
    assert belgium.class_names[61] == "00061 sign_class_61"
    assert {item.label for item in belgium.items} == {0, 1, 7, 19, 32, 45, 61}

    def drop_a_class(folder):
        path = folder / "reducedSetTS.txt"
        path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")

    with pytest.raises(PrepareError, match="61 classes"):
        _build("belgium_tsc", tmp_path / "b2", drop_a_class)


def test_cvc_muscima_reads_grey_pages_of_the_partition(tmp_path):
    built = _build("cvc_muscima", tmp_path)
    assert all("/PNG_GT_Gray/" in item.name for item in built.items)
    assert {item.group for item in built.items if item.name.endswith(("p007.png", "p008.png"))
            } == {"test"}
    writer = built.items[0].name.split("/")[2]
    assert built.class_names[built.items[0].label] == writer


def test_mit_scenes_missing_listed_image_is_an_error(tmp_path):
    def drop_one(folder):
        path = folder / "indoor-scenes-cvpr-2019.zip"
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("bar_0003.jpg")}
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)

    with pytest.raises(PrepareError, match="1 images of TrainImages.txt"):
        _build("mit_scenes", tmp_path, drop_one)


def test_kth_tips_material_folders():
    assert kth_tips.material_of("KTH_TIPS/linen/44-scale_3_im_1_col.png") == "linen"
    assert kth_tips.material_of("KTH-TIPS2-a/wool/sample_a/22a-scale_10_im_10_col.png") == "wool"
    assert kth_tips.material_of("KTH-TIPS2-a/wool/sample_a/readme.txt") is None
    assert kth_tips.material_of("KTH_TIPS/top.png") is None


def test_animal_classes_shared_by_both_zips_count_once(tmp_path):
    built = _build("animal", tmp_path)
    assert len(built.class_names) == 20
    assert built.metadata["reference_num_classes"] == 40
    assert not any("Thumbs.db" in item.name for item in built.items)
