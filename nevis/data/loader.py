"""Fixed-shape, seeded, resumable numpy batches for JAX training and evaluation.

Batch contract (B = batch_size // process_count rows per process, S = image_size):

    image   float32 [B, S, S, 3]  bilinear resize, grey -> RGB, scaled to [-1, 1] (0 in padding)
    label   int32   [B]           single-label tasks (0 in padding rows)
    labels  float32 [B, C]        multi-label tasks, multi-hot (0 in padding rows)
    index   int32   [B]           position of the example in its split (-1 in padding rows)
    mask    bool    [B]           False for padding rows

Order: global batch k holds positions [k*batch_size, (k+1)*batch_size) of a stream that
concatenates epoch orders; epoch e is `permutation(seed, e)` (or the identity without shuffle).
Any batch is therefore computed directly from k, and `start_batch=k` resumes exactly, without
replaying earlier batches. With `repeat=True` every batch is full (epochs run into each other);
otherwise one epoch is served and its last batch is padded. Augmentation draws from (seed, k)
for the whole global batch before a process takes its rows, so results do not depend on the
number of processes. For several non-repeating epochs with different orders, vary `seed`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from nevis.data.augment import Augment, augment_batch, resolve_augment
from nevis.data.storage_reader import SplitSource

__all__ = ["Augment", "batches", "num_batches"]

Batch = dict[str, np.ndarray]

# Decoded splits are cached in memory below this size (N * S * S * 3 bytes per split and size).
CACHE_MAX_BYTES = 2 << 30
_DECODE_CHUNK = 256
_PERM_DOMAIN, _AUGMENT_DOMAIN = 0, 1


def num_batches(num_examples: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one epoch: the last partial batch counts unless `drop_remainder`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    return num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class _Plan:
    """Which split positions fill global batch k (-1 = padding)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, repeat: bool):
        self.n, self.batch_size, self.shuffle, self.seed, self.repeat = (
            n,
            batch_size,
            shuffle,
            seed,
            repeat,
        )
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            if len(self._orders) > 4:
                self._orders.pop(min(self._orders))
            rng = np.random.default_rng([self.seed, epoch, _PERM_DOMAIN])
            self._orders[epoch] = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        return self._orders[epoch]

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size) if not self.repeat else 2**62

    def rows(self, k: int) -> np.ndarray:
        positions = k * self.batch_size + np.arange(self.batch_size, dtype=np.int64)
        if not self.repeat:
            valid = positions < self.n
            return np.where(valid, self.order(0)[np.minimum(positions, self.n - 1)], -1)
        epochs, offsets = np.divmod(positions, self.n)
        out = np.empty(self.batch_size, np.int64)
        for e in np.unique(epochs):
            out[epochs == e] = self.order(int(e))[offsets[epochs == e]]
        return out


