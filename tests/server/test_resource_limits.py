"""Bodies cannot make the server hold memory or disk (issue 14): measured on a real ``headwater serve``
process, its resident memory read from ``/proc``.

Each request sends (or declares) far more than the route takes; the server must answer with the right
status without its RSS growing by anything like the body, and without leaving files behind when killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from headwater.catalog import Catalog

from ..support.servers import ServeProcess, make_user, serve_process

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")

BIG = 256 << 20  # what an attacker sends; the server must not hold it
GROWTH = 64 << 20  # what the server may grow by meanwhile (allocator noise, a worker thread or two)


@dataclass
class Served:
    process: ServeProcess
    key: str
    spool: str

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.process.port

    def rss(self) -> int:
        return self.process.rss()


@contextmanager
def _serving(root: str, *options: str) -> Iterator[Served]:
    catalog = os.path.join(root, "catalog.sqlite")
    spool = os.path.join(root, "spool")
    with Catalog(catalog) as cat:
        key = make_user(cat, "alice", permission="write")
        if not cat.databases():
            cat.create_database("main", owner="alice")
    with serve_process(catalog, "--spool-dir", spool, *options) as process:
        yield Served(process, key, spool)


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    with _serving(str(tmp_path), "--no-anonymous") as server:
        yield server


def _send(server: Served, method: str, path: str, *, size: int, chunked: bool, headers: dict[str, str] | None = None,
          content_type: str = "application/json", line: bytes = b"[") -> tuple[int, dict[str, str], bytes]:
    """Send a ``size``-byte body (``line`` repeated) as fast as the server takes it; the status, headers and
    body of the answer. Stops sending when the server answers or closes (as a refusing server does)."""
    sock = socket.create_connection((server.host, server.port))
    sock.settimeout(60)
    head = [f"{method} {path} HTTP/1.1", f"Host: {server.host}:{server.port}", f"Content-Type: {content_type}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    block = (line * ((1 << 20) // len(line) + 1))[: 1 << 20]
    sent = 0
    sock.setblocking(False)
    answer = b""
    try:
        while sent < size:
            try:
                answer += sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            piece = block if not chunked else b"%x\r\n" % len(block) + block + b"\r\n"
            try:
                sock.setblocking(True)
                sock.settimeout(5)
                sock.sendall(piece)
                sock.setblocking(False)
            except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                break
            sent += len(block)
        sock.setblocking(True)
        sock.settimeout(30)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        head_text, _, body = answer.partition(b"\r\n\r\n")
        lines = head_text.decode("latin-1").split("\r\n")
        found = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        while len(body) < int(found.get("content-length", "0")):
            more = sock.recv(65536)
            if not more:
                break
            body += more
    except (ConnectionResetError, BrokenPipeError):
        return 0, {}, b""
    finally:
        sock.close()
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    return status, found, body


def _auth(server: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


def test_a_huge_declared_body_is_refused_before_a_byte_is_read(served: Served) -> None:
    before = served.rss()
    for path in ("/api/datasets/acme/images/paths-info/main", "/api/database/query"):
        status, _, body = _send(served, "POST", path, size=1 << 30, chunked=False, headers=_auth(served))
        assert status == 413 and b"limit" in body, (path, status, body[:200])
    assert served.rss() - before < GROWTH


@pytest.mark.parametrize("path", ["/api/datasets/acme/images/paths-info/main", "/api/database/query"])
def test_a_huge_chunked_body_is_cut_off_at_the_routes_cap(served: Served, path: str) -> None:
    before = served.rss()
    status, _, body = _send(served, "POST", path, size=BIG, chunked=True, headers=_auth(served))
    assert status == 413, (status, body[:200])
    assert served.rss() - before < GROWTH


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/database/query"),
                                              ("PUT", "/api/database/main/repository/acme/cats/tag/latest"),
                                              ("POST", "/api/database/main/repository/acme/cats/publish")])
def test_without_a_key_the_body_is_never_read(served: Served, method: str, path: str) -> None:
    """``--no-anonymous``: 401 before the body is parsed, whatever it holds."""
    before = served.rss()
    status, headers, _ = _send(served, method, path, size=BIG, chunked=True)
    assert status == 401 and "bearer" in headers.get("www-authenticate", "").lower()
    assert served.rss() - before < GROWTH


def test_a_one_line_droplet_is_cut_off_at_the_droplet_cap(served: Served) -> None:
    before = served.rss()
    status, _, body = _send(served, "POST", "/api/database/main/repository/acme/cats/publish", size=BIG,
                            chunked=True, headers=_auth(served), content_type="application/x-ndjson", line=b"x")
    assert status == 413 and b"line 1" in body, body[:300]
    assert served.rss() - before < GROWTH
    assert not os.listdir(os.path.join(served.spool, str(served.process.pid)))


def test_a_killed_servers_spooled_body_is_removed_when_the_next_one_starts(tmp_path) -> None:
    with _serving(str(tmp_path)) as server:
        sock = socket.create_connection((server.host, server.port))
        head = (f"POST /api/database/main/repository/acme/cats/publish HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {server.key}\r\nContent-Type: application/x-ndjson\r\n"
                f"Content-Length: {50 << 20}\r\n\r\n")
        sock.sendall(head.encode() + json.dumps({"tags": ["latest"]}).encode() + b"\n" + b" \n" * (4 << 20))
        folder = os.path.join(server.spool, str(server.process.pid))
        deadline = time.monotonic() + 30
        while not (os.path.isdir(folder) and os.listdir(folder)
                   and os.path.getsize(os.path.join(folder, os.listdir(folder)[0])) > 0):
            assert time.monotonic() < deadline, "the body never reached the spool"
            time.sleep(0.05)
        server.process.proc.send_signal(signal.SIGKILL)
        server.process.proc.wait(20)
        sock.close()
        assert os.listdir(folder)  # left behind by the killed process
    with _serving(str(tmp_path)):
        assert not os.path.exists(folder)
