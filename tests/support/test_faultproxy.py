"""The fault proxy itself, in front of the test file server: it passes bytes through unchanged, each fault
kind does what it says to a real HTTP client, queued faults hit the path they aim at, and the counters and
the random plan add up."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from .faultproxy import FAULT_KINDS, FaultPlan, FaultProxy, ProxyFault
from .httpserver import FileServer

BODY = os.urandom(200_000)


@pytest.fixture
def upstream(tmp_path) -> Iterator[FileServer]:
    (tmp_path / "big.bin").write_bytes(BODY)
    (tmp_path / "small.txt").write_bytes(b"hello")
    with FileServer(str(tmp_path)) as server:
        yield server


def test_without_faults_every_byte_passes_and_keep_alive_works(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy, httpx.Client(base_url=proxy.url) as client:
        for _ in range(3):
            assert client.get("/big.bin").content == BODY
        answer = client.get("/big.bin", headers={"Range": "bytes=10-19"})
        assert answer.status_code == 206 and answer.content == BODY[10:20]
        assert proxy.connections == 1 and proxy.requests == 4 and not proxy.faults  # one kept-alive connection
        assert upstream.requests["big.bin"] == 4


def test_reset_cuts_the_answer_with_a_rst_after_the_given_bytes(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy:
        proxy.inject("reset", cut_after=1000)
        sock = socket.create_connection(("127.0.0.1", proxy.port))
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        with pytest.raises(ConnectionResetError):
            while data := sock.recv(1 << 16):
                got += data
        assert len(got) == 1000 and got.startswith(b"HTTP/1.1 200")
        sock.close()
        with pytest.raises(httpx.TransportError):
            proxy.inject("reset", cut_after=0)
            httpx.get(proxy.url + "/small.txt")
        assert upstream.requests["small.txt"] == 1  # the server got the request; the client got nothing
        assert proxy.faults == {"reset": 2} and proxy.cuts == {"reset": 2}
        proxy.inject("truncate", cut_after=10_000)
        assert httpx.get(proxy.url + "/small.txt").content == b"hello"  # shorter than the cut: passes whole
        assert proxy.cuts == {"reset": 2}


def test_truncate_closes_cleanly_inside_the_body(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy:
        proxy.inject("truncate", cut_after=5000)
        with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", proxy.url + "/big.bin") as answer:
            assert answer.headers["content-length"] == str(len(BODY))
            answer.read()
        assert httpx.get(proxy.url + "/big.bin").content == BODY  # the next connection is clean


def test_stall_holds_the_answer(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy:
        proxy.inject("stall", stall_seconds=0.5)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(proxy.url + "/small.txt", timeout=httpx.Timeout(5, read=0.1))
        proxy.inject("stall", stall_seconds=0.3)
        start = time.monotonic()
        assert httpx.get(proxy.url + "/small.txt").content == b"hello"
        assert time.monotonic() - start >= 0.3  # a lower bound only: held at least that long


def test_slow_delivers_every_byte_in_small_pieces(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy:
        proxy.inject("slow", slow_chunk=20_000, slow_delay=0.02)
        start = time.monotonic()
        assert httpx.get(proxy.url + "/big.bin").content == BODY
        assert time.monotonic() - start >= 9 * 0.02  # >= 10 pieces, each followed by a pause


def test_status_answers_for_the_server_without_reaching_it(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy:
        proxy.inject("status", status=429, retry_after=3)
        proxy.inject("status", status=503)
        first, second = httpx.get(proxy.url + "/small.txt"), httpx.get(proxy.url + "/small.txt")
        assert (first.status_code, first.headers["retry-after"]) == (429, "3")
        assert (second.status_code, second.headers["retry-after"]) == (503, "1")
        assert "retry after" in first.json()["error"]
        assert upstream.total == 0


def test_upload_cuts_the_request_before_the_server_has_all_of_it(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy:
        proxy.inject("upload", cut_after=10)
        with pytest.raises(httpx.TransportError):
            httpx.get(proxy.url + "/small.txt")
        assert upstream.total == 0 and proxy.cuts == {"upload": 1}  # the server never saw a whole request
        proxy.inject("upload", cut_after=100_000)  # longer than the request: it passes whole
        assert httpx.get(proxy.url + "/small.txt").content == b"hello"
        assert proxy.cuts == {"upload": 1} and proxy.faults == {"upload": 2}


def test_queued_faults_wait_for_the_path_they_aim_at(upstream: FileServer) -> None:
    with FaultProxy(upstream.port) as proxy:
        proxy.inject("status", status=503, path="/big.bin")
        assert httpx.get(proxy.url + "/small.txt").status_code == 200
        assert proxy.pending() == 1
        assert httpx.get(proxy.url + "/big.bin").status_code == 503
        assert proxy.pending() == 0 and proxy.connections == 2


def test_a_random_plan_faults_about_its_share_of_connections(upstream: FileServer) -> None:
    plan = FaultPlan.uniform(0.5, seed=1, cut_after=0, stall_seconds=0.01, slow_delay=0)
    with FaultProxy(upstream.port, plan) as proxy:
        outcomes = []
        for _ in range(100):
            try:
                outcomes.append(httpx.get(proxy.url + "/small.txt").status_code)
            except httpx.TransportError:
                outcomes.append(0)
        assert proxy.connections == 100
        assert 30 <= sum(proxy.faults.values()) <= 70 and set(proxy.faults) <= set(FAULT_KINDS)
        assert outcomes.count(0) == proxy.faults["reset"] + proxy.faults["truncate"] + proxy.faults["upload"]
        assert outcomes.count(200) == 100 - outcomes.count(0) - proxy.faults["status"]


def test_bad_plans_and_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        ProxyFault("explode")
    with pytest.raises(ValueError, match="bad fault probabilities"):
        FaultPlan({"reset": 0.7, "stall": 0.7})
