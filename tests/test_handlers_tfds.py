"""The 22 TFDS-backed NEVIS'22 handlers: split recipes, record formats, failures. No TF, offline.

Fixture records carry their origin in their image (record index, TFDS split, dataset), so each
test checks exactly which TFDS records went to which of our splits, in which order.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from nevis.data import recipes
from nevis.data.handlers import all_handlers
from nevis.data.handlers import tfds_backed as tb
from nevis.data.handlers.base import BuildContext
from nevis.data.sources import NeedsExtra, NeedsManualDownload, PrepareError
from nevis.tasks import TaskKind

KEYS = ("coil100", "mnist", "caltech101", "voc_2007", "imagenet2012", "oxford_flowers102",
        "voc_2012", "smallnorb", "sun397", "cifar10", "caltech_birds2011", "dtd",
        "oxford_iiit_pet", "stanford_dogs", "svhn_cropped", "celeb_a", "cifar100",
        "emnist_balanced", "fashion_mnist", "stl10", "domainnet", "patch_camelyon")
SEVENTY = {"mnist", "cifar10", "cifar100", "caltech101", "caltech_birds2011", "emnist_balanced",
           "fashion_mnist", "oxford_iiit_pet", "stanford_dogs", "stl10", "svhn_cropped"}
EIGHTY = {"dtd", "oxford_flowers102", "voc_2007", "patch_camelyon", "sun397", "celeb_a"}
TRAIN, VALIDATION, TEST = (tb.SPLIT_IDS[s] for s in ("train", "validation", "test"))
DOMAINS = ("real", "painting", "clipart", "quickdraw", "infograph", "sketch")


@pytest.fixture(autouse=True)
def _no_default_tfds_dir(tmp_path, monkeypatch):
    """Never look in (or let TFDS write to) the user's ~/tensorflow_datasets."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "default_tfds"))


def handler(key: str) -> tb.TfdsHandler:
    return all_handlers()[key]


def build(key: str, mirror: Path | None = None, **options):
    options = {"mirror": str(mirror) if mirror else None, "download": False, **options}
    ctx = BuildContext(key, {}, Path("/nonexistent/scratch"), options=options)
    return handler(key).build(ctx)


