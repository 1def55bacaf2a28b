"""Downloads against a real local HTTP server: resume, checksums, dead origins, mirrors, re-runs."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from nevis.data import download, pipeline, recipes
from nevis.data.download import FetchOptions
from nevis.data.handlers.base import Built, Handler
from nevis.data.sources import ChecksumMismatch, OriginDead, OriginUnreachable, Url
from nevis.prepare import format_status


class _Server:
    """Serves `files` (path -> bytes) with Range support; can cut a transfer half-way once."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.sent: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path
                server.requests.append((path, self.headers.get("Range")))
                if path not in server.files:
                    self.send_error(404)
                    return
                data = server.files[path]
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.cut_once:  # send half, then drop the connection
                    server.cut_once.discard(path)
                    body = body[: len(body) // 2]
                    self.close_connection = True
                self.wfile.write(body)
                self.wfile.flush()
                server.sent[path] = server.sent.get(path, 0) + len(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _options(tmp_path: Path, **kwargs) -> FetchOptions:
    return FetchOptions(download_dir=tmp_path / "raw", progress=False, backoff=0.01, **kwargs)


def _payload(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_cut_transfer_resumes_and_fetches_each_byte_once(server, tmp_path):
    data = _payload()
    server.files["/a/big.bin"] = data
    server.cut_once.add("/a/big.bin")
    source = Url(f"{server.url}/a/big.bin", sha256=hashlib.sha256(data).hexdigest())
    path = download.fetch(source, "ds", _options(tmp_path))
    assert path.read_bytes() == data
    assert server.sent["/a/big.bin"] == len(data)  # half, then the other half: nothing twice
    ranges = [r for p, r in server.requests if p == "/a/big.bin"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 2}-"
    assert not path.with_name("big.bin.part").exists()


def test_rerun_downloads_nothing(server, tmp_path):
    data = _payload(1000)
    server.files["/f.bin"] = data
    source = Url(f"{server.url}/f.bin", md5=hashlib.md5(data).hexdigest())
    download.fetch(source, "ds", _options(tmp_path))
    before = len(server.requests)
    assert download.fetch(source, "ds", _options(tmp_path)).read_bytes() == data
    assert len(server.requests) == before


def test_checksum_mismatch_deletes_the_file_and_says_so(server, tmp_path):
    server.files["/f.bin"] = b"not what was published"
    source = Url(f"{server.url}/f.bin", sha256="0" * 64)
    with pytest.raises(ChecksumMismatch) as info:
        download.fetch(source, "ds", _options(tmp_path))
    assert "f.bin" in str(info.value) and "0" * 64 in str(info.value)
    assert "run the command again" in str(info.value)
    assert not list((tmp_path / "raw" / "ds").glob("f.bin*"))


def test_not_found_is_origin_dead_with_status_and_url(server, tmp_path):
    source = Url(f"{server.url}/gone.zip")
    with pytest.raises(OriginDead) as info:
        download.fetch(source, "ds", _options(tmp_path))
    assert "HTTP 404" in str(info.value) and f"{server.url}/gone.zip" in str(info.value)


def test_unreachable_host_is_reported_as_such(tmp_path):
    # A port on loopback with no server: connection refused on every try.
    probe = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    with pytest.raises(OriginUnreachable) as info:
        download.fetch(Url(f"http://127.0.0.1:{port}/x.zip"), "ds", _options(tmp_path))
    assert f"127.0.0.1:{port}/x.zip" in str(info.value)


def test_url_mirror_replaces_the_origin(server, tmp_path):
    data = _payload(2000)
    server.files["/mirror/ds/archive.zip"] = data
    source = Url("http://origin.invalid/some/path/archive.zip",
                 sha256=hashlib.sha256(data).hexdigest())
    path = download.fetch(source, "ds", _options(tmp_path, mirror=f"{server.url}/mirror"))
    assert path.read_bytes() == data
    assert [p for p, _ in server.requests] == ["/mirror/ds/archive.zip"]


def test_folder_mirror_and_manual_dir_are_used_in_place(tmp_path):
    data = _payload(500)
    (tmp_path / "mirror" / "ds").mkdir(parents=True)
    (tmp_path / "mirror" / "ds" / "a.zip").write_bytes(data)
    source = Url("http://origin.invalid/a.zip", md5=hashlib.md5(data).hexdigest())
    path = download.fetch(source, "ds", _options(tmp_path, mirror=str(tmp_path / "mirror")))
    assert path == tmp_path / "mirror" / "ds" / "a.zip"
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "a.zip").write_bytes(data)
    path = download.fetch(source, "ds", _options(tmp_path, manual_dir=tmp_path / "manual"))
    assert path == tmp_path / "manual" / "a.zip"


def _tiny_handler(key: str, url: str, md5: str | None) -> Handler:
    def build(ctx):
        raw = ctx.path("data.bin").read_bytes()
        rng = np.random.default_rng(len(raw))
        images = [rng.integers(0, 256, (8, 8), np.uint8) for _ in range(20)]
        return Built(("a", "b"), [recipes.Item(im, i % 2) for i, im in enumerate(images)],
                     recipes.random_split(), channels=1)

    return Handler(key, key, 2000, (Url(url, md5=md5, name="data.bin"),), build,
                   lambda folder: None, "https://example.org")


def test_a_dead_origin_does_not_stop_the_other_datasets(server, tmp_path):
    data = _payload(100)
    server.files["/ok/data.bin"] = data
    good = _tiny_handler("good", f"{server.url}/ok/data.bin", hashlib.md5(data).hexdigest())
    dead = _tiny_handler("dead", f"{server.url}/missing/data.bin", None)
    options = pipeline.PrepareOptions(data_dir=tmp_path / "data", fetch=_options(tmp_path))
    outcomes = [pipeline.prepare_one(h, None, options, progress=False) for h in (dead, good)]
    assert [o.status for o in outcomes] == ["origin dead", "prepared now"]
    assert outcomes[1].examples == 20 and outcomes[1].verified is True
    table = format_status(outcomes)
    assert "HTTP 404" in table and f"{server.url}/missing/data.bin" in table
    again = pipeline.prepare_one(good, None, options, progress=False)
    assert again.status == "ready"


def test_offline_statuses_say_what_each_dataset_needs(tmp_path, monkeypatch):
    from nevis.data.sources import (
        Kaggle,
        Manual,
        NeedsKaggleCredentials,
        NeedsManualDownload,
    )

    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no_kaggle"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    options = _options(tmp_path, manual_dir=tmp_path / "manual")
    with pytest.raises(NeedsKaggleCredentials) as info:
        download.fetch(Kaggle("some-competition", competition=True), "ds", options)
    assert "kaggle.json" in str(info.value) and "kaggle.com/competitions/some-competition/rules" \
        in str(info.value)
    with pytest.raises(OriginDead) as dead:
        download.fetch(Url("http://gone.example/a.tgz", dead=True), "ds", options,
                       homepage="https://home.example/ds")
    assert "https://home.example/ds" in str(dead.value)
    assert str(tmp_path / "manual" / "ds") in str(dead.value)
    with pytest.raises(NeedsManualDownload) as manual:
        download.fetch(Manual("x.tar", "https://register.example"), "ds", options)
    assert "x.tar" in str(manual.value) and "https://register.example" in str(manual.value)
