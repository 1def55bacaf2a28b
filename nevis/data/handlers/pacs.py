"""PACS (Li, Yang, Song & Hospedales, "Deeper, Broader and Artier Domain Generalization",
ICCV 2017): 7 object classes in four domains — photo, art painting, cartoon, sketch.

Raw files: the authors' pre-read HDF5 files on Google Drive, 12 of them, one per domain and
official split, `<domain>_{train,val,test}.hdf5` (md5 published by the reference). Each holds
`images` (N × 227 × 227 × 3, BGR channel order) and `labels` (1..7). Images are flipped to RGB
and cast to uint8, labels shifted to 0..6, as the reference.

Label rule: class index in CLASS_NAMES order (the reference's). Recipe (domain generalisation,
`held_out(["sketch"])`): photo + art_painting + cartoon (group "seen") → 80/20 train/dev; sketch
(group "sketch") → 50/50 dev_test/test. The authors' splits are not by domain, so all three
files of a domain are read; their `_test` file holds the whole domain, so the same image comes
several times and the pipeline's exact-duplicate removal within each group (the reference
deduplicates photo+art+cartoon together, and sketch) leaves each image once.

Unverified: which Drive file id holds which of the 12 files. The reference lists ids and md5s
without file names (its loader finds the domain in the name Drive serves). The names below
assume the ids are listed in name order (art_painting test/train/val, cartoon …, photo …,
sketch …). As a guard, when a `_test` file has the size of a published domain (photo 1670,
art_painting 2048, cartoon 2344, sketch 3929 images) the build checks that it is the size of
its own domain and that the domain's train + val files add up to it, and stops otherwise,
naming the mismatch, instead of leaking sketch images into training.

Needs `h5py` (not a core dependency): without it the build stops with "needs an extra".
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import GoogleDrive, NeedsExtra, PrepareError

CLASS_NAMES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
HELD_OUT = "sketch"
PARTS = ("test", "train", "val")

# Published domain sizes (the paper's Table 1); a `_test` file holds the whole domain.
DOMAIN_SIZES = {"photo": 1670, "art_painting": 2048, "cartoon": 2344, "sketch": 3929}

# (Drive id, md5) in the reference's order; names assumed (see the docstring).
_DRIVE_FILES = (
    ("1e2WfiUmpv25FzRHYrA_8rooqEWicwbGA", "7cd392ecb9e0ab0f0e8be9d8fc5ed5a2"),
    ("1qvJeF3WgfZgBgNBnzJGOLVOMncLgi5uN", "d5df8be042fd2525efeb29cfb2252026"),
    ("10yRj3m8bB_PAiKqOcct1viTGu0DuT5un", "a91c0ee93df8278028ff49072317e24a"),
    ("1ID0Y-v0EvKz1VL7XIKfZtb2FOxF89gVQ", "e9205c7d19484ea8b5082abe1560dad3"),
    ("1BpaNvaSRXZ09xwnC5TWBv3ktOBj36mp7", "988c767ea2e542268be87044e3da60f5"),
    ("16pF2YwohULpkXV3NNRiBvDy4SBWyhxvz", "e1c23f2990c290b38a07c970750b6226"),
    ("1gNHdceC8tS1JLcb6sZGaT7w6zwwTkiXp", "4578bcf9207ffa2ad9608976e8f4cf37"),
    ("14_xcxAYTsURyhBKS2FBNwqQFNGIkDbP7", "d2d58d2df269ffa2f79d68f5942e4109"),
    ("1e8PvYV1Rbc3uDDKt0iADNNT6fXH95FIC", "77fb7329500a70150d1b4637652720b9"),
    ("1xj-PJhD4xBtPv6EETGImlA0Pju7KdIH0", "52c846632c2b903536c097e6ccd91c39"),
    ("1li1j1-315EmjXbuqRnMIxiH_u7Kpj81b", "44293bc45b2a41fba17cf163c8a01c0a"),
    ("1OQnAweOPYbwhNt9uQ07aVV1GNmkTAcD2", "9ea4965e0c61ad295437be4b6cf10681"),
)
FILES = tuple(f"{domain}_{part}.hdf5" for domain in DOMAINS for part in PARTS)


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise NeedsExtra("pacs: reading the PACS HDF5 files needs h5py (pip install h5py).") from e
    return h5py


def _read_image(path: Path, index: int) -> np.ndarray:
    with _h5py().File(path, "r") as f:
        image = np.asarray(f["images"][index])
    return np.ascontiguousarray(np.clip(image[..., ::-1], 0, 255).astype(np.uint8))  # BGR→RGB


def _labels(path: Path) -> np.ndarray:
    with _h5py().File(path, "r") as f:
        labels = np.asarray(f["labels"][:]).astype(np.int64).reshape(-1)
        count = f["images"].shape[0]
    if count != len(labels):
        raise PrepareError(f"pacs: {path.name} has {count} images but {len(labels)} labels.")
    if labels.size and (labels.min() < 1 or labels.max() > len(CLASS_NAMES)):
        raise PrepareError(f"pacs: {path.name} has labels outside 1..{len(CLASS_NAMES)}.")
    return labels - 1


def check_file_sizes(sizes: dict[str, int], domain_sizes: dict[str, int] = DOMAIN_SIZES) -> None:
    """Stops when the files' sizes show that their names (domains) are mixed up.

    sizes: images per file name. Only `_test` files of a published domain size are checked
    (fixtures and other releases pass through).
    """
    by_size = {size: domain for domain, size in domain_sizes.items()}
    for domain in DOMAINS:
        test = sizes[f"{domain}_test.hdf5"]
        if test not in by_size:
            continue
        if by_size[test] != domain:
            raise PrepareError(
                f"pacs: {domain}_test.hdf5 holds {test} images, the size of the "
                f"{by_size[test]} domain: the Drive files are stored under the wrong names "
                "(fix the names in nevis/data/handlers/pacs.py).")
        train_val = sizes[f"{domain}_train.hdf5"] + sizes[f"{domain}_val.hdf5"]
        if train_val != test:
            raise PrepareError(
                f"pacs: {domain}_train.hdf5 + {domain}_val.hdf5 hold {train_val} images, not "
                f"the {test} of the whole domain: the Drive files are stored under the wrong "
                "names (fix the names in nevis/data/handlers/pacs.py).")


def build(ctx: BuildContext) -> Built:
    items, sizes = [], {}
    for domain in DOMAINS:
        group = HELD_OUT if domain == HELD_OUT else "seen"
        for part in PARTS:
            filename = f"{domain}_{part}.hdf5"
            path = ctx.path(filename)
            labels = _labels(path)
            sizes[filename] = len(labels)
            items.extend(
                recipes.Item(functools.partial(_read_image, path, i), int(label), group=group,
                             name=f"{filename}[{i}]")
                for i, label in enumerate(labels))
    check_file_sizes(sizes)
    return Built(CLASS_NAMES, items, recipes.held_out([HELD_OUT]), channels=3,
                 metadata={"domains": list(DOMAINS), "held_out": HELD_OUT,
                           "images_per_file": sizes})


def write_fixture(folder: Path) -> None:
    h5py = _h5py()
    rng = np.random.default_rng(2017)
    size = 16
    for domain in DOMAINS:
        # The whole domain (2 images per class) in `_test`; train/val split it, as the real files.
        labels = np.repeat(np.arange(1, len(CLASS_NAMES) + 1), 2)
        images = rng.integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8)
        order = rng.permutation(len(labels))
        parts = {"test": np.arange(len(labels)), "train": order[:10], "val": order[10:]}
        for part, index in parts.items():
            with h5py.File(folder / f"{domain}_{part}.hdf5", "w") as f:
                f.create_dataset("images", data=images[index], track_times=False)
                f.create_dataset("labels", data=labels[index].astype(np.uint8),
                                 track_times=False)


HANDLER = Handler(
    key="pacs",
    name="PACS",
    year=2017,
    sources=tuple(GoogleDrive(file_id, name, md5=md5)
                  for (file_id, md5), name in zip(_DRIVE_FILES, FILES, strict=True)),
    build=build,
    write_fixture=write_fixture,
    homepage="https://dali-dl.github.io/project_iccv2017.html",
    num_classes=7,
)
