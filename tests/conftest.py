"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tunewiz.project import Project, create_project


@pytest.fixture
def project(tmp_path) -> Project:
    """A fresh project folder with default settings."""
    return create_project(tmp_path / "proj")


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(size_kb) -> the folder of a real file system that small (a tmpfs, unmounted after).

    Mounting needs root: CI runs as root, so there these tests run; elsewhere they skip."""
    mounts = []

    def make(size_kb: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small file system needs root (CI runs as root)")
        mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)], check=True)
        mounts.append(mount)
        return mount

    yield make
    for mount in mounts:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(folder: Path, leave: int = 0) -> None:
    """Fill the file system of `folder` until `leave` bytes are free."""
    stats = os.statvfs(folder)
    with open(folder / "filler", "wb") as handle:
        try:
            handle.write(b"\0" * max(stats.f_bavail * stats.f_frsize - leave, 0))
            handle.flush()
        except OSError:
            pass


@pytest.fixture
def fill():
    """fill(folder, leave=0): fill a small disk's file system up to `leave` free bytes."""
    return fill_disk


@pytest.fixture
def hub_file():
    """hub_file(body, sha256) -> the endpoint of a stand-in for the Hugging Face hub's file endpoints, on
    loopback (HEAD: the commit, size and published SHA-256; GET: the bytes), for any repo and file name.
    The hub itself cannot be reached from tests; the hub library's own client talks to this one."""
    servers = []

    def start(body: bytes, published_sha: str) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _headers(self):
                self.send_response(200)
                self.send_header("X-Repo-Commit", "a" * 40)
                self.send_header("X-Linked-Etag", f'"{published_sha}"')
                self.send_header("X-Linked-Size", str(len(body)))
                self.send_header("ETag", f'"{published_sha}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()

            def do_HEAD(self):
                self._headers()

            def do_GET(self):
                self._headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
