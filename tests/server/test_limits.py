"""Connection limits (:mod:`headwater.server.limits`) of a real ``headwater serve`` process: clients that send
half a request head, pause inside a body, stop reading, open too many connections or send huge heads are
answered or cut on time, and what they cost the server is read from its ``/proc/<pid>/`` (descriptors,
``VmRSS``). Short timeouts keep every test to a few seconds."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields

import click
import httpx
import pytest

from headwater.catalog import Catalog
from headwater.server.app import ServerConfig
from headwater.server.limits import Limits
from headwater.server.range_responses import CHUNK

from ..support.servers import BackgroundServer, ServeProcess, serve_process

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the server's /proc/<pid>/")

REPO = "acme/px"
BIG = 40 << 20
FILE = f"/datasets/{REPO}/resolve/main/big.bin"
HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("limits-pool")
    with open(root / "big.bin", "wb") as f:
        f.write(os.urandom(BIG))
    return str(root)


@contextmanager
def server(tmp_path: object, pool: str, *options: str) -> Iterator[ServeProcess]:
    catalog = os.path.join(str(tmp_path), "catalog.sqlite")
    with Catalog(catalog) as cat:
        cat.change_pool_access(REPO, public=True)
    with serve_process(catalog, "--pool", f"{REPO}={pool}", *options) as srv:
        yield srv
        assert "Traceback" not in srv.stderr(), srv.stderr()


def settled_fds(srv: ServeProcess) -> int:
    """The server's descriptor count at rest, once it has answered a request on a closed connection."""
    httpx.get(srv.url + "/healthz", headers={"Connection": "close"})
    time.sleep(0.2)
    return srv.fds()