def placed(built) -> dict[str, list[tuple[int, int, int]]]:
    """Our split -> [(dataset id, TFDS split id, record index)] in item order."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    for split, items in built.recipe(built.items).items():
        rows = []
        for item in items:
            index, split_id, dataset_id = tb.fixture_origin(recipes.read_image(item))
            rows.append((dataset_id, split_id, index))
        out[split] = rows
    return out


def expected(key: str, sizes: dict[tuple[int, int], int], fields) -> dict[str, list]:
    """The reference recipes (nevis22.md §5), written out independently of the handlers."""
    def run(dataset, split, lo, hi):
        return [(dataset, split, i) for i in range(lo, hi)]

    n = sizes.get((0, TRAIN), 0)
    if key in SEVENTY or key == "imagenet2012":
        train, dev = (0.7, 0.15) if key in SEVENTY else (0.9, 0.05)
        test = TEST if key in SEVENTY else VALIDATION
        a = int(n * train)
        b = a + int(n * dev)
        return {"train": run(0, TRAIN, 0, a), "dev": run(0, TRAIN, a, b),
                "dev_test": run(0, TRAIN, b, n), "test": run(0, test, 0, sizes[(0, test)])}
    if key in EIGHTY:
        a = int(n * 0.8)
        return {"train": run(0, TRAIN, 0, a), "dev": run(0, TRAIN, a, n),
                "dev_test": run(0, VALIDATION, 0, sizes[(0, VALIDATION)]),
                "test": run(0, TEST, 0, sizes[(0, TEST)])}
    if key == "voc_2012":
        a, v = int(n * 0.8), sizes[(0, VALIDATION)]
        return {"train": run(0, TRAIN, 0, a), "dev": run(0, TRAIN, a, n),
                "dev_test": run(0, VALIDATION, 0, v // 2), "test": run(0, VALIDATION, v // 2, v)}
    if key == "coil100":
        bins = {"train": {70, 71, 0, 1, 2}, "dev": {16, 17, 18, 19, 20},
                "dev_test": {50, 51, 52, 53, 54}}
        out = {s: [] for s in ("train", "dev", "dev_test", "test")}
        for i in range(n):
            angle = fields(0, TRAIN, i)["angle_label"]
            out[next((s for s, b in bins.items() if angle in b), "test")].append((0, TRAIN, i))
        return out
    if key == "smallnorb":
        by_instance = {7: "train", 8: "train", 9: "train", 4: "dev", 6: "dev_test"}
        out = {s: [] for s in ("train", "dev", "dev_test")}
        for i in range(n):
            out[by_instance[fields(0, TRAIN, i)["instance"]]].append((0, TRAIN, i))
        return {**out, "test": run(0, TEST, 0, sizes[(0, TEST)])}
    if key == "domainnet":
        train = [r for d in range(5) for r in run(d, TRAIN, 0, sizes[(d, TRAIN)])]
        dev = [r for d in range(5) for r in run(d, TEST, 0, sizes[(d, TEST)])]
        return {"train": train, "dev": dev, "dev_test": run(5, TRAIN, 0, sizes[(5, TRAIN)]),
                "test": run(5, TEST, 0, sizes[(5, TEST)])}
    raise AssertionError(f"no expectation for {key}")


def fixture_sizes(root: Path) -> dict[tuple[int, int], int]:
    """(dataset id, split id) -> records, read from the prepared fixture folders."""
    import tensorflow_datasets as tfds

    sizes = {}
    for info_file in sorted(root.rglob("dataset_info.json")):
        builder = tfds.builder_from_directory(str(info_file.parent))
        name = builder.info.full_name.rsplit("/", 1)[0]
        dataset = DOMAINS.index(name.split("/")[1]) if name.startswith("domainnet/") else 0
        for split, info in builder.info.splits.items():
            sizes[(dataset, tb.SPLIT_IDS[split])] = info.num_examples
    return sizes


# ------------------------------------------------------------------------------------ catalog


def test_every_tfds_catalog_dataset_has_a_matching_handler():
    from nevis.streams.catalog import full_stream

    tasks = {e.task.key: e.task for e in full_stream() if e.task.source != "custom"}
    assert sorted(tasks) == sorted(KEYS)
    for key, task in tasks.items():
        h = handler(key)
        assert isinstance(h, tb.TfdsHandler)
        assert (h.key, h.num_classes, h.kind, h.source) == (
            key, task.num_classes, task.kind, task.source), key
        assert h.sources == () and h.version and h.homepage.startswith("http")


def test_handlers_agree_with_the_registered_tfds_builders():
    """Name, version, configs, feature keys, class counts and channels, checked offline."""
    import tensorflow_datasets as tfds

    for key in KEYS:
        h = handler(key)
        for name in h.datasets:
            builder = tfds.builder(name)
            assert str(builder.version) == h.tfds_version, name
            assert builder.info.full_name == f"{name}/{h.tfds_version}", name
            features = builder.info.features
            assert features[h.image_key].shape[-1] == h.channels, name
            for feature_key in (*h.label.keys, *h.recipe.route_keys):
                assert feature_key in features, (name, feature_key)
            if isinstance(h.label, tb.Attributes):
                assert list(h.label.names) == list(features["attributes"].keys())
            else:
                assert len(h.label.class_names(features)) == h.num_classes, name


# ------------------------------------------------------------------------------------ recipes


@pytest.mark.parametrize("key", KEYS)
def test_recipe_places_exactly_the_reference_index_ranges(key, tmp_path):
    h = handler(key)
    folder = h.fixture(tmp_path)
    assert folder.is_dir() and folder.is_relative_to(tmp_path / "tfds")
    built = build(key, tmp_path, tfds_data_dir=tmp_path / "empty")
    assert built.deduplicate is False
    assert len(built.class_names) == h.num_classes
    assert built.channels == h.channels
    assert built.metadata["tfds_name"] == h.tfds_name
    assert built.metadata["tfds_version"] == h.tfds_version
    assert built.metadata["source_format"] == "array_record"

    sizes = fixture_sizes(tmp_path / "tfds")
    route_values = h.recipe.fixture_values or (lambda d, s, i: {})
    split_names = {v: k for k, v in tb.SPLIT_IDS.items()}

    def fields(dataset, split_id, index):
        return route_values(None, split_names[split_id], index)

    got = placed(built)
    want = expected(key, sizes, fields)
    assert got == want
    everything = [r for rows in got.values() for r in rows]
    assert len(everything) == len(set(everything)) == len(built.items)

    # Labels: as the fixture wrote them (seed = index + 100 · split id), multi-label sorted.
    num_classes = h.num_classes
    for item in built.items:
        index, split_id, _ = tb.fixture_origin(recipes.read_image(item))
        label = tb.fixture_labels(h.label, index + 100 * split_id, num_classes)
        assert item.label == (sorted(set(label)) if h.label.multi else label)


def test_multi_label_items_carry_index_lists(tmp_path):
    handler("celeb_a").fixture(tmp_path)
    built = build("celeb_a", tmp_path, tfds_data_dir=tmp_path / "empty")
    labels = [item.label for item in built.items]
    assert all(isinstance(x, list) and x == sorted(x) for x in labels)
    assert any(len(x) > 1 for x in labels)
    assert built.class_names[0] == "5_o_Clock_Shadow" and built.class_names[-1] == "Young"


# ---------------------------------------------------------------------------------- TFRecord


def test_crc32c_matches_the_standard_check_value():
    assert tb.crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("key", ["mnist", "voc_2012", "smallnorb"])
def test_tfrecord_copies_read_like_array_record_ones(key, tmp_path):
    h = handler(key)
    h.fixture(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for info in (tmp_path / "b" / "tfds").rglob("dataset_info.json"):
        tb.to_tfrecord(info.parent, shards=3)
    assert list((tmp_path / "b").rglob("*.tfrecord-00002-of-00003"))
    assert not list((tmp_path / "b").rglob("*.array_record-*"))

    a = build(key, tmp_path / "a", tfds_data_dir=tmp_path / "empty")
    b = build(key, None, tfds_data_dir=tmp_path / "b" / "tfds")
    assert b.metadata["source_format"] == "tfrecord"
    assert list(a.class_names) == list(b.class_names)
    assert len(a.items) == len(b.items)
    for x, y in zip(a.items, b.items, strict=True):
        assert (x.label, x.split, x.group) == (y.label, y.split, y.group)
        assert recipes.read_image(x) == recipes.read_image(y)
    assert b.items[len(b.items) - 1].label == a.items[-1].label  # random access


def test_tfrecord_reader_rejects_a_truncated_shard(tmp_path):
    path = tmp_path / "x.tfrecord"
    tb.write_tfrecord(path, [b"abc", b"defgh"])
    offsets, lengths = tb.tfrecord_index(path)
    assert lengths.tolist() == [3, 5] and offsets.tolist() == [12, 12 + 3 + 4 + 12]
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        tb.tfrecord_index(path)


# ------------------------------------------------------------------------------- finding data


def test_mirror_is_searched_before_the_tfds_data_dir_and_other_versions_are_used(tmp_path):
    h = handler("mnist")
    h.fixture(tmp_path / "mirror")
    h.fixture(tmp_path / "lab")
    lab = tmp_path / "lab" / "tfds" / "mnist"
    (lab / h.tfds_version).rename(lab / "3.0.0")  # an older TFDS prepared it
    info = lab / "3.0.0" / "dataset_info.json"
    info.write_text(info.read_text().replace(f'"{h.tfds_version}"', '"3.0.0"'))
    found = tb.find_prepared("mnist", h.tfds_version,
                             [tmp_path / "mirror" / "tfds", tmp_path / "lab" / "tfds"])
    assert found == tmp_path / "mirror" / "tfds" / "mnist" / h.tfds_version
    built = build("mnist", None, tfds_data_dir=tmp_path / "lab" / "tfds")
    assert built.metadata["tfds_version"] == "3.0.0"


# ---------------------------------------------------------------------------------- failures


def test_missing_dataset_without_tensorflow_needs_the_tfds_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "_tensorflow_installed", lambda: False)
    with pytest.raises(NeedsExtra) as info:
        build("mnist", tmp_path / "mirror", tfds_data_dir=tmp_path / "empty", download=True)
    assert "pip install -e '.[tfds]'" in info.value.message
    assert "TensorFlow" in info.value.message and "--tfds_data_dir" in info.value.message
    assert info.value.status == "needs an extra"


def test_missing_dataset_with_downloads_off_says_where_it_looked(tmp_path):
    with pytest.raises(PrepareError) as info:
        build("voc_2007", None, tfds_data_dir=tmp_path / "lab", download=False)
    assert str(tmp_path / "lab" / "voc" / "2007") in info.value.message
    assert "--tfds_data_dir" in info.value.message


def test_imagenet_without_manual_files_names_them(tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "_tensorflow_installed", lambda: False)
    manual = tmp_path / "manual"
    with pytest.raises(NeedsManualDownload) as info:
        build("imagenet2012", None, tfds_data_dir=tmp_path / "empty", manual_dir=manual,
              download=True)
    message = info.value.message
    for text in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar",
                 "https://image-net.org/download-images.php", str(manual)):
        assert text in message
    # With the files in place, the next need is TensorFlow to run TFDS's builder.
    (manual / "imagenet2012").mkdir(parents=True)
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / "imagenet2012" / name).write_bytes(b"")
    with pytest.raises(NeedsExtra):
        build("imagenet2012", None, tfds_data_dir=tmp_path / "empty", manual_dir=manual,
              download=True)


def test_an_incomplete_prepared_copy_is_reported(tmp_path):
    handler("dtd").fixture(tmp_path)
    for shard in (tmp_path / "tfds").rglob("dtd-validation.array_record-*"):
        shard.unlink()
    with pytest.raises(PrepareError, match="incomplete"):
        build("dtd", tmp_path, tfds_data_dir=tmp_path / "empty")


def test_a_corrupt_smallnorb_instance_is_reported(tmp_path):
    h = handler("smallnorb")
    h.fixture(tmp_path)
    bad = tb.SplitRecipe(h.recipe.description, h.recipe.reads, h.recipe.plan,
                         tb.instances({"train": (7,), "dev": (4,), "dev_test": (6,)}).route)
    built = dataclasses.replace(h, recipe=bad).build(BuildContext(
        "smallnorb", {}, tmp_path / "scratch", options={"mirror": str(tmp_path),
                                                       "tfds_data_dir": tmp_path / "empty"}))
    with pytest.raises(PrepareError, match="instance"):
        built.recipe(built.items)


# ------------------------------------------------------------------------- tfds:NAME datasets


def test_user_tfds_datasets_use_their_official_splits(tmp_path):
    mnist = tb.user_handler("mnist")
    assert (mnist.key, mnist.kind, mnist.channels, mnist.source) == (
        "mnist", TaskKind.SINGLE_LABEL, 1, "mnist")
    handler("mnist").fixture(tmp_path)  # train + test
    ctx = BuildContext("mnist", {}, tmp_path / "s", options={"mirror": str(tmp_path)})
    built = mnist.build(ctx)
    parts = built.recipe(built.items)
    sizes = {s: len(v) for s, v in parts.items()}
    assert sizes["test"] == 10 and sizes["train"] + sizes["dev"] + sizes["dev_test"] == 43
    assert sizes["train"] >= 29  # 70% of 43, stratified (nevis.data.splits)
    assert {item.group for item in parts["test"]} == {"test"}
    voc = tb.user_handler("voc/2007", key="my_voc")
    assert (voc.key, voc.kind) == ("my_voc", TaskKind.MULTI_LABEL)
    handler("voc_2007").fixture(tmp_path)  # train + validation + test
    built = voc.build(BuildContext("my_voc", {}, tmp_path / "s",
                                   options={"mirror": str(tmp_path)}))
    parts = built.recipe(built.items)
    assert [len(parts[s]) for s in ("dev_test", "test")] == [12, 10]
    assert len(parts["train"]) + len(parts["dev"]) == 43


# ------------------------------------------------------------------------------- end to end


def test_domainnet_fixture_through_the_pipeline(tmp_path):
    from nevis.data import pipeline, storage
    from nevis.data.download import FetchOptions

    h = handler("domainnet")
    assert h.fixture(tmp_path / "mirror") == tmp_path / "mirror" / "tfds" / "domainnet"
    options = pipeline.PrepareOptions(
        data_dir=tmp_path / "data", tfds_data_dir=tmp_path / "empty", workers=1,
        fetch=FetchOptions(download_dir=tmp_path / "raw", mirror=str(tmp_path / "mirror"),
                           verify_checksums=False, progress=False))
    outcome = pipeline.prepare_one(h, None, options, progress=False)
    assert outcome.status == "prepared now", outcome.detail
    manifest = storage.stored_manifest("domainnet", tmp_path / "data")
    sizes = fixture_sizes(tmp_path / "mirror" / "tfds")
    assert manifest["splits"] == {
        "train": sum(sizes[(d, TRAIN)] for d in range(5)),
        "dev": sum(sizes[(d, TEST)] for d in range(5)),
        "dev_test": sizes[(5, TRAIN)], "test": sizes[(5, TEST)]}
    assert manifest["num_classes"] == 345
    assert manifest["metadata"]["tfds_name"] == "domainnet/real"
    assert sorted(manifest["metadata"]["tfds_datasets"]) == sorted(
        f"domainnet/{d}" for d in DOMAINS)
