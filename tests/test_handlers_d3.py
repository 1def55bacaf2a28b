"""Handler logic of group d3 beyond the generic fixture test: count buckets (TRANCOS, Mall), Mall's
fixed frame split, TID quality buckets and RAR fixture, Interact's per-class cut, VOC action boxes,
CASIA .gnt records, LFW-a's per-subject split, Semeion lines, SUN attribute votes."""

from __future__ import annotations

import collections
import struct
from pathlib import Path

import numpy as np
import pytest

from nevis.data import recipes
from nevis.data.handlers import (
    casia_hwdb,
    get_handler,
    interact,
    mall,
    semeion,
    tid2008,
    trancos,
    voc_actions,
)
from nevis.data.handlers.base import BuildContext


def _build(key: str, tmp_path: Path):
    handler = get_handler(key)
    folder = handler.fixture(tmp_path)
    files = {s.filename: folder / s.filename for s in handler.sources}
    return folder, handler.build(BuildContext(key, files, tmp_path / "scratch"))


# ------------------------------------------------------------------------- counting (buckets)


def test_count_buckets_follow_the_reference_rule():
    # 100 images with counts 1..10 (ten each): threshold k is count k - 1; the label steps up
    # when a count passes its bucket's threshold, so count 10 shares the last bucket with 9.
    counts = [c for c in range(1, 11) for _ in range(10)]
    labels, names = trancos.count_buckets(counts, max_size=20)
    assert labels[:10] == list(range(10)) and labels[10:] == [9] * 10
    assert names[0] == "0-0" and names[-1] == "9+"


def test_count_buckets_step_one_bucket_per_count():
    # Half the images at count 1: thresholds [0, 0, 0, 0, 0, 10, 20, 30, 40]; the label still
    # moves by at most one bucket per count value, so counts 2, 3, 4 get a bucket each.
    counts = [1] * 50 + list(range(2, 52))
    labels, names = trancos.count_buckets(counts, max_size=60)
    assert names == ["0-0", "1-1", "2-2", "3-3", "4-4", "5-10", "11-20", "21-30", "31-40",
                     "41+"]
    assert labels[51] == labels[59] == 9


def test_count_buckets_refuse_what_the_reference_asserts():
    with pytest.raises(ValueError, match="count 0 alone"):
        trancos.count_buckets([0] * 20 + list(range(1, 81)), max_size=100)
    with pytest.raises(ValueError, match="fill only"):
        trancos.count_buckets([3] * 50 + [4] * 50, max_size=8)


def test_mall_frame_split_is_the_references():
    splits = mall.frame_splits()
    assert collections.Counter(splits.values()) == {"train": 560, "dev": 120, "dev_test": 120,
                                                    "test": 1200}
    assert {f for f, s in splits.items() if s == "test"} == set(range(801, 2001))
    order = (np.random.default_rng(1).permutation(800) + 1).tolist()
    assert [splits[f] for f in order[558:562]] == ["train", "train", "dev", "dev"]


def test_mall_and_trancos_labels_come_from_all_counts(tmp_path):
    _, built = _build("mall", tmp_path / "mall")
    assert len(built.class_names) == 10
    assert {i.split for i in built.items} == {"train", "dev", "dev_test", "test"}
    _, built = _build("trancos", tmp_path / "trancos")
    groups = collections.Counter(i.group for i in built.items)
    assert groups == {"train": 40, "val": 10, "test": 10}


# ---------------------------------------------------------------------------------------- TID


def test_quality_buckets_send_ties_to_the_lower_bucket():
    values = [0.1, 0.2, 0.3, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]  # 2 per bucket
    labels, names = tid2008.quality_buckets(values)
    assert labels == [0, 0, 1, 1, 1, 2, 3, 3, 4, 4]
    assert names[1] == "MS-SSIM 0.3000-0.3000"


def test_tid_fixture_matches_names_case_insensitively(tmp_path):
    _, built = _build("tid2008", tmp_path)
    names = [i.name for i in built.items]
    assert any(Path(n).name.startswith("I") for n in names)
    assert len(names) == 40 and len(set(i.label for i in built.items)) == 5


def test_tid_fixture_is_a_windows_style_rar4_archive(tmp_path):
    folder, _ = _build("tid2013", tmp_path)
    data = (folder / "tid2013.rar").read_bytes()
    assert data.startswith(b"Rar!\x1a\x07\x00") and b"metrics_values\\MSSIM.txt" in data


# ------------------------------------------------------------------------------------ Interact


def test_interact_cuts_each_class_and_trains_on_illustrations(tmp_path):
    _, built = _build("interact", tmp_path)
    real = [i for i in built.items if i.name.startswith(interact.REAL_IMAGES)]
    drawn = [i for i in built.items if i.name.startswith(interact.ILLUSTRATION_IMAGES)]
    assert drawn and all(i.split == "train" for i in drawn)
    assert not any(n in i.name for i in built.items for n in interact.TRUNCATED)
    per_class = collections.defaultdict(collections.Counter)
    for item in real:
        per_class[item.label][item.split] += 1
    # 10 images: floor(5.6) = 5 train, floor(1.2) = 1 dev, 1 dev_test, the remaining 3 → test.
    assert per_class[0] == {"train": 5, "dev": 1, "dev_test": 1, "test": 3}
    # 3 images: floor(1.68) = 1 train, no dev / dev_test, 2 → test.
    assert per_class[10] == {"train": 1, "test": 2}
    assert len(built.class_names) == interact.NUM_CLASSES


