"""Where a dataset's raw files come from, and the outcomes of trying to get them.

A handler lists its raw files as sources. Each source names the file it produces (`filename`,
by default the last part of its URL) and, where the publisher gives one, its checksum. Every
kind of source can be replaced by a mirror (`--mirror`): the file is then looked up at
`<mirror>/<dataset key>/<filename>`. Fetching lives in `nevis.data.download`.
"""

from __future__ import annotations

import dataclasses
import urllib.parse


@dataclasses.dataclass(frozen=True)
class Checksum:
    """A published checksum: `algorithm` is "sha256" or "md5"."""

    algorithm: str
    value: str

    def __post_init__(self):
        if self.algorithm not in ("sha256", "md5"):
            raise ValueError(f"checksum algorithm must be sha256 or md5, got {self.algorithm!r}")


def _checksum(sha256: str | None, md5: str | None) -> Checksum | None:
    if sha256:
        return Checksum("sha256", sha256.lower())
    if md5:
        return Checksum("md5", md5.lower())
    return None


@dataclasses.dataclass(frozen=True)
class Url:
    """A file on a web server (HTTP/HTTPS)."""

    url: str
    sha256: str | None = None
    md5: str | None = None
    name: str | None = None  # file name to store it under; default: the URL's last part
    dead: bool = False  # known to be offline: say so instead of trying (files via --manual_dir)

    @property
    def filename(self) -> str:
        return self.name or urllib.parse.unquote(urllib.parse.urlparse(self.url).path).rsplit(
            "/", 1
        )[-1]

    @property
    def checksum(self) -> Checksum | None:
        return _checksum(self.sha256, self.md5)

    @property
    def origin(self) -> str:
        return self.url


@dataclasses.dataclass(frozen=True)
class GoogleDrive:
    """A publicly shared Google Drive file, fetched with `gdown` (the `prepare` extra)."""

    file_id: str
    name: str
    sha256: str | None = None
    md5: str | None = None

    @property
    def filename(self) -> str:
        return self.name

    @property
    def checksum(self) -> Checksum | None:
        return _checksum(self.sha256, self.md5)

    @property
    def origin(self) -> str:
        return f"https://drive.google.com/uc?id={self.file_id}"


@dataclasses.dataclass(frozen=True)
class Kaggle:
    """A Kaggle dataset ("owner/name") or competition ("name"), fetched with the `kaggle` package.

    Needs the `prepare` extra and API credentials (`~/.kaggle/kaggle.json`); a competition also
    needs its rules accepted on its page.
    """

    ref: str
    competition: bool = False
    name: str | None = None  # the archive Kaggle serves; default "<last part of ref>.zip"
    sha256: str | None = None
    md5: str | None = None

    @property
    def filename(self) -> str:
        return self.name or f"{self.ref.rsplit('/', 1)[-1]}.zip"

    @property
    def checksum(self) -> Checksum | None:
        return _checksum(self.sha256, self.md5)

    @property
    def origin(self) -> str:
        kind = "competitions" if self.competition else "datasets"
        return f"https://www.kaggle.com/{kind}/{self.ref}"


@dataclasses.dataclass(frozen=True)
class Manual:
    """A file a user must fetch by hand (registration, licence); placed in `--manual_dir`."""

    name: str
    page: str  # where to get it
    sha256: str | None = None
    md5: str | None = None
    instructions: str = ""

    @property
    def filename(self) -> str:
        return self.name

    @property
    def checksum(self) -> Checksum | None:
        return _checksum(self.sha256, self.md5)

    @property
    def origin(self) -> str:
        return self.page


Source = Url | GoogleDrive | Kaggle | Manual


# ------------------------------------------------------------------------- outcomes (errors)


class PrepareError(Exception):
    """A dataset could not be prepared; `status` is its row in the status table."""

    status = "failed"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NeedsManualDownload(PrepareError):
    status = "needs manual download"


class NeedsKaggleCredentials(PrepareError):
    status = "needs Kaggle credentials"


class NeedsExtra(PrepareError):
    status = "needs an extra"


class OriginDead(PrepareError):
    status = "origin dead"


class OriginUnreachable(PrepareError):
    status = "origin unreachable"


class ChecksumMismatch(PrepareError):
    status = "failed"
