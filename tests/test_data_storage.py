"""nevis.data.storage: round trips, atomic writes, validation and corruption on open."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from nevis.data import storage, testing
from nevis.tasks import TaskKind

REBUILD = "python -m nevis.prepare --dataset={} --force"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One single-label (grey) and one multi-label (RGB) toy dataset, written once."""
    root = tmp_path_factory.mktemp("storage")
    single = testing.write_toy_dataset(root, "toy_single", TaskKind.SINGLE_LABEL, 3)
    multi = testing.write_toy_dataset(root, "toy_multi", TaskKind.MULTI_LABEL, 5, channels=3)
    return root, single, multi


@pytest.fixture
def copy(built, tmp_path):
    """A private copy of the built datasets, for tests that damage files."""
    root = tmp_path / "data"
    shutil.copytree(built[0], root)
    return root, built[1][0]


def _as_hwc(image):
    return image[:, :, None] if image.ndim == 2 else image


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NEVIS_DATA_DIR", str(tmp_path / "x"))
    assert storage.default_data_dir() == tmp_path / "x"
    monkeypatch.delenv("NEVIS_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert storage.default_data_dir() == tmp_path / ".nevis" / "data"


@pytest.mark.parametrize("split", ["train", "dev", "dev_test", "test"])
def test_round_trip_single_label(built, split):
    root, (spec, examples), _ = built
    source = storage.open_split(spec, split, root)
    assert len(source) == source.num_examples == len(examples[split])
    assert source.channels == 1 and source.spec == spec
    for i, example in enumerate(examples[split]):
        got = source[i]
        assert got["image"].dtype == np.uint8
        np.testing.assert_array_equal(got["image"], _as_hwc(example["image"]))
        assert got["label"] == example["label"] and got["index"] == i
        assert "labels" not in got


def test_round_trip_multi_label(built):
    root, _, (spec, examples) = built
    source = storage.open_split(spec, "test", root)
    for i, example in enumerate(examples["test"]):
        got = source[i]
        np.testing.assert_array_equal(got["image"], example["image"])
        hot = np.zeros(5, np.float32)
        hot[example["labels"]] = 1
        assert got["labels"].dtype == np.float32
        np.testing.assert_array_equal(got["labels"], hot)
        assert "label" not in got


def test_train_and_dev_is_train_then_dev(built):
    root, (spec, examples), _ = built
    source = storage.open_split(spec, "train_and_dev", root)
    expected = examples["train"] + examples["dev"]
    assert len(source) == len(expected)
    for i, example in enumerate(expected):
        np.testing.assert_array_equal(source[i]["image"], _as_hwc(example["image"]))
        assert source[i]["label"] == example["label"] and source[i]["index"] == i
    with pytest.raises(IndexError):
        source.read_records([len(expected)])


def test_is_prepared_and_not_prepared_error(built):
    root, (spec, _), _ = built
    assert storage.is_prepared(spec.key, root)
    assert storage.is_prepared(spec.key, root, version="1.0.0")
    assert not storage.is_prepared(spec.key, root, version="2.0.0")
    missing = dataclasses.replace(spec, key="absent")
    assert not storage.is_prepared("absent", root)
    with pytest.raises(storage.DatasetNotPreparedError) as info:
        storage.open_split(missing, "train", root)
    assert info.value.dataset == "absent"
    assert info.value.rebuild_command == REBUILD.format("absent")
    assert REBUILD.format("absent") in str(info.value)


def test_unknown_split_is_a_value_error(built):
    root, (spec, _), _ = built
    with pytest.raises(ValueError, match="valid splits"):
        storage.open_split(spec, "validation", root)


def _failing(examples, after):
    for i, example in enumerate(examples):
        if i == after:
            raise RuntimeError("source went away")
        yield example


def test_failed_write_leaves_nothing_prepared(tmp_path):
    spec = testing.toy_spec("flaky")
    examples = testing.toy_examples(spec.kind, 3)
    broken = {**examples, "test": _failing(examples["test"], after=3)}
    with pytest.raises(RuntimeError, match="source went away"):
        storage.write_dataset(spec, broken, tmp_path, progress=False)
    assert not storage.is_prepared("flaky", tmp_path)
    assert not (tmp_path / "flaky").exists()
    assert list((tmp_path / ".tmp").iterdir()) == []
    with pytest.raises(storage.DatasetNotPreparedError):
        storage.open_split(spec, "train", tmp_path)


def test_failed_rebuild_keeps_previous_version(tmp_path):
    spec, examples = testing.write_toy_dataset(tmp_path, "keep")
    bad = {
        **examples,
        "train": [*examples["train"][:3], {"image": examples["train"][0]["image"], "label": 99}],
    }
    with pytest.raises(Exception, match="out of range"):
        storage.write_dataset(spec, bad, tmp_path, progress=False)
    source = storage.open_split(spec, "train", tmp_path)
    assert len(source) == len(examples["train"])


def test_rewrite_replaces_dataset(tmp_path):
    spec, _ = testing.write_toy_dataset(tmp_path, "again")
    _, examples = testing.write_toy_dataset(tmp_path, "again", sizes={"train": 4}, seed=1)
    source = storage.open_split(spec, "train", tmp_path)
    assert len(source) == 4
    assert source[3]["label"] == examples["train"][3]["label"]
    with pytest.raises(storage.DatasetError, match="not stored"):
        storage.open_split(spec, "dev", tmp_path)


def test_write_rejects_bad_input(tmp_path):
    spec = testing.toy_spec("bad")
    grey = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="train_and_dev"):
        storage.write_dataset(spec, {"train_and_dev": [{"image": grey, "label": 0}]}, tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        storage.write_dataset(
            spec, {"train": [{"image": grey.astype(float), "label": 0}]}, tmp_path, progress=False
        )
    mixed = [{"image": grey, "label": 0}, {"image": np.zeros((4, 4, 3), np.uint8), "label": 1}]
    with pytest.raises(Exception, match="channels"):
        storage.write_dataset(spec, {"train": mixed}, tmp_path, progress=False)
    assert not storage.is_prepared("bad", tmp_path)


@pytest.mark.parametrize(
    "change", [{"num_classes": 4}, {"kind": TaskKind.MULTI_LABEL}], ids=["classes", "kind"]
)
def test_metadata_mismatch(built, change):
    root, (spec, _), _ = built
    with pytest.raises(storage.DatasetError) as info:
        storage.open_split(dataclasses.replace(spec, **change), "train", root)
    assert not isinstance(info.value, storage.DatasetNotPreparedError)
    assert "toy_single" in str(info.value) and REBUILD.format("toy_single") in str(info.value)


def test_unknown_class_count_is_accepted(built):
    root, (spec, _), _ = built
    source = storage.open_split(dataclasses.replace(spec, num_classes=None), "dev", root)
    assert source.num_classes == 3


def _shard(root: Path, key: str, split: str = "train") -> Path:
    (path,) = (root / key / "1.0.0").glob(f"{key}-{split}.array_record-*")
    return path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _garble(path: Path) -> None:
    path.write_bytes(b"{" * path.stat().st_size)


DAMAGE = {
    "truncated_shard": lambda d: _truncate(_shard(d, "toy_single")),
    "flipped_shard": lambda d: _flip_byte(_shard(d, "toy_single")),
    "missing_info": lambda d: (d / "toy_single/1.0.0/dataset_info.json").unlink(),
    "garbled_info": lambda d: _garble(d / "toy_single/1.0.0/dataset_info.json"),
    "garbled_manifest": lambda d: _garble(d / "toy_single/1.0.0" / storage.MANIFEST),
    "missing_manifest": lambda d: (d / "toy_single/1.0.0" / storage.MANIFEST).unlink(),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_corruption_is_caught_on_open(copy, damage):
    root, spec = copy
    DAMAGE[damage](root)
    with pytest.raises(storage.DatasetError) as info:
        storage.open_split(spec, "train", root)
    assert info.value.dataset == "toy_single"
    assert REBUILD.format("toy_single") in str(info.value)


@pytest.mark.parametrize("damage", ["truncated_shard", "garbled_info"])
def test_size_only_verification_still_catches(copy, damage):
    root, spec = copy
    DAMAGE[damage](root)
    with pytest.raises(storage.DatasetError, match="--dataset=toy_single --force"):
        storage.open_split(spec, "train", root, verify="sizes")


def test_flipped_byte_fails_at_read_time_without_checksums(copy):
    root, spec = copy
    _flip_byte(_shard(root, "toy_single"))
    source = storage.open_split(spec, "train", root, verify="sizes")  # sizes still match
    with pytest.raises(storage.DatasetError, match="--dataset=toy_single --force"):
        for i in range(len(source)):
            source[i]


def test_undecodable_image_is_a_dataset_error(built):
    root, (spec, _), _ = built
    source = storage.open_split(spec, "train", root)
    with pytest.raises(storage.DatasetError, match="cannot decode") as info:
        source.decode(b"\x89PNG\r\n\x1a\n not really a png")
    assert info.value.rebuild_command == REBUILD.format("toy_single")
    with pytest.raises(storage.DatasetError):
        source.decode(b"", size=8)


def test_no_tensorflow_imported(built):
    root, (spec, _), _ = built
    storage.open_split(spec, "train", root)[0]
    assert "tensorflow" not in sys.modules


@pytest.mark.parametrize("which", [1, 2])
def test_fast_record_parser_matches_tfds(built, which):
    root, (spec, _) = built[0], built[which]
    source = storage.open_split(spec, "train_and_dev", root)
    indices = list(range(len(source)))
    fast = source.read_records(indices)
    reference = source._data_source.__getitems__(indices)  # TFDS's own deserializer
    for a, b in zip(fast, reference, strict=True):
        assert a["image"] == b["image"] and a["label"] == b["label"]
        np.testing.assert_array_equal(a["labels"], b["labels"])
    assert any(len(r["labels"]) > 1 for r in fast) == (spec.kind == TaskKind.MULTI_LABEL)
