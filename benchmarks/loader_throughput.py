"""Loader throughput on an embedded task: the first pass (decode + cache fill) and cached passes.

    python benchmarks/loader_throughput.py [--dataset=mnist_5k] [--batch_size=128]
        [--image_size=32] [--passes=3] [--no_augment] [--no_cache] [--data_dir=DIR]

Builds the dataset first if needed. Compare the examples/s with the model's training speed:
the loader should be at least five times faster.
"""

from __future__ import annotations

import argparse
import time

from nevis.data import embedded, loader, storage


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--split", default="train_and_dev")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--no_augment", action="store_true")
    parser.add_argument("--no_cache", action="store_true")
    parser.add_argument("--data_dir")
    args = parser.parse_args()

    spec = embedded.embedded_dataset(args.dataset).spec
    embedded.prepare_embedded(spec, args.data_dir)
    source = storage.open_split(spec, args.split, args.data_dir)
    print(
        f"{source!r}, batch {args.batch_size}, {args.image_size}px, "
        f"augment={not args.no_augment}, cache={not args.no_cache}"
    )
    for p in range(args.passes):
        start = time.perf_counter()
        count = 0
        for batch in loader.batches(
            source,
            batch_size=args.batch_size,
            image_size=args.image_size,
            shuffle=True,
            seed=p,
            augment=not args.no_augment,
            repeat=False,
            cache=not args.no_cache,
        ):
            count += int(batch["mask"].sum())
        seconds = time.perf_counter() - start
        print(f"pass {p}: {count} examples in {seconds:.2f} s = {count / seconds:,.0f} ex/s")


if __name__ == "__main__":
    main()
