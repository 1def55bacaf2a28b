"""nevis.data.embedded / splits / procedural: the embedded stream's tasks and their splits."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nevis.data import embedded, procedural, splits, storage
from nevis.tasks import TaskKind

# Small real-data tasks keep the module fast; procedural generators are tested directly.
BUILT = ("lfw_faces", "uci_digits")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded")
    for key in BUILT:
        embedded.prepare_embedded(embedded.embedded_dataset(key).spec, root, progress=False)
    return root


def _spec(key):
    return embedded.embedded_dataset(key).spec


def test_task_list():
    tasks = embedded.EMBEDDED_TASKS
    assert len(tasks) >= 6
    assert [t.year for t in tasks] == sorted(t.year for t in tasks)
    assert len({t.key for t in tasks}) == len(tasks)
    assert all(t.source == "embedded" and t.num_classes >= 2 for t in tasks)
    assert any(t.kind == TaskKind.MULTI_LABEL for t in tasks)
    assert max(t.num_classes for t in tasks) >= 50
    with pytest.raises(KeyError, match="embedded tasks"):
        embedded.embedded_dataset("imagenet")


def test_split_counts_and_stratification():
    assert splits.split_counts(100) == {"train": 56, "dev": 12, "dev_test": 12, "test": 20}
    assert sum(splits.split_counts(1797).values()) == 1797
    labels = np.array([0] * 40 + [1] * 9 + [2] * 1)
    parts = splits.assign_splits(len(labels), labels)
    every = np.concatenate(list(parts.values()))
    assert sorted(every.tolist()) == list(range(len(labels)))  # disjoint and complete
    assert set(labels[parts["train"]]) == {0, 1, 2}
    assert all(set(labels[parts[s]]) >= {0, 1} for s in parts)
    again = splits.assign_splits(len(labels), labels)
    assert all(np.array_equal(parts[s], again[s]) for s in parts)
    unstratified = splits.assign_splits(50, None)
    assert {s: len(v) for s, v in unstratified.items()} == splits.split_counts(50)


@pytest.mark.parametrize("key", BUILT)
def test_stored_splits(data_dir, key):
    spec = _spec(key)
    sources = {s: storage.open_split(spec, s, data_dir) for s in storage.STORED_SPLITS}
    total = sum(len(s) for s in sources.values())
    labels = {
        name: np.array([r["label"] for r in src.read_records(range(len(src)))])
        for name, src in sources.items()
    }
    assert set(labels["train"]) == set(range(spec.num_classes))  # every class in train
    assert abs(len(sources["train"]) / total - 0.56) < 0.01
    assert abs(len(sources["test"]) / total - 0.20) < 0.01
    # Stored splits equal a fresh assignment of the source data: same examples, same order.
    expected = embedded.split_examples(embedded.embedded_dataset(key))
    for name, src in sources.items():
        assert [e["label"] for e in expected[name]] == labels[name].tolist()
        for i in (0, len(src) - 1):
            np.testing.assert_array_equal(src[i]["image"][:, :, 0], expected[name][i]["image"])
    union = storage.open_split(spec, "train_and_dev", data_dir)
    assert len(union) == len(sources["train"]) + len(sources["dev"])
    np.testing.assert_array_equal(union[len(sources["train"])]["image"], sources["dev"][0]["image"])


def test_splits_are_disjoint(data_dir):
    spec = _spec("uci_digits")
    images = embedded.embedded_dataset("uci_digits").load()[0]
    position = {}
    for i, image in enumerate(images):
        position.setdefault(image.tobytes(), set()).add(i)
    used: set[int] = set()
    for name in storage.STORED_SPLITS:
        src = storage.open_split(spec, name, data_dir)
        for i, record in enumerate(src.read_records(range(len(src)))):
            candidates = position[src.decode(record["image"])[:, :, 0].tobytes()] - used
            assert candidates, f"{name}[{i}] is already in another split"
            used.add(min(candidates))
    assert len(used) == len(images)


def test_builds_are_byte_identical(data_dir, tmp_path):
    # Built in another process: TFDS's serialisation order used to vary between processes.
    command = ["-m", "nevis.data.prepare", "--dataset=lfw_faces", f"--data_dir={tmp_path}"]
    subprocess.run([sys.executable, *command], check=True, capture_output=True, timeout=120)
    first = json.loads((data_dir / "lfw_faces/1.0.0" / storage.MANIFEST).read_text())
    second = json.loads((tmp_path / "lfw_faces/1.0.0" / storage.MANIFEST).read_text())
    assert first["files"] == second["files"]
    assert all("sha256" in entry for entry in first["files"].values())


def test_prepare_skips_unless_forced(data_dir):
    spec = _spec("lfw_faces")
    manifest = data_dir / "lfw_faces/1.0.0" / storage.MANIFEST
    before = manifest.stat().st_mtime_ns
    embedded.prepare_embedded(spec, data_dir, progress=False)
    assert manifest.stat().st_mtime_ns == before
    embedded.prepare_embedded(spec, data_dir, force=True, progress=False)
    assert manifest.stat().st_mtime_ns != before
    source = storage.open_split(spec, "test", data_dir)
    assert source[0]["image"].shape == (25, 25, 1)


def test_lfw_labels_follow_skimage_order():
    images, labels = embedded.embedded_dataset("lfw_faces").load()
    assert len(images) == 200 and labels[:100] == [0] * 100 and labels[100:] == [1] * 100
    assert embedded.embedded_dataset("lfw_faces").class_names == ("face", "non_face")


def test_procedural_generators_are_seeded():
    for make in (
        lambda s: procedural.coloured_shapes(24, seed=s),
        lambda s: procedural.glyphs(24, 12, seed=s),
        lambda s: procedural.multilabel_shapes(24, seed=s),
    ):
        (a, la), (b, lb), (c, _) = make(1), make(1), make(2)
        assert la == lb and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
        assert all(x.dtype == np.uint8 and x.shape[:2] == (32, 32) for x in a)


def test_procedural_targets():
    images, labels = procedural.coloured_shapes(36, seed=0)
    assert sorted(set(labels)) == list(range(12)) and images[0].shape == (32, 32, 3)
    images, labels = procedural.glyphs(40, 20, seed=0)
    assert sorted(set(labels)) == list(range(20)) and images[0].shape == (32, 32)
    _, targets = procedural.multilabel_shapes(60, seed=0)
    assert all(1 <= len(t) <= 3 and len(set(t)) == len(t) for t in targets)
    assert {c for t in targets for c in t} == set(range(len(procedural.OBJECTS)))