class _Decoder:
    """Produces uint8 [R, S, S, 3] images and targets for split positions, cached or not."""

    def __init__(self, source: SplitSource, size: int, cache: bool, pool):
        self.source, self.size, self.pool = source, size, pool
        nbytes = source.num_examples * size * size * 3
        self.cached = cache and nbytes <= CACHE_MAX_BYTES
        if cache and not self.cached:
            logging.warning(
                "%r: %d MB decoded exceeds CACHE_MAX_BYTES; decoding per batch.",
                source,
                nbytes >> 20,
            )

    def _decode(self, indices: np.ndarray) -> tuple[np.ndarray, list]:
        images = np.empty((len(indices), self.size, self.size, 3), np.uint8)
        targets: list = []
        for start in range(0, len(indices), _DECODE_CHUNK):
            chunk = indices[start : start + _DECODE_CHUNK]
            records = self.source.read_records(chunk.tolist())
            decoded = self.pool.map(lambda r: self.source.decode(r["image"], self.size), records)
            for j, image in enumerate(decoded):
                images[start + j] = image
            targets.extend(self.source.targets(r) for r in records)
        return images, targets

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        key = ("resized_rgb", self.size)
        if key not in self.source.cache:
            images, targets = self._decode(np.arange(self.source.num_examples))
            self.source.cache[key] = (images, np.asarray(targets))
        return self.source.cache[key]

    def get(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        valid = rows >= 0
        if self.cached:
            images, targets = self._all()
            picked = images[np.where(valid, rows, 0)]
            picked[~valid] = 0
            return picked, targets[np.where(valid, rows, 0)]
        images, targets = self._decode(rows[valid])
        full = np.zeros((len(rows), self.size, self.size, 3), np.uint8)
        full[valid] = images
        shape = (self.source.num_classes,) if self.source.multi_label else ()
        dense = np.zeros((len(rows), *shape), np.float32 if shape else np.int64)
        if targets:
            dense[valid] = np.asarray(targets)
        return full, dense


def _produce(
    source: SplitSource,
    plan: _Plan,
    size: int,
    augment: Augment | None,
    seed: int,
    start_batch: int,
    rows_slice: slice,
    cache: bool,
) -> Iterator[Batch]:
    with concurrent.futures.ThreadPoolExecutor(_workers(), "nevis-decode") as pool:
        decoder = _Decoder(source, size, cache, pool)
        k = start_batch
        while k < len(plan):
            global_rows = plan.rows(k)
            if augment is not None:
                rng = np.random.default_rng([seed, k, _AUGMENT_DOMAIN])
                params = augment.sample(rng, len(global_rows), size)
                params = {name: value[rows_slice] for name, value in params.items()}
            rows = global_rows[rows_slice]
            valid = rows >= 0
            images, targets = decoder.get(rows)
            if augment is not None:
                images = augment_batch(images, params, augment.padding(size))
            batch = {"image": images.astype(np.float32) * np.float32(2 / 255) - np.float32(1)}
            batch["image"][~valid] = 0
            if source.multi_label:
                batch["labels"] = np.where(valid[:, None], targets, 0).astype(np.float32)
            else:
                batch["label"] = np.where(valid, targets, 0).astype(np.int32)
            batch["index"] = rows.astype(np.int32)
            batch["mask"] = valid
            yield batch
            k += 1


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def _prefetch(make: Callable[[], Iterator[Batch]], depth: int) -> Iterator[Batch]:
    """Runs the producer on a daemon thread, `depth` batches ahead; errors re-raise here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            producer = make()
            try:
                for batch in producer:
                    if not put(batch):
                        return
            finally:
                producer.close()
        except BaseException as e:  # noqa: BLE001 - handed to the consumer.
            put(_Failure(e))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="nevis-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def batches(
    source: SplitSource,
    *,
    batch_size: int,
    image_size: int,
    shuffle: bool,
    seed: int,
    augment: bool | Augment | None,
    repeat: bool,
    start_batch: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    prefetch: int = 2,
    cache: bool = True,
) -> Iterator[Batch]:
    """Iterates fixed-shape batches of `source` (see the module docstring for the contract).

    `batch_size` is global: this process gets rows [i*B/P, (i+1)*B/P) of every batch.
    `augment=True` means random crop after reflect padding (S/8) plus horizontal flip where the
    task allows it (not for digits, glyphs or text: see `augment.flip_default`); pass an
    `Augment` to choose; False or None: no augmentation. `cache` keeps the decoded, resized
    split in memory (below CACHE_MAX_BYTES) for later epochs and calls; the first batch waits
    for it. `prefetch` batches are prepared on a background thread (0: in the calling thread).
    Arguments are checked now, not at the first batch.
    """
    n = source.num_examples
    if batch_size < 1 or image_size < 1:
        raise ValueError(f"batch_size and image_size must be positive: {batch_size}, {image_size}.")
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count}).")
    if batch_size % process_count:
        raise ValueError(
            f"Global batch_size {batch_size} is not divisible by process_count {process_count}."
        )
    if seed < 0 or start_batch < 0:
        raise ValueError(f"seed and start_batch must be non-negative: {seed}, {start_batch}.")
    if n == 0:
        raise ValueError(f"{source!r} is empty.")
    local = batch_size // process_count
    rows_slice = slice(process_index * local, (process_index + 1) * local)
    plan = _Plan(n, batch_size, shuffle, seed, repeat)
    spec = resolve_augment(augment, source.spec.key)

    def make() -> Iterator[Batch]:
        return _produce(source, plan, image_size, spec, seed, start_batch, rows_slice, cache)

    return _prefetch(make, prefetch) if prefetch > 0 else make()
