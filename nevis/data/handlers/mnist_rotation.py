"""MNIST-rot as NEVIS'22 builds it (after Murugan & Subrahmanyam, "SO(2)-equivariance in Neural
networks using Fourier nonlinearity", 2019): MNIST digits with the training images rotated.

Raw files: the four MNIST IDX files, gzipped (`train-images-idx3-ubyte.gz`,
`train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`; md5
published by the reference). The reference fetches them from yann.lecun.com, which has answered
403 Forbidden since 2024; the same files (same md5) are fetched from the S3 mirror that
torchvision uses. IDX: a big-endian header (magic, count, rows, cols) then uint8 pixels / labels.

Recast, as the reference: every one of the 60,000 training images is rotated by a random whole
number of degrees in [0, 360) (seed 99,999; cubic spline, same 28×28 frame, corners filled with
0); the 10,000 test images are NOT rotated (the reference's choice, kept). Images are stored as
uint8 arrays. Label = the digit. Recipe (`official_test()`): train → 70/15/15
train/dev/dev_test; t10k → test.

Deviation: the reference draws the angles from NumPy's global generator while its generators
run (so they depend on how often a split generator is restarted); here angle i belongs to
training image i, drawn once from `np.random.default_rng(99_999)`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import scipy.ndimage

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CLASS_NAMES = tuple(str(d) for d in range(10))
SEED = 99_999


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX array (2049: labels, 2051: images) from a gzipped file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise PrepareError(f"mnist_rotation: {path.name} has IDX magic {found}, not {magic}.")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3])]
    offset = 4 + 4 * len(dims)
    array = np.frombuffer(data, np.uint8, offset=offset)
    if array.size != int(np.prod(dims)):
        raise PrepareError(f"mnist_rotation: {path.name} is truncated.")
    return array.reshape(dims)


def rotation_angles(count: int) -> np.ndarray:
    """Whole degrees in [0, 360), one per training image (seeded)."""
    return np.random.default_rng(SEED).integers(0, 360, count)


def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    return scipy.ndimage.rotate(image, float(degrees), reshape=False)


def build(ctx: BuildContext) -> Built:
    items = []
    for group, (images_file, labels_file) in FILES.items():
        images = read_idx(ctx.path(images_file), 2051)
        labels = read_idx(ctx.path(labels_file), 2049)
        if len(images) != len(labels):
            raise PrepareError(f"mnist_rotation: {images_file} has {len(images)} images, "
                               f"{labels_file} {len(labels)} labels.")
        if group == "train":
            images = np.stack([rotate(im, a) for im, a in
                               zip(images, rotation_angles(len(images)), strict=True)])
        items.extend(recipes.Item(images[i], int(labels[i]), group=group,
                                  name=f"{images_file}[{i}]") for i in range(len(images)))
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=1,
                 metadata={"rotated": "train only", "angle_seed": SEED})


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fixture(folder: Path) -> None:
    """7 training and 2 test digits per class (28×28)."""
    rng = np.random.default_rng(1998)
    for group, per_class in (("train", 7), ("test", 2)):
        labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
        images = np.zeros((len(labels), 28, 28), np.uint8)
        images[:, 6:22, 8:20] = rng.integers(0, 256, (len(labels), 16, 12), dtype=np.uint8)
        images_file, labels_file = FILES[group]
        for name, data in ((images_file, _idx_bytes(images, 2051)),
                           (labels_file, _idx_bytes(labels, 2049))):
            with gzip.GzipFile(folder / name, "wb", mtime=0) as f:
                f.write(data)


HANDLER = Handler(
    key="mnist_rotation",
    name="MNIST-rot",
    year=2019,
    sources=tuple(Url(_MIRROR + name, md5=md5) for name, md5 in _MD5.items()),
    build=build,
    write_fixture=write_fixture,
    homepage="http://yann.lecun.com/exdb/mnist/",
    num_classes=10,
    notes="yann.lecun.com answers 403 since 2024; the files come from torchvision's S3 mirror.",
)
