"""Preparation throughput: `nevis.prepare` images/s over a bare Pillow decode loop, same files.

    python benchmarks/prepare_throughput.py [--images=5000] [--size=160] [--workers=0]

Writes a folder dataset of JPEGs (a natural-image-like gradient plus noise; one class per
folder) and a zip of it (the "raw archive"), then measures, on the same files:
  bare    — Pillow open + full decode of every image, one loop, nothing else;
  prepare — `python -m nevis.prepare --dataset=folder:…` in-process: duplicate pass, stratified
            split, decode + check of every image, TFDS array_record write, manifest.
Both sides touch every image once for decoding; prepare also reads each file once more for the
duplicate pass and writes the dataset. The goal (issue #9) is prepare ≥ 0.5 × bare. Also printed:
the prepared dataset's size on disk relative to the zip.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nevis.data import pipeline, storage  # noqa: E402
from nevis.data.download import FetchOptions  # noqa: E402
from nevis.data.user import handler_for  # noqa: E402


def make_images(root: Path, count: int, size: int, classes: int = 10) -> list[Path]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    paths = []
    for i in range(count):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        phase = rng.random(3)
        image = 127 + 100 * np.sin(2 * np.pi * (xx[..., None] * (1 + 3 * phase) + yy[..., None]))
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(image).save(path, quality=90)
        paths.append(path)
    return paths


def bare_decode(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as pil:
            pil.load()
    return time.perf_counter() - start


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--workers", type=int, default=0, help="0: the pipeline's default")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nevis_prep_bench_"))
    try:
        folder = work / "images"
        paths = make_images(folder, args.images, args.size)
        archive = work / "images.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for p in paths:
                zf.write(p, p.relative_to(work))
        bare_decode(paths[:200])  # warm the page cache for both sides alike
        import tensorflow_datasets  # noqa: F401 - a one-off import cost, not throughput
        bare = bare_decode(paths)
        options = pipeline.PrepareOptions(
            data_dir=work / "data", fetch=FetchOptions(download_dir=work / "raw", progress=False),
            **({"workers": args.workers} if args.workers else {}),
        )
        handler = handler_for(f"folder:{folder}", "bench")
        start = time.perf_counter()
        outcome = pipeline.prepare_one(handler, None, options, progress=False)
        prep = time.perf_counter() - start
        assert outcome.status == "prepared now", outcome
        stored = storage.stored_manifest("bench", work / "data")
        assert sum(stored["splits"].values()) == args.images
        bare_rate, prep_rate = args.images / bare, args.images / prep
        print(f"images: {args.images} JPEG {args.size}x{args.size}, workers: {options.workers}")
        print(f"bare Pillow decode : {bare_rate:8.0f} images/s ({bare:.2f} s)")
        print(f"nevis.prepare      : {prep_rate:8.0f} images/s ({prep:.2f} s)")
        print(f"ratio prepare/bare : {prep_rate / bare_rate:.2f}  (goal >= 0.5)")
        size = disk_size(work / "data" / "bench")
        print(f"prepared on disk   : {size / 2**20:.1f} MiB = {size / archive.stat().st_size:.2f}"
              f" x the raw zip ({archive.stat().st_size / 2**20:.1f} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
