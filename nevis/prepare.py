"""Prepares datasets into the data directory: downloads, verifies, converts, reports.

    python -m nevis.prepare --stream=short                     # every dataset of a stream
    python -m nevis.prepare --dataset=coil20,mnist             # some datasets (catalog keys)
    python -m nevis.prepare --dataset=folder:~/birds --key=birds   # your own image folders
    python -m nevis.prepare --dataset=tfds:beans               # any TFDS dataset
    python -m nevis.prepare --write_fixtures=/tmp/mirror --stream=short   # a fixture mirror
    python -m nevis.prepare --stream=short --mirror=/tmp/mirror --verify_checksums=false

Idempotent and resumable: ready datasets are skipped, partial downloads resume, and a dataset is
written atomically, so an interrupted run is simply run again. Raw files are kept in
`--download_dir` (default `$NEVIS_RAW_DATA_DIR`, else `~/.nevis/raw`). It ends with a status
table — ready / prepared now / needs manual download / needs Kaggle credentials / needs an extra /
origin dead / origin unreachable / failed — and exits 1 if any requested dataset is not ready
(every other dataset is still prepared), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nevis.data import embedded, storage_format
from nevis.data.download import FetchOptions
from nevis.data.sources import PrepareError

EXIT_NOT_READY, EXIT_USAGE = 1, 2


def default_download_dir() -> Path:
    return Path(os.environ.get("NEVIS_RAW_DATA_DIR") or "~/.nevis/raw").expanduser().absolute()


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nevis.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--stream", help="prepare every dataset of a stream (e.g. short, full)")
    what.add_argument("--dataset", help="comma-separated keys; folder:PATH; tfds:NAME; "
                                        "all (= the embedded stream)")
    p.add_argument("--key", help="dataset key for folder:/tfds: datasets (default: from the name)")
    p.add_argument("--data_dir", help="default: $NEVIS_DATA_DIR, else ~/.nevis/data")
    p.add_argument("--download_dir", help="raw archives (kept); default: $NEVIS_RAW_DATA_DIR, "
                                          "else ~/.nevis/raw")
    p.add_argument("--manual_dir", help="files fetched by hand: <manual_dir>/<key>/<file>")
    p.add_argument("--mirror", help="a folder or URL replacing every origin: "
                                    "<mirror>/<key>/<file name>")
    p.add_argument("--tfds_data_dir", help="a TFDS data directory to convert from "
                                           "(default: TFDS's own)")
    p.add_argument("--verify_checksums", type=_bool, default=True, metavar="true|false",
                   help="check published checksums (default true; false for fixtures and "
                        "hand-made mirrors: such datasets show as unverified)")
    p.add_argument("--jobs", type=int, default=4, help="parallel downloads (default 4)")
    p.add_argument("--force", action="store_true", help="rebuild datasets that are ready")
    p.add_argument("--write_fixtures", metavar="DIR",
                   help="write the handlers' fixtures as a mirror in DIR, then stop")
    p.add_argument("--noprogress", dest="progress", action="store_false",
                   help="no progress bars")
    return p


class UsageError(ValueError):
    pass


def _select(args) -> tuple[list[str], list[object]]:
    """(embedded keys, [(handler, catalog spec)]) requested, or UsageError."""
    from nevis.data import user
    from nevis.data.handlers import all_handlers
    from nevis.streams import STREAM_NAMES, make_stream
    from nevis.streams.catalog import full_stream

    handlers = all_handlers()
    catalog = {e.task.key: e.task for e in reversed(full_stream())}  # first occurrence wins
    embedded_keys = [s.key for s in embedded.EMBEDDED_TASKS]
    if args.stream:
        try:
            stream = make_stream(args.stream)
        except ValueError as e:
            raise UsageError(str(e)) from e
        keys = [t.key for t in stream.unique_tasks()]
    elif args.dataset.strip() == "all":
        keys = embedded_keys
    else:
        keys = [k.strip() for k in args.dataset.split(",") if k.strip()]
    chosen_embedded, chosen = [], []
    for key in keys:
        if key in embedded_keys:
            chosen_embedded.append(key)
        elif key.startswith(("folder:", "tfds:")):
            chosen.append((user.handler_for(key, args.key), None))
        elif key in handlers:
            chosen.append((handlers[key], catalog.get(key)))
        elif key in catalog:
            chosen.append((_NoHandler(catalog[key]), catalog[key]))
        else:
            valid = sorted({*embedded_keys, *catalog})
            raise UsageError(
                f"unknown dataset {key!r}; valid keys: all, {', '.join(valid)}, folder:PATH, "
                f"tfds:NAME (streams: {', '.join(STREAM_NAMES)})."
            )
    return chosen_embedded, chosen


class _NoHandler:
    """A catalog dataset whose handler is not written yet (reported, never fatal)."""

    def __init__(self, spec):
        self.key, self.name, self.year, self.sources = spec.key, spec.name, spec.year, ()
        self.version = None

    def build(self, ctx):
        raise PrepareError(f"no handler is written for {self.name!r} yet")

    def fixture(self, directory):
        return None


def write_fixtures(directory: Path, handlers: Sequence[tuple[object, object]]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for handler, _ in handlers:
        if handler.fixture(directory) is not None:
            written += 1
    missing = [h.key for h, _ in handlers if isinstance(h, _NoHandler)]
    print(f"Wrote fixtures of {written} dataset(s) into {directory}.")
    if missing:
        print(f"No handler (so no fixture) for: {', '.join(missing)}.")
    return 0


def run(args) -> int:
    from nevis.data import pipeline

    try:
        embedded_keys, chosen = _select(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.write_fixtures:
        return write_fixtures(Path(args.write_fixtures).expanduser().absolute(), chosen)
    if args.jobs < 1:
        print("error: --jobs must be at least 1.", file=sys.stderr)
        return EXIT_USAGE
    data_dir = storage_format.resolve_data_dir(args.data_dir)
    fetch = FetchOptions(
        download_dir=Path(args.download_dir).expanduser().absolute() if args.download_dir
        else default_download_dir(),
        manual_dir=Path(args.manual_dir).expanduser().absolute() if args.manual_dir else None,
        mirror=args.mirror, verify_checksums=args.verify_checksums,
        progress=args.progress and args.jobs == 1,
    )
    options = pipeline.PrepareOptions(
        data_dir=data_dir, fetch=fetch, force=args.force,
        tfds_data_dir=Path(args.tfds_data_dir).expanduser().absolute()
        if args.tfds_data_dir else None,
    )
    start = time.perf_counter()
    outcomes = []
    for key in embedded_keys:
        spec = embedded.embedded_dataset(key).spec
        was_ready = storage_format.is_prepared(key, data_dir,
                                        version=embedded.embedded_dataset(key).version)
        embedded.prepare_embedded(spec, data_dir, force=args.force, progress=args.progress)
        manifest = storage_format.stored_manifest(key, data_dir)
        outcomes.append(pipeline.Outcome(
            key, "ready" if was_ready and not args.force else "prepared now",
            "embedded (built from installed packages)",
            examples=sum(manifest["splits"].values()) if manifest else None))
    outcomes += _prepare_handlers(chosen, options, args.jobs, args.progress)
    print(format_status(outcomes))
    not_ready = [o for o in outcomes if not o.ok]
    print(f"\n{len(outcomes) - len(not_ready)}/{len(outcomes)} dataset(s) ready in {data_dir} "
          f"({time.perf_counter() - start:.1f} s).")
    return EXIT_NOT_READY if not_ready else 0


def _prepare_handlers(chosen, options, jobs: int, progress: bool) -> list:
    """Fetches every dataset's files (`jobs` at a time), converting each as its files arrive."""
    from nevis.data import pipeline

    todo, outcomes = [], {}
    for handler, spec in chosen:
        ready = None if options.force else pipeline.prepared_outcome(
            handler.key, options.data_dir, getattr(handler, "version", None))
        if ready is not None:
            outcomes[handler.key] = ready
        else:
            todo.append((handler, spec))

    def fetch_all(handler):
        try:
            return pipeline.fetch_sources(handler, options), None
        except PrepareError as e:
            return None, pipeline.Outcome(handler.key, e.status, e.message)

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(fetch_all, h): (h, s) for h, s in todo}
        for future in concurrent.futures.as_completed(futures):
            handler, spec = futures[future]
            files, failure = future.result()
            if failure is not None:
                outcomes[handler.key] = failure
                continue
            if jobs > 1 and handler.sources:
                print(f"{handler.key}: raw files ready; converting", file=sys.stderr)
            outcomes[handler.key] = pipeline.prepare_one(handler, spec, options, files=files,
                                                         progress=progress)
    return [outcomes[h.key] for h, _ in chosen]


def format_status(outcomes) -> str:
    rows = [["dataset", "status", "examples", "checksums", "detail"]]
    for o in outcomes:
        checks = {True: "verified", False: "unverified", None: "-"}[o.verified]
        rows.append([o.key, o.status, "-" if o.examples is None else f"{o.examples:,}", checks,
                     o.detail])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
