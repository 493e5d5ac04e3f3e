"""The test file server itself (``tests/support/httpserver.py``), read on the wire with ``http.client``.

Every storage and pool test trusts it to behave like the servers it stands for; a server that answered a
range wrongly, or never injected its fault, would make those tests pass for nothing.
"""

from __future__ import annotations

import http.client
import os
import time
from urllib.parse import urlsplit

import pytest

from .httpserver import Fault, FileServer, ServerHandle, start_server_process

DATA = b"".join(b"%04d" % i for i in range(250))  # 1,000 ASCII bytes: readable parts, no boundary inside


@pytest.fixture
def root(tmp_path):
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "a.bin").write_bytes(DATA)
    (tmp_path / "pub" / "empty.bin").write_bytes(b"")
    (tmp_path / "secret.txt").write_bytes(b"outside the root")
    os.symlink(tmp_path / "secret.txt", tmp_path / "pub" / "link.txt")
    return str(tmp_path / "pub")


def get(server: ServerHandle, path: str, method: str = "GET", **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a new connection: the answer and its whole body."""
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    conn.request(method, path, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer, body


def multipart(answer: http.client.HTTPResponse, body: bytes) -> list[tuple[str, bytes]]:
    """``(Content-Range, data)`` of each part, split by the boundary (DATA holds no ``--``)."""
    boundary = answer.headers.get_param("boundary")
    assert answer.headers.get_content_type() == "multipart/byteranges" and isinstance(boundary, str)
    chunks = body.split(b"--" + boundary.encode())
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        ranges = [line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-range:")]
        parts.append((ranges[0], data.removesuffix(b"\r\n")))
    return parts


def test_single_ranges_head_and_not_found(file_server, root):
    server = file_server(root)
    for spec, status, content_range, want in [
        ("bytes=10-19", 206, "bytes 10-19/1000", DATA[10:20]),
        ("bytes=990-", 206, "bytes 990-999/1000", DATA[990:]),
        ("bytes=995-5000", 206, "bytes 995-999/1000", DATA[995:]),  # the end clipped
        ("bytes=-4", 206, "bytes 996-999/1000", DATA[-4:]),
        ("bytes=-5000", 206, "bytes 0-999/1000", DATA),
        ("bytes=1000-", 416, "bytes */1000", None),
        ("bytes=-0", 416, "bytes */1000", None),
        ("bytes=20-10", 200, None, DATA),  # invalid: ignored
        ("pages=1-2", 200, None, DATA),  # unknown unit: ignored
    ]:
        answer, body = get(server, "/a.bin", Range=spec)
        assert (answer.status, answer.getheader("Content-Range")) == (status, content_range), spec
        length = answer.getheader("Content-Length")
        assert length is not None and int(length) == len(body)
        if want is not None:
            assert body == want, spec
    answer, body = get(server, "/a.bin", "HEAD", Range="bytes=0-9")  # ranges are for GET only
    assert answer.status == 200 and answer.getheader("Content-Length") == "1000" and body == b""
    assert answer.getheader("ETag") and answer.getheader("Last-Modified")
    assert answer.getheader("Accept-Ranges") == "bytes"
    assert get(server, "/empty.bin")[0].getheader("Content-Length") == "0"
    for path in ("/missing.bin", "/", "/../secret.txt", "/%2e%2e/secret.txt", "/link.txt"):
        answer, body = get(server, path)
        assert answer.status == 404 and body == b"404 Not Found\n", path
    assert server.by_method == {"GET": 15, "HEAD": 1} and server.total == 16
    unversioned = file_server(root, versioned=False)
    answer, _ = get(unversioned, "/a.bin")
    assert answer.getheader("ETag") is None and answer.getheader("Last-Modified") is None


def test_several_ranges_in_every_mode(file_server, root):
    spec = "bytes=900-909, 0-4, 2000-2001, 3-7"  # out of order, one unsatisfiable, overlapping
    answer, body = get(file_server(root), "/a.bin", Range=spec)
    assert answer.status == 206 and answer.getheader("Content-Range") is None
    assert multipart(answer, body) == [("bytes 900-909/1000", DATA[900:910]), ("bytes 0-4/1000", DATA[:5]),
                                       ("bytes 3-7/1000", DATA[3:8])]
    answer, body = get(file_server(root, multi_range="reversed"), "/a.bin", Range=spec)
    assert [cr for cr, _ in multipart(answer, body)] == ["bytes 3-7/1000", "bytes 0-4/1000", "bytes 900-909/1000"]
    answer, body = get(file_server(root, multi_range="coalesced"), "/a.bin", Range=spec)
    assert (answer.status, answer.getheader("Content-Range"), body) == (206, "bytes 0-909/1000", DATA[:910])
    answer, body = get(file_server(root, multi_range="first"), "/a.bin", Range=spec)
    assert (answer.status, answer.getheader("Content-Range"), body) == (206, "bytes 900-909/1000", DATA[900:910])
    answer, body = get(file_server(root, multi_range="ignore"), "/a.bin", Range=spec)
    assert (answer.status, body) == (200, DATA)
    assert get(file_server(root, multi_range="refuse"), "/a.bin", Range=spec)[0].status == 400
    answer, body = get(file_server(root, ignore_range=True), "/a.bin", Range="bytes=0-9")
    assert (answer.status, body) == (200, DATA)
    answer, _ = get(file_server(root), "/a.bin", Range="bytes=2000-2001,3000-")
    assert (answer.status, answer.getheader("Content-Range")) == (416, "bytes */1000")
    with pytest.raises(ValueError, match="multi_range"):
        FileServer(root, multi_range="sometimes")  # type: ignore[arg-type]


def test_token_faults_and_counters(file_server, root):
    server = file_server(root, token="tok")
    answer, body = get(server, "/a.bin")
    assert answer.status == 401 and body == b'{"error": "unauthorized"}'
    assert get(server, "/a.bin", Authorization="Bearer tok")[1] == DATA
    server.inject("a.bin", Fault.status(429, {"Retry-After": "3"}), Fault.redirect("http://elsewhere/x", 301),
                  Fault.corrupt(), Fault.short())
    answer, _ = get(server, "/a.bin")  # faults come before the credentials are looked at
    assert answer.status == 429 and answer.getheader("Retry-After") == "3"
    answer, body = get(server, "/a.bin")
    assert (answer.status, answer.getheader("Location"), body) == (301, "http://elsewhere/x", b"")
    answer, body = get(server, "/a.bin", Authorization="Bearer tok", Range="bytes=10-19")
    assert answer.status == 206 and body == bytes([DATA[10] ^ 0xFF]) + DATA[11:20]
    answer, body = get(server, "/a.bin", Authorization="Bearer tok", Range="bytes=10-19")
    assert answer.getheader("Content-Range") == "bytes 10-19/1000" and body == DATA[10:19]
    assert get(server, "/a.bin", Authorization="Bearer tok")[1] == DATA  # the queue is empty again
    assert server.faults["a.bin"] == []
    assert server.requests == {"a.bin": 7}
    assert server.ranges[4] == ("a.bin", "bytes=10-19") and server.seen[1].header("authorization") == "Bearer tok"
    bodies = [b'{"error": "unauthorized"}', DATA, b"429 Too Many Requests\n", b"", DATA[10:20], DATA[10:19], DATA]
    assert server.bytes_sent == sum(map(len, bodies))
    snap = server.snapshot()
    assert (snap.requests, snap.bytes_sent, snap.by_method, snap.by_path) == (7, server.bytes_sent, {"GET": 7},
                                                                              {"a.bin": 7})
    server.reset()
    assert server.total == 0 and server.bytes_sent == 0 and server.snapshot().by_path == {}


def test_cut_answers_stalls_and_latency(file_server, root):
    server = file_server(root)
    server.inject("a.bin", Fault.truncate(keep=100), Fault.reset(), Fault.stall(0.3))
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/a.bin")
    answer = conn.getresponse()
    assert answer.getheader("Content-Length") == "1000"
    with pytest.raises(http.client.IncompleteRead) as cut:
        answer.read()
    assert cut.value.partial == DATA[:100]
    conn.close()
    with pytest.raises(http.client.RemoteDisconnected):
        get(server, "/a.bin")
    start = time.monotonic()
    assert get(server, "/a.bin")[1] == DATA
    assert time.monotonic() - start >= 0.3
    slow = file_server(root, latency_ms=150)
    start = time.monotonic()
    for _ in range(2):
        assert get(slow, "/a.bin")[0].status == 200
    assert time.monotonic() - start >= 0.3


def test_stop_closes_idle_keep_alive_connections(root):
    server = FileServer(root).start()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/a.bin")
    assert conn.getresponse().read() == DATA  # the connection stays open, idle
    server.stop()
    conn.request("GET", "/a.bin")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    server.stop()  # idempotent


def test_a_server_in_a_child_process(root):
    server = start_server_process(root, latency_ms=1, multi_range="refuse")
    try:
        assert get(server, "/a.bin", Range="bytes=0-9,20-29")[0].status == 400
        snap = server.snapshot()
        assert (snap.requests, snap.by_method, snap.by_path) == (1, {"GET": 1}, {"a.bin": 1})
        server.reset()
        assert server.snapshot().requests == 0
    finally:
        server.stop()
    with pytest.raises(OSError):
        get(server, "/a.bin")
