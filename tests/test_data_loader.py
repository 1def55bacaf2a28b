"""nevis.data.loader: batch contract, ordering, resume, multi-host slicing and threading."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from nevis.data import augment, loader, storage, testing
from nevis.tasks import TaskKind

SIZES = {"train": 50, "dev": 7}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    single, _ = testing.write_toy_dataset(root, "toy_grey", TaskKind.SINGLE_LABEL, 4, SIZES)
    multi, _ = testing.write_toy_dataset(
        root, "toy_multi", TaskKind.MULTI_LABEL, 5, SIZES, channels=3
    )
    return storage.open_split(single, "train", root), storage.open_split(multi, "train", root)


def _run(source, **kwargs):
    args = dict(batch_size=16, image_size=8, shuffle=True, seed=3, augment=False, repeat=False)
    return list(loader.batches(source, **{**args, **kwargs}))


def _take(source, count, **kwargs):
    args = dict(batch_size=16, image_size=8, shuffle=True, seed=3, augment=True, repeat=True)
    return list(itertools.islice(loader.batches(source, **{**args, **kwargs}), count))


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_num_batches():
    assert loader.num_batches(50, 16) == 4
    assert loader.num_batches(50, 16, drop_remainder=True) == 3
    assert loader.num_batches(48, 16) == 3
    with pytest.raises(ValueError):
        loader.num_batches(5, 0)


@pytest.mark.parametrize("cache", [True, False])
def test_single_label_contract_and_coverage(sources, cache):
    source = sources[0]
    out = _run(source, cache=cache)
    assert len(out) == 4
    for batch in out:
        assert set(batch) == {"image", "label", "index", "mask"}
        assert batch["image"].shape == (16, 8, 8, 3) and batch["image"].dtype == np.float32
        assert batch["label"].shape == (16,) and batch["label"].dtype == np.int32
        assert batch["index"].dtype == np.int32 and batch["mask"].dtype == bool
    assert [int(b["mask"].sum()) for b in out] == [16, 16, 16, 2]
    indices = np.concatenate([b["index"][b["mask"]] for b in out])
    assert sorted(indices.tolist()) == list(range(50))  # every example exactly once
    last = out[-1]
    assert np.all(last["index"][~last["mask"]] == -1) and np.all(last["image"][~last["mask"]] == 0)
    for batch in out:
        for i, label in zip(
            batch["index"][batch["mask"]], batch["label"][batch["mask"]], strict=True
        ):
            assert source[int(i)]["label"] == label


def test_pixels_grey_to_rgb_and_range(sources):
    source = sources[0]
    batch = _run(source, shuffle=False, image_size=6)[0]
    image = batch["image"]
    assert image.min() >= -1 and image.max() <= 1 and image.min() < -0.5 < 0.5 < image.max()
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    stored = source[0]["image"]
    expected = source.decode(source.read_records([0])[0]["image"], 6)
    assert stored.shape[2] == 1 and expected.shape == (6, 6, 3)
    np.testing.assert_allclose(image[0], expected / 127.5 - 1, atol=1e-6)
    assert batch["index"].tolist() == list(range(16))


def test_multi_label_batches(sources):
    source = sources[1]
    out = _run(source, batch_size=32)
    assert all(set(b) == {"image", "labels", "index", "mask"} for b in out)
    assert out[0]["labels"].shape == (32, 5) and out[0]["labels"].dtype == np.float32
    for batch in out:
        for i, row in zip(batch["index"], batch["labels"], strict=True):
            if i >= 0:
                np.testing.assert_array_equal(row, source[int(i)]["labels"])
            else:
                assert not row.any()
    assert np.abs(out[0]["image"][..., 0] - out[0]["image"][..., 1]).max() > 0  # colour kept


def test_shuffle_is_seeded(sources):
    source = sources[0]
    order = lambda **kw: np.concatenate([b["index"] for b in _run(source, **kw)]).tolist()  # noqa: E731
    assert order(seed=3) == order(seed=3)
    assert order(seed=3) != order(seed=4)
    assert order(shuffle=False)[:50] == list(range(50))


def test_cache_and_prefetch_do_not_change_batches(sources):
    source = sources[0]
    reference = _run(source, augment=True, cache=True)
    for variant in (
        _run(source, augment=True, cache=False),
        _run(source, augment=True, prefetch=0),
    ):
        for a, b in zip(reference, variant, strict=True):
            _same(a, b)


@pytest.mark.parametrize("repeat", [False, True])
def test_start_batch_resumes_exactly(sources, repeat):
    source = sources[0]
    if repeat:
        full = _take(source, 9)
        resumed = _take(source, 4, start_batch=5)
    else:
        full = _run(source, augment=True)
        resumed = _run(source, augment=True, start_batch=2)
    assert len(resumed) == len(full[-len(resumed) :]) > 0
    for a, b in zip(full[-len(resumed) :], resumed, strict=True):
        _same(a, b)
    assert _run(source, start_batch=10) == []


def test_repeat_runs_epochs_back_to_back(sources):
    source = sources[0]
    out = _take(source, 7, augment=False)  # 112 positions: epochs 0, 1 and part of 2
    assert all(b["mask"].all() for b in out)
    stream = np.concatenate([b["index"] for b in out])
    assert sorted(stream[:50].tolist()) == list(range(50))
    assert sorted(stream[50:100].tolist()) == list(range(50))
    assert stream[:50].tolist() != stream[50:100].tolist()  # a new order each epoch


@pytest.mark.parametrize("count", [2, 4])
def test_process_slices_partition_the_global_batch(sources, count):
    source = sources[0]
    whole = _take(source, 3)
    parts = [_take(source, 3, process_index=i, process_count=count) for i in range(count)]
    for k, batch in enumerate(whole):
        for key in batch:
            joined = np.concatenate([p[k][key] for p in parts])
            np.testing.assert_array_equal(joined, batch[key], err_msg=key)
    assert parts[0][0]["image"].shape[0] == 16 // count


def test_bad_arguments_fail_eagerly(sources):
    source = sources[0]
    with pytest.raises(ValueError, match="divisible"):
        _run(source, process_count=3)
    with pytest.raises(ValueError, match="process_index"):
        loader.batches(
            source,
            batch_size=16,
            image_size=8,
            shuffle=False,
            seed=0,
            augment=False,
            repeat=False,
            process_index=2,
            process_count=2,
        )
    with pytest.raises(TypeError):
        _run(source, augment="yes")


def test_augmentation(sources):
    source = sources[0]
    plain = _run(source, shuffle=False)
    flipped = _run(source, shuffle=False, augment=augment.Augment(crop_padding=0, flip=True))
    n_flipped = 0
    for a, b in zip(plain, flipped, strict=True):
        for x, y in zip(a["image"], b["image"], strict=True):
            same, mirrored = np.array_equal(x, y), np.array_equal(x[:, ::-1], y)
            assert same or mirrored
            n_flipped += mirrored and not same
    assert 10 < n_flipped < 54
    cropped = _run(source, shuffle=False, augment=augment.Augment(crop_padding=2, flip=False))
    assert not np.array_equal(cropped[0]["image"], plain[0]["image"])
    assert (
        _run(source, augment=True, seed=1)[0]["image"].tolist()
        != _run(source, augment=True, seed=2)[0]["image"].tolist()
    )


def test_flip_defaults():
    assert not augment.flip_default("mnist_5k") and not augment.flip_default("uci_digits")
    assert not augment.flip_default("glyphs_many")
    assert augment.flip_default("shapes_colour") and augment.flip_default("lfw_faces")
    assert augment.resolve_augment(True, "uci_digits").flip is False
    assert augment.resolve_augment(augment.Augment(flip=True), "uci_digits").flip is True
    assert augment.resolve_augment(False, "lfw_faces") is None
    assert augment.resolve_augment(None, "lfw_faces") is None


def test_reflect_crop_matches_numpy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 6, 6, 3), np.uint8)
    params = {
        "dy": np.array([0, 1, 2, 4, 3]),
        "dx": np.array([4, 0, 2, 1, 3]),
        "flip": np.array([False, True, False, True, False]),
    }
    out = augment.augment_batch(images, params, 2)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    for i in range(5):
        window = padded[
            i, params["dy"][i] : params["dy"][i] + 6, params["dx"][i] : params["dx"][i] + 6
        ]
        np.testing.assert_array_equal(out[i], window[:, ::-1] if params["flip"][i] else window)


def _loader_threads():
    return [t for t in threading.enumerate() if t.name == "nevis-batches"]


def test_worker_errors_reach_the_consumer(sources, monkeypatch):
    source = sources[0]
    calls = []

    def broken(indices):
        calls.append(indices)
        raise storage.DatasetError("toy_grey", "simulated read failure")

    monkeypatch.setattr(source, "read_records", broken)
    with pytest.raises(storage.DatasetError, match="simulated read failure"):
        _run(source, cache=False)
    assert calls and not _loader_threads()


def test_early_stop_shuts_the_worker_down(sources):
    iterator = loader.batches(
        sources[0],
        batch_size=8,
        image_size=8,
        shuffle=True,
        seed=0,
        augment=True,
        repeat=True,
        prefetch=1,
    )
    next(iterator)
    assert _loader_threads()
    iterator.close()
    assert not _loader_threads()
