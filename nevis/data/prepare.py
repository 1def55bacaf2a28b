"""Builds datasets into the data directory.

    python -m nevis.data.prepare --dataset=<key>|all [--force] [--data_dir=DIR]

`all` builds the embedded stream. Keys of NEVIS'22 catalog tasks are recognised, but their
handlers are not implemented yet.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nevis.data import embedded, storage
from nevis.tasks import canonical_key

_CATALOG = Path(__file__).resolve().parents[1] / "streams" / "catalog" / "stream_tasks.csv"


def catalog_keys() -> list[str]:
    """Key prefixes of the NEVIS'22 catalog (empty if the catalog file is absent)."""
    if not _CATALOG.is_file():
        return []
    keys = []
    with open(_CATALOG, newline="") as f:
        for row in csv.DictReader(f):
            match = re.search(r"key_prefix=(\w+)", row.get("notes") or "")
            key = match.group(1) if match else canonical_key(row["dataset_key"])
            if key not in keys:
                keys.append(key)
    return keys


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nevis.data.prepare", description=__doc__)
    parser.add_argument("--dataset", required=True, help="dataset key, or 'all' (embedded)")
    parser.add_argument("--force", action="store_true", help="rebuild even if prepared")
    parser.add_argument("--data_dir", help="default: $NEVIS_DATA_DIR, else ~/.nevis/data")
    args = parser.parse_args(argv)
    data_dir = storage.resolve_data_dir(args.data_dir)
    embedded_keys = [s.key for s in embedded.EMBEDDED_TASKS]
    if args.dataset == "all":
        specs = list(embedded.EMBEDDED_TASKS)
    elif args.dataset in embedded_keys:
        specs = [embedded.embedded_dataset(args.dataset).spec]
    elif args.dataset in catalog_keys():
        print(
            f"error: '{args.dataset}' is a NEVIS'22 task whose dataset handler is not "
            "implemented yet.",
            file=sys.stderr,
        )
        return 1
    else:
        print(
            f"error: unknown dataset '{args.dataset}'; valid keys: all, "
            f"{', '.join(embedded_keys)} (NEVIS'22 catalog keys are not implemented yet).",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    for spec in specs:
        path = embedded.prepare_embedded(spec, data_dir, force=args.force, progress=True)
        print(f"{spec.key}: {path}")
    print(f"Prepared {len(specs)} dataset(s) in {time.perf_counter() - start:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
