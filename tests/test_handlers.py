"""Every dataset handler through the real path: fixture mirror → `nevis.prepare` → loader.

The fixtures are written and prepared once per session (a few seconds for all handlers); each
handler is then checked on what a learner will read: record counts, label ranges, split sizes as
the recipe gives them, every image decodable, the task kind and class count of the catalog.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nevis import prepare
from nevis.data import loader, recipes, storage
from nevis.data.handlers import all_handlers
from nevis.data.handlers.base import BuildContext
from nevis.data.sources import Manual, Url
from nevis.streams.catalog import full_stream

HANDLERS = all_handlers()
CATALOG = {e.task.key: e.task for e in reversed(full_stream())}
# Datasets of SHORT, TINY and DEBUG plus the TFDS-backed ones: all of them need a handler.
REQUIRED = {
    "pascal_voc2005", "caltech_categories", "uiuc_cars", "pascal_voc2006", "ig02", "scenes15",
    "lfw", "sketch", "brodatz", "caltech256", "usps", "mnist_m", "office_caltech_10", "pacs",
    "melanoma", "stanford_cars", "fgvc_aircraft_family", "coil20",
}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("handlers")
    mirror, data_dir = root / "mirror", root / "data"
    keys = ",".join(HANDLERS)
    assert prepare.main([f"--dataset={keys}", f"--write_fixtures={mirror}"]) == 0
    args = [f"--dataset={keys}", f"--mirror={mirror}", "--verify_checksums=false",
            f"--data_dir={data_dir}", f"--download_dir={root / 'raw'}", "--noprogress",
            f"--tfds_data_dir={root / 'no_tfds'}"]
    code = prepare.main(args)
    manifests = {k: storage.stored_manifest(k, data_dir) for k in HANDLERS}
    not_ready = [k for k, m in manifests.items() if m is None]
    assert code == 0 and not not_ready, f"not prepared: {not_ready}"
    return mirror, data_dir, manifests


def test_every_required_dataset_has_a_handler():
    missing = sorted(REQUIRED - set(HANDLERS))
    assert not missing, f"no handler for {missing}"


@pytest.mark.parametrize("key", sorted(HANDLERS))
def test_handler_agrees_with_the_catalog(key):
    handler = HANDLERS[key]
    assert key in CATALOG, f"{key} is not a catalog key"
    task = CATALOG[key]
    assert handler.kind == task.kind
    assert handler.num_classes == task.num_classes
    for source in handler.sources:
        dead = isinstance(source, Url) and source.dead
        assert source.checksum is not None or dead or isinstance(source, Manual), (
            f"{key}: {source.filename} has no published checksum")


@pytest.mark.parametrize("key", sorted(HANDLERS))
def test_prepared_dataset_reads_back(key, prepared):
    mirror, data_dir, manifests = prepared
    handler, manifest = HANDLERS[key], manifests[key]
    task = CATALOG[key]
    assert manifest["kind"] == task.kind.value
    if task.num_classes is not None:
        assert manifest["num_classes"] == task.num_classes
    assert manifest["metadata"]["sources_verified"] is False  # --verify_checksums=false

    # Split sizes are the recipe's, applied to the handler's (deduplicated) items.
    if handler.sources:
        scratch = mirror.parent / "scratch" / key
        files = {s.filename: mirror / key / s.filename for s in handler.sources}
        built = handler.build(BuildContext(key, files, scratch))
        items = recipes.deduplicate(built.items).items if built.deduplicate else built.items
        expected = {s: len(v) for s, v in built.recipe(items).items() if v}
        assert manifest["splits"] == expected
    assert manifest["splits"].get("train", 0) > 0 and manifest["splits"].get("test", 0) > 0

    spec = storage_spec(manifest)
    for split, count in manifest["splits"].items():
        source = storage.open_split(spec, split, data_dir)
        assert len(source) == count
        for i in range(count):  # every image decodes, every label is in range
            example = source[i]
            assert example["image"].ndim == 3 and example["image"].shape[2] == manifest["channels"]
            if spec.kind.value == "multi_label":
                hot = example["labels"]
                assert hot.shape == (manifest["num_classes"],) and hot.sum() >= 1
            else:
                assert 0 <= example["label"] < manifest["num_classes"]
        batch = next(loader.batches(source, batch_size=4, image_size=16, shuffle=False, seed=0,
                                    augment=None, repeat=False))
        assert batch["image"].shape == (4, 16, 16, 3) and np.isfinite(batch["image"]).all()


def storage_spec(manifest: dict):
    from nevis.tasks import TaskKind, TaskSpec

    return TaskSpec(manifest["key"], manifest["name"], manifest.get("year", 0),
                    TaskKind(manifest["kind"]), manifest["num_classes"], "custom")
