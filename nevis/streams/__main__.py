"""Lists a stream's tasks: `python -m nevis.streams --stream=full [--stop_year=2020]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nevis.data import storage
from nevis.streams import STREAM_NAMES, make_stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nevis.streams", description=__doc__)
    parser.add_argument("--stream", default="embedded", help=f"one of {', '.join(STREAM_NAMES)}")
    parser.add_argument(
        "--stop_year",
        type=int,
        default=None,
        help="keep years strictly before this one (default: all years)",
    )
    parser.add_argument(
        "--data_dir", default=None, help="default: $NEVIS_DATA_DIR or ~/.nevis/data"
    )
    args = parser.parse_args(argv)
    try:
        stream = make_stream(args.stream, stop_year=args.stop_year)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir) if args.data_dir else storage.default_data_dir()
    rows = [("#", "year", "key", "name", "classes", "kind", "source", "data")]
    for i, (task, year) in enumerate(zip(stream.tasks, stream.years, strict=True), 1):
        prepared = storage.is_prepared(task.key, data_dir)
        rows.append(
            (
                str(i),
                str(year),
                task.key,
                task.name[:40],
                str(task.num_classes or "?"),
                task.kind.value,
                task.source,
                "prepared" if prepared else "not prepared",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    missing = len({t.key for t in stream.tasks if not storage.is_prepared(t.key, data_dir)})
    print(
        f"\n{len(stream.tasks)} tasks ({len(stream.unique_tasks())} distinct datasets), "
        f"{missing} not prepared in {data_dir}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