def wait_until(done: Callable[[], bool], timeout: float, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def connect(srv: ServeProcess, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connecting: the window the client offers stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", srv.port))
    return sock


def read_to_eof(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (raises if it does not within ``timeout``)."""
    sock.settimeout(timeout)
    chunks = []
    while data := sock.recv(1 << 16):
        chunks.append(data)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One response with a ``content-length`` body, read off a connection that stays open."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1 << 16)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(1 << 16)
    return head + b"\r\n\r\n" + body


def test_half_sent_request_heads_are_answered_408_and_closed_after_the_header_timeout(tmp_path, pool) -> None:
    with server(tmp_path, pool, "--timeout-header", "1") as srv:
        base = settled_fds(srv)
        half = [connect(srv) for _ in range(200)]
        for sock in half:
            sock.sendall(HALF_HEAD)
        silent = [connect(srv) for _ in range(10)]  # connected, nothing sent
        peak = base

        def all_closed() -> bool:
            nonlocal peak
            peak = max(peak, srv.fds())
            return peak >= base + 200 and srv.fds() <= base + 2

        assert wait_until(all_closed, 6), (srv.fds(), base, peak)  # they were all open at once …
        # … and all were closed within the timeout (+ slack), the half-sent ones with a 408
        answers = {read_to_eof(sock, 2)[:13] for sock in half}
        assert answers == {b"HTTP/1.1 408 "}
        assert {read_to_eof(sock, 2) for sock in silent} == {b""}
        # a kept-alive connection: the next head has the same deadline from the end of the previous response
        kept = connect(srv)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(kept).endswith(b'{"ok":true}')
        kept.sendall(HALF_HEAD)
        started = time.monotonic()
        assert read_to_eof(kept, 5).startswith(b"HTTP/1.1 408 ")
        assert 0.9 < time.monotonic() - started < 3
        for sock in [*half, *silent, kept]:
            sock.close()


def test_clients_that_stop_reading_hold_at_most_a_chunk_each_and_are_cut_after_the_send_timeout(tmp_path, pool):
    n = 100
    with server(tmp_path, pool, "--timeout-send", "1") as srv:
        base_fds = settled_fds(srv)
        assert len(httpx.get(srv.url + FILE, timeout=30).content) == BIG  # warm: page cache, threads, allocator
        base_rss = srv.rss()
        stalled = [connect(srv, rcvbuf=4096) for _ in range(n)]
        for sock in stalled:
            sock.sendall(f"GET {FILE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        started, peak = time.monotonic(), base_rss
        opened = False

        def all_cut() -> bool:
            nonlocal peak, opened
            peak = max(peak, srv.rss())
            fds = srv.fds()
            opened = opened or fds >= base_fds + n
            return opened and fds <= base_fds + 2

        assert wait_until(all_cut, 10), (srv.fds(), base_fds)
        took = time.monotonic() - started
        growth = peak - base_rss
        print(f"{n} stalled clients: +{growth / 2**20:.0f} MiB at peak ({growth / n / 2**20:.2f} MiB each), "
              f"all cut after {took:.1f} s")
        assert 1 <= took <= 1.25 + 3  # timeout_send … + the time to stall (kernel buffers fill) and the slack of CI
        # The bound pacing promises, with no help from the kernel's socket buffers: per stalled connection one
        # chunk + the transport's 64 KiB high-water mark, plus the chunks being read at that moment (at most
        # one per thread of the pool: anyio's 40). Here the kernel takes part of each chunk, so the real
        # figure is lower (~2.6 MiB each); before pacing a stalled client also pinned the chunk starlette had
        # read ahead (~6.8 MiB each, 681 MiB in all, measured with this test on the code before).
        assert growth <= n * (CHUNK + (64 << 10)) + 40 * CHUNK
        for sock in stalled:
            sock.close()
        # a slow reader that keeps reading is not cut, however long the download takes
        with httpx.stream("GET", srv.url + FILE, headers={"Range": "bytes=0-12582911"}, timeout=30) as r:
            got = 0
            for piece in r.iter_raw(256 << 10):
                got += len(piece)
                time.sleep(0.08)  # ~3 MiB/s: the transport stays paused, with some progress every check
        assert r.status_code == 206 and got == 12 << 20


def test_a_request_body_that_stalls_gets_408_within_the_body_timeout(tmp_path, pool) -> None:
    head = (f"POST /api/datasets/{REPO}/paths-info/main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: {}\r\n\r\n")
    body = b'{"paths": ["big.bin"]}'
    with server(tmp_path, pool, "--timeout-body", "1") as srv:
        sock = connect(srv)
        sock.sendall(head.format(len(body)).encode() + body[:5])
        started = time.monotonic()
        answer = read_to_eof(sock, 10)  # 408, then the connection is closed
        assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer.lower()
        assert b'{"error": "request body paused for more than 1 s"}' in answer
        assert 0.9 < time.monotonic() - started < 3
        sock.close()
        # a body that keeps coming, slowly, is read to its end
        sock = connect(srv)
        sock.sendall(head.format(len(body)).encode())
        for i in range(0, len(body), 4):
            time.sleep(0.3)
            sock.sendall(body[i:i + 4])
        answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"path":"big.bin"' in answer
        sock.close()
        # an upload answered before its body arrived (401: no key): the rest of the body is discarded, the
        # connection serves the next request; a rest that stalls is cut by the same rule
        upload = f"PUT /api/pools/{REPO}/files/x.tar HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 20}\r\n\r\n"
        for stall in (False, True):
            sock = connect(srv)
            sock.sendall(upload.encode() + bytes(100 << 10))
            assert read_response(sock).startswith(b"HTTP/1.1 401 ")
            if stall:
                started = time.monotonic()
                assert read_to_eof(sock, 10) == b""
                assert 0.9 < time.monotonic() - started < 3
            else:
                sock.sendall(bytes((1 << 20) - (100 << 10)) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(sock).endswith(b'{"ok":true}')
            sock.close()


def test_requests_beyond_the_concurrency_limit_get_503(tmp_path, pool) -> None:
    with server(tmp_path, pool, "--limit-concurrency", "4") as srv:
        base = settled_fds(srv)
        held = [connect(srv) for _ in range(4)]
        assert wait_until(lambda: srv.fds() >= base + 4, 5)
        r = httpx.get(srv.url + "/healthz")
        assert r.status_code == 503
        for sock in held:
            sock.close()
        assert wait_until(lambda: srv.fds() <= base, 5)
        assert httpx.get(srv.url + "/healthz").status_code == 200


def test_an_oversized_request_head_gets_431(tmp_path, pool) -> None:
    with server(tmp_path, pool, "--max-header-size", "4KiB") as srv:
        r = httpx.get(srv.url + "/healthz", headers={"X-Big": "a" * 8000})
        assert r.status_code == 431 and r.json() == {"error": "request head larger than 4096 bytes"}
        assert httpx.get(srv.url + "/healthz", headers={"X-Big": "a" * 3000}).status_code == 200
    with server(tmp_path, pool) as srv:  # the default: 16 KiB
        assert httpx.get(srv.url + "/healthz", headers={"X-Big": "a" * 15000}).status_code == 200
        assert httpx.get(srv.url + "/healthz", headers={"X-Big": "a" * 17000}).status_code == 431


def _assert_limits_apply(url: str) -> None:
    host, port = url.rsplit("/", 1)[1].split(":")
    socks = [socket.create_connection((host, int(port))) for _ in range(10)]
    for sock in socks:
        sock.sendall(HALF_HEAD)
    assert {read_to_eof(sock, 4)[:13] for sock in socks} == {b"HTTP/1.1 408 "}
    for sock in socks:
        sock.close()
    assert httpx.get(url + "/healthz", headers={"X-Big": "a" * 8000}).status_code == 431


def test_worker_processes_and_background_servers_honour_the_limits(tmp_path, pool) -> None:
    with server(tmp_path, pool, "--workers", "2", "--timeout-header", "1", "--max-header-size", "4KiB") as srv:
        _assert_limits_apply(srv.url)
    config = ServerConfig(os.path.join(str(tmp_path), "bg.sqlite"), timeout_header=1, max_header_size=4096)
    with BackgroundServer(config) as bg:
        _assert_limits_apply(bg.url)


def test_serve_options_default_to_the_limits_and_are_explained() -> None:
    from headwater.cli.admin import serve

    params = {p.name: p for p in serve.params}
    for field in fields(Limits):
        param = params[field.name]
        assert isinstance(param, click.Option) and param.help and param.show_default
        value = param.type.convert(param.default, param, None)
        assert value == getattr(Limits(), field.name), field.name
    assert ServerConfig("c.sqlite").limits == Limits()
    with pytest.raises(ValueError, match="timeout_body must be > 0"):
        _ = ServerConfig("c.sqlite", timeout_body=0).limits
