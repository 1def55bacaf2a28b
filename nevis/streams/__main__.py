"""Lists a stream's tasks: `python -m nevis.streams --stream=full [--stop_year=2020]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nevis.data.storage_format import is_prepared, resolve_data_dir, stored_manifest
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
    parser.add_argument("--tasks", default="", help="comma-separated keys (stream 'prepared')")
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    try:
        stream = make_stream(args.stream, stop_year=args.stop_year, data_dir=data_dir,
                             tasks=[t for t in args.tasks.split(",") if t])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = [("#", "year", "key", "name", "classes", "kind", "source", "data")]
    for i, (task, year) in enumerate(zip(stream.tasks, stream.years, strict=True), 1):
        rows.append(
            (
                str(i),
                str(year),
                task.key,
                task.name[:40],
                str(task.num_classes or "?"),
                task.kind.value,
                task.source,
                _status(task.key, data_dir),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    missing = [t.key for t in stream.unique_tasks() if not is_prepared(t.key, data_dir)]
    print(
        f"\n{len(stream.tasks)} tasks ({len(stream.unique_tasks())} distinct datasets), "
        f"{len(missing)} not prepared in {data_dir}."
    )
    if missing and stream.name != "embedded":
        print(f"Prepare them with: python -m nevis.prepare --stream={stream.name}")
    return 0


def _status(key: str, data_dir: Path) -> str:
    manifest = stored_manifest(key, data_dir)
    if manifest is None:
        return "not prepared"
    verified = manifest.get("metadata", {}).get("sources_verified", True)
    return "ready" if verified else "ready (unverified)"


if __name__ == "__main__":
    sys.exit(main())
