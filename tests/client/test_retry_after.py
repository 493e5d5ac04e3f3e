"""headwater's HTTP clients — the datatap transport (calls and split streams) and the pool upload client —
honour a 429/503 ``Retry-After`` (seconds or an HTTP date) up to the remaining ``retry_for`` deadline, and
count it as a retry; tested against the tests' one HTTP server (tests/support/httpserver), which answers
the injected statuses and records when each request arrived. (The range reader of pools: tests/storage.)
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import time
from typing import Any

import pytest

from headwater.client import HttpTransport, RemoteUnavailableError, upload_pool
from headwater.storage import RetryPolicy

from ..support.httpserver import Fault, FileServer

# waits of at most 0.05 s of its own: a longer pause between two attempts can only be the server's Retry-After
PATIENT = RetryPolicy(attempts=50, base_delay=0.01, max_delay=0.05, deadline=20.0)
STREAM = "api/database/db/repository/acme/cats/uid-1/split/train/stream"
LINES = [json.dumps({"uid": f"d-{i}"}).encode() + b"\n" for i in range(500)]


def _gap(server: FileServer, path: str) -> float:
    """Seconds between the first two requests the server received for ``path``."""
    times = [r.at for r in server.seen if r.path == path]
    return times[1] - times[0]


def _hint(form: str) -> str:
    return "1" if form == "seconds" else email.utils.formatdate(time.time() + 2, usegmt=True)


@pytest.fixture
def served(tmp_path: Any, file_server: Any) -> FileServer:
    """A static server holding a JSON answer, a split stream and a pool listing at the API's paths."""
    root = tmp_path / "www"
    os.makedirs(root / os.path.dirname(STREAM))
    (root / STREAM).write_bytes(b"".join(LINES))
    os.makedirs(root / "api" / "datasets" / "acme")
    (root / "api" / "user").write_text(json.dumps({"uid": "u1", "username": "alice"}))
    server: FileServer = file_server(str(root))
    return server


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "date"])
def test_calls_and_streams_wait_as_long_as_retry_after_says(served: FileServer, status: int, form: str) -> None:
    transport = HttpTransport(served.url, retry=PATIENT)
    served.inject("api/user", Fault.status(status, {"Retry-After": _hint(form)}))
    assert transport.request_json("GET", "/api/user")["username"] == "alice"
    assert _gap(served, "api/user") >= 0.9 and transport.retried == 1
    served.inject(STREAM, Fault.status(status, {"Retry-After": _hint(form)}))
    blocks = transport.stream_blocks("db", "acme", "cats", "uid-1", "train", 0, 1)
    assert b"".join(blocks).splitlines(keepends=True) == LINES
    assert _gap(served, STREAM) >= 0.9 and transport.retried == 2


def test_retry_after_is_cut_to_the_remaining_deadline(served: FileServer) -> None:
    transport = HttpTransport(served.url, retry=PATIENT, retry_for=1.0)
    served.inject("api/user", Fault.status(503, {"Retry-After": "3600"}))
    assert transport.request_json("GET", "/api/user")["username"] == "alice"
    assert 0.9 <= _gap(served, "api/user") < 60  # tried again at the deadline, not in an hour
    served.inject(STREAM, *[Fault.status(429, {"Retry-After": "3600"})] * 3)
    with pytest.raises(RemoteUnavailableError, match=r"still failing after 2 attempts over 1\.\d s \(deadline 1 s\) "
                                                     r"\(0 droplets received\): HTTP 429"):
        b"".join(transport.stream_blocks("db", "acme", "cats", "uid-1", "train", 0, 1))


def test_the_upload_client_waits_as_long_as_retry_after_says(served: FileServer, tmp_path: Any) -> None:
    pool = tmp_path / "pool" / "images"
    os.makedirs(pool)
    (pool / "0001.tar").write_bytes(b"\0" * 10240)
    sha = hashlib.sha256(b"\0" * 10240).hexdigest()
    listing = os.path.join(served.root, "api", "datasets", "acme", "px")
    with open(listing, "w") as f:
        json.dump({"sha": "c0ffee", "siblings": [{"rfilename": "images/0001.tar", "lfs": {"sha256": sha}}]}, f)
    served.inject("api/datasets/acme/px", Fault.status(429, {"Retry-After": "1"}))
    transport = HttpTransport(served.url, "hw_key", retry=PATIENT)
    report = upload_pool(transport, "acme/px", str(tmp_path / "pool"))
    assert report.skipped == ["images/0001.tar"] and report.commit == "c0ffee"
    assert _gap(served, "api/datasets/acme/px") >= 0.9 and transport.retried == 1