def test_interact_split_is_seeded_and_in_first_appearance_order():
    entries = [("b1", 1), ("a1", 0), ("b2", 1), ("a2", 0)] + [(f"b{k}", 1) for k in range(3, 11)]
    splits = interact.per_class_splits(entries)
    assert splits == interact.per_class_splits(entries)
    assert collections.Counter(splits[f"b{k}"] for k in range(1, 11)) == {
        "train": 5, "dev": 1, "dev_test": 1, "test": 3}


# --------------------------------------------------------------------------------- VOC actions


def test_voc_action_objects_are_multi_label_boxes():
    xml = voc_actions._annotation("2011_000001", (30, 40), [
        {"name": "person", "box": (2, 3, 17, 15), "actions": ["ridinghorse", "other"]},
        {"name": "horse", "box": (1.0, 1.0, 20.5, 25.0)},
    ]).encode()
    objects = voc_actions.parse_objects(xml)
    assert objects[0] == ((2, 3, 17, 15), [voc_actions.ACTIONS.index("ridinghorse"), 10])
    assert objects[1] is None


def test_voc_action_crops_have_the_box_size(tmp_path):
    _, built = _build("voc_actions", tmp_path)
    item = built.items[0]
    crop = recipes.read_image(item)
    x0, y0, x1, y1 = item.image.box
    assert crop.shape == (y1 - y0, x1 - x0, 3) and crop.dtype == np.uint8
    assert built.metadata["objects_without_actions"] == 1
    assert any(len(i.label) == 2 for i in built.items)


# -------------------------------------------------------------------------------------- CASIA


def test_gnt_records_are_inverted_and_classes_sorted_by_code(tmp_path):
    pixels = np.array([[255, 0, 10], [255, 255, 100]], np.uint8)
    record = struct.pack("<I2sHH", 10 + pixels.size, b"\xd6\xd0", 3, 2) + pixels.tobytes()
    other = struct.pack("<I2sHH", 11, b"\xff\xfe", 1, 1) + b"\x07"
    (tmp_path / "1001-c.gnt").write_bytes(record + other)
    (code, first), (code2, second) = casia_hwdb.read_gnt(tmp_path / "1001-c.gnt")
    assert code == b"\xd6\xd0" and casia_hwdb.class_name(code) == "中"
    assert casia_hwdb.class_name(code2) == "0xFFFE"
    np.testing.assert_array_equal(first(), 255 - pixels)
    assert second().tolist() == [[248]]
    (tmp_path / "bad.gnt").write_bytes(struct.pack("<I2sHH", 99, b"\xd6\xd0", 3, 2)
                                       + pixels.tobytes())
    with pytest.raises(ValueError, match="not a .gnt file"):
        casia_hwdb.read_gnt(tmp_path / "bad.gnt")


def test_casia_classes_come_from_all_archives(tmp_path):
    _, built = _build("casia_hwdb", tmp_path)
    assert built.class_names == sorted(built.class_names, key=lambda n: (
        bytes.fromhex(n[2:]) if n.startswith("0x") else n.encode("gb2312")))
    assert collections.Counter(i.group for i in built.items) == {"train": 36, "test": 12}


# ------------------------------------------------------------------------------ LFW-a, others


def test_lfwa_keeps_subjects_with_five_images_last_two_in_test(tmp_path):
    _, built = _build("lfwa", tmp_path)
    assert len(built.class_names) == 423
    subject = [i for i in built.items if i.label == built.class_names.index("S422")]
    assert [i.split for i in subject] == ["train"] * 3 + ["dev", "dev_test", "test", "test"]


def test_semeion_line_is_argmax_of_the_code():
    pixels = ["1.0000"] * 3 + ["0.0000"] * 253
    image, label = semeion.parse_line(" ".join(pixels + ["0"] * 7 + ["1", "0", "0"]) + " ")
    assert label == 7 and image.shape == (16, 16) and image[0, :4].tolist() == [255] * 3 + [0]


def test_sun_attributes_take_every_voted_attribute(tmp_path):
    _, built = _build("sun_attributes", tmp_path)
    assert len(built.class_names) == 102
    assert all(isinstance(i.label, list) and i.label == sorted(i.label) for i in built.items)


def test_silhouettes_use_the_official_val_and_test(tmp_path):
    _, built = _build("silhouettes_28", tmp_path)
    parts = built.recipe(built.items)
    assert {i.group for i in parts["dev_test"]} == {"val"}
    assert {i.group for i in parts["test"]} == {"test"}
    assert recipes.read_image(built.items[0]).shape == (28, 28)
