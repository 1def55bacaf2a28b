"""Fetching a handler's raw files: HTTP (resumable), Google Drive, Kaggle, mirrors, manual files.

Every fetched file lands in `<download_dir>/<key>/<filename>`, first as `<filename>.part`,
renamed only after its checksum matched, so a file under its final name is complete. Files
found in a local mirror or the manual folder are verified and used where they are (nothing is
copied). A re-run finds verified files by a small stamp next to them (size, mtime, checksum) and
neither downloads nor re-hashes them.

HTTP goes through `requests` with retries and exponential back-off (connection errors, 429, 5xx);
an interrupted transfer resumes from the `.part` file with an HTTP Range request, so no byte is
fetched twice. 404/410 mean the origin is dead; an unreachable host means it cannot be reached
from here (offline, firewall): both are reported as such, with the URL, never as a traceback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import urllib.parse
from pathlib import Path

from nevis import progress as progress_lib
from nevis.data.sources import (
    Checksum,
    ChecksumMismatch,
    GoogleDrive,
    Kaggle,
    Manual,
    NeedsExtra,
    NeedsKaggleCredentials,
    NeedsManualDownload,
    OriginDead,
    OriginUnreachable,
    PrepareError,
    Source,
    Url,
)

CHUNK = 1 << 20
ATTEMPTS = 5  # per file, for transfers cut mid-way (connection set-up retries are separate)
TIMEOUT = (20, 120)  # connect, read seconds
PREPARE_EXTRA = "pip install -e '.[prepare]'"


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    download_dir: Path
    manual_dir: Path | None = None
    mirror: str | None = None  # a local folder or an http(s) URL replacing every origin
    verify_checksums: bool = True
    progress: bool = True
    backoff: float = 1.0  # seconds before the first retry (doubles each time)


def file_digest(path: Path, algorithm: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, checksum: Checksum) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, checksum.algorithm: checksum.value}


def verify(path: Path, checksum: Checksum | None, *, delete: bool) -> None:
    """Checks `path` against `checksum` (a no-op without one); remembers success in a stamp."""
    if checksum is None:
        return
    stamp = _stamp_path(path)
    try:
        if json.loads(stamp.read_text()) == _stamp(path, checksum):
            return
    except (OSError, ValueError):
        pass
    actual = file_digest(path, checksum.algorithm)
    if actual != checksum.value:
        where = "deleted it; run the command again to fetch it anew" if delete else (
            "replace it with the published file, or pass --verify_checksums=false for a "
            "hand-made copy")
        if delete:
            path.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{path.name}: {checksum.algorithm} {actual} does not match the published "
            f"{checksum.value} ({where})."
        )
    try:
        stamp.write_text(json.dumps(_stamp(path, checksum)))
    except OSError:
        pass  # a read-only mirror: verified again next time


def _is_url(location: str) -> bool:
    return urllib.parse.urlparse(location).scheme in ("http", "https")


def _local(location: str) -> Path:
    parsed = urllib.parse.urlparse(location)
    return Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else location)


def fetch(source: Source, key: str, options: FetchOptions, homepage: str = "") -> Path:
    """The local path of `source`'s file for dataset `key`, fetching it if needed.

    `homepage` (the dataset's page) is named when a file must be fetched by hand.
    """
    checksum = source.checksum if options.verify_checksums else None
    target = options.download_dir / key / source.filename
    if target.is_file():
        verify(target, checksum, delete=True)
        return target
    if options.manual_dir is not None:
        for candidate in (options.manual_dir / key / source.filename,
                          options.manual_dir / source.filename):
            if candidate.is_file():
                verify(candidate, checksum, delete=False)
                return candidate
    if options.mirror:
        if _is_url(options.mirror):
            url = f"{options.mirror.rstrip('/')}/{key}/{urllib.parse.quote(source.filename)}"
            return http_download(url, target, checksum, options)
        candidate = _local(options.mirror) / key / source.filename
        if not candidate.is_file():
            raise NeedsManualDownload(
                f"the mirror {options.mirror} has no {key}/{source.filename}; put the file "
                f"there, or run without --mirror to fetch it from {source.origin}."
            )
        verify(candidate, checksum, delete=False)
        return candidate
    if isinstance(source, Url):
        if source.dead:
            why = f"{source.url} is known to be offline"
            raise OriginDead(_manual_hint(key, source, options, why, homepage))
        return http_download(source.url, target, checksum, options)
    if isinstance(source, GoogleDrive):
        return _gdrive(source, target, checksum, options)
    if isinstance(source, Kaggle):
        return _kaggle(source, key, target, checksum, options)
    if isinstance(source, Manual):
        raise NeedsManualDownload(
            _manual_hint(key, source, options, source.instructions, homepage))
    raise TypeError(f"unknown source type {type(source).__name__}")


def _manual_hint(key: str, source: Source, options: FetchOptions, why: str,
                 homepage: str) -> str:
    folder = (options.manual_dir or Path("<manual_dir>")) / key
    why = f"{why}; " if why else ""
    page = source.origin if isinstance(source, Manual) else (homepage or source.origin)
    return (f"{why}get {source.filename} (see {page}) and put it in {folder}/, then pass "
            "--manual_dir")


# --------------------------------------------------------------------------------------- HTTP


def _session(backoff: float):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=4, connect=4, read=0, backoff_factor=backoff / 2,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "HEAD"),
                  raise_on_status=False)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers["User-Agent"] = "nevis-prepare"
    # Byte ranges address the stored bytes: never let a server compress the transfer.
    session.headers["Accept-Encoding"] = "identity"
    return session


def http_download(url: str, target: Path, checksum: Checksum | None,
                  options: FetchOptions) -> Path:
    """Downloads `url` to `target` through `target.part`, resuming it if present."""
    import requests
    import urllib3

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    session = _session(options.backoff)
    delay = options.backoff
    last_error: Exception | None = None
    for attempt in range(ATTEMPTS):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with session.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
                if response.status_code in (404, 410):
                    raise OriginDead(f"HTTP {response.status_code} from {url}")
                if response.status_code == 416:  # nothing left to fetch, or a stale part file
                    total = _content_range_total(response.headers.get("Content-Range", ""))
                    if total is not None and total == have:
                        break
                    part.unlink(missing_ok=True)
                    continue
                if response.status_code >= 400:
                    raise OriginDead(f"HTTP {response.status_code} from {url}")
                resumed = response.status_code == 206
                if not resumed:
                    have = 0  # the server ignored the range: start again
                total = _expected_total(response, have)
                with open(part, "ab" if resumed else "wb") as out, progress_lib.bar(
                    total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=target.name, enabled=options.progress,
                ) as bar:
                    # read1 hands over every byte received before a connection drops
                    # (iter_content would lose its partly filled buffer), so a resume
                    # never fetches a byte twice.
                    while chunk := response.raw.read1(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                if total is not None and part.stat().st_size < total:
                    raise requests.exceptions.ChunkedEncodingError(
                        f"transfer ended at {part.stat().st_size} of {total} bytes")
                break
        except PrepareError:
            raise
        except requests.exceptions.ConnectionError as e:
            if not part.exists() or part.stat().st_size == 0:
                if attempt == ATTEMPTS - 1 or _unreachable(e):
                    raise OriginUnreachable(f"cannot reach {url} ({_reason(e)})") from e
            last_error = e
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.Timeout,
                urllib3.exceptions.HTTPError, OSError) as e:
            last_error = e
        time.sleep(delay)
        delay *= 2
    else:
        raise OriginUnreachable(
            f"{url}: transfer failed {ATTEMPTS} times ({_short(last_error)}); run the command "
            "again to resume it"
        )
    verify_part(part, target, checksum)
    return target


def verify_part(part: Path, target: Path, checksum: Checksum | None) -> None:
    try:
        verify(part, checksum, delete=True)
    except ChecksumMismatch as e:
        _stamp_path(part).unlink(missing_ok=True)
        raise ChecksumMismatch(e.message.replace(part.name, target.name, 1)) from None
    os.replace(part, target)
    stamp = _stamp_path(part)
    if stamp.exists():
        os.replace(stamp, _stamp_path(target))


def _content_range_total(value: str) -> int | None:
    total = value.rsplit("/", 1)[-1] if "/" in value else ""
    return int(total) if total.isdigit() else None


def _expected_total(response, have: int) -> int | None:
    if response.status_code == 206:
        total = _content_range_total(response.headers.get("Content-Range", ""))
        if total is not None:
            return total
    length = response.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _unreachable(error: Exception) -> bool:
    text = str(error)
    return any(s in text for s in ("Name or service not known", "Temporary failure in name",
                                   "nodename nor servname", "Failed to resolve",
                                   "Network is unreachable", "No route to host",
                                   "Connection refused", "Max retries exceeded"))


def _reason(error: Exception) -> str:
    """Why a host could not be reached, in words (not urllib3's nested repr)."""
    text = str(error)
    for needle, reason in (("NameResolutionError", "its host name does not resolve: offline?"),
                           ("Failed to resolve", "its host name does not resolve: offline?"),
                           ("Connection refused", "connection refused"),
                           ("timed out", "timed out"),
                           ("Network is unreachable", "network unreachable"),
                           ("No route to host", "no route to host")):
        if needle in text:
            return reason
    return _short(error)


def _short(error: Exception | None) -> str:
    text = str(error) if error else "unknown error"
    return text if len(text) < 200 else text[:200] + "…"


# ------------------------------------------------------------------------- Drive and Kaggle


def _gdrive(source: GoogleDrive, target: Path, checksum: Checksum | None,
            options: FetchOptions) -> Path:
    try:
        import gdown
    except ImportError as e:
        raise NeedsExtra(f"Google Drive files need gdown: {PREPARE_EXTRA}") from e
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        out = gdown.download(id=source.file_id, output=str(part), quiet=not options.progress,
                             resume=True)
    except Exception as e:  # noqa: BLE001 - gdown raises many types for one failure
        raise OriginUnreachable(f"Google Drive file {source.origin}: {_reason(e)}") from e
    if out is None:
        raise OriginDead(f"Google Drive refused {source.origin} (deleted, private or over quota)")
    verify_part(part, target, checksum)
    return target


def kaggle_credentials() -> bool:
    """Whether the kaggle package can authenticate (token file or environment variables)."""
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (config_dir / "kaggle.json").is_file() or bool(
        os.environ.get("KAGGLE_API_TOKEN")
        or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
    )


def _kaggle(source: Kaggle, key: str, target: Path, checksum: Checksum | None,
            options: FetchOptions) -> Path:
    what = f"competition {source.ref}" if source.competition else f"dataset {source.ref}"
    if not kaggle_credentials():
        join = (f" and accept the rules of the {what} at {source.origin}/rules"
                if source.competition else "")
        raise NeedsKaggleCredentials(
            f"needs Kaggle API credentials in ~/.kaggle/kaggle.json (create a token at "
            f"https://www.kaggle.com/settings){join}; it fetches the {what}"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as e:
        raise NeedsExtra(f"Kaggle files need the kaggle package: {PREPARE_EXTRA}") from e
    folder = target.parent / (target.name + ".kaggle.part")
    folder.mkdir(parents=True, exist_ok=True)
    api = KaggleApi()
    try:
        api.authenticate()
        if source.competition:
            api.competition_download_files(source.ref, path=str(folder), quiet=not options.progress)
        else:
            api.dataset_download_files(source.ref, path=str(folder), quiet=not options.progress,
                                       unzip=False)
    except Exception as e:  # noqa: BLE001 - the kaggle client raises its own HTTP errors
        raise OriginUnreachable(f"Kaggle {what}: {_short(e)}") from e
    fetched = folder / source.filename
    if not fetched.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise PrepareError(f"Kaggle {what} gave {found}, not {source.filename}")
    verify_part(fetched, target, checksum)
    folder.rmdir() if not any(folder.iterdir()) else None
    return target
