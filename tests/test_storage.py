"""The storage layer on its own: local stores and atomic writes, the retry policy and how failures are
sorted, and range reads over real HTTP on 127.0.0.1 against servers that answer in every way a remote
store may (ranges honoured or ignored, several ranges as multipart or not, redirects, refusals, cuts)."""

from __future__ import annotations

import email.utils
import errno
import os
import random
import time

import pytest

from headwater.storage import (
    HttpStatusError,
    RetryPolicy,
    StorageError,
    Store,
    StoreAuthError,
    StoreNotFoundError,
    StoreUnavailableError,
    atomic_path,
    classify,
    is_temp_name,
    write_bytes_atomic,
)

from .support.httpserver import Fault

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
SHARD = "s.tar"


@pytest.fixture
def blob(tmp_path):
    """``(folder, data)``: 100,000 random bytes at ``folder/s.tar``."""
    data = random.Random(4).randbytes(100_000)
    (tmp_path / SHARD).write_bytes(data)
    return str(tmp_path), data


# -- local stores and atomic writes ------------------------------------------------------------------------
def test_store_reads_and_atomic_put(tmp_path):
    store = Store(str(tmp_path))
    store.put_bytes("x/y.bin", b"abcdef")
    assert store.read_range("x/y.bin", 1, 4) == b"bcd"
    assert store.stats.requests == 1 and store.stats.bytes_read == 3
    assert store.find(".bin") == ["x/y.bin"]
    with pytest.raises(FileNotFoundError):
        store.read_range("nope.bin", 0, 1)


def test_write_bytes_atomic_leaves_no_temp_file(tmp_path):
    target = tmp_path / "new" / "deep" / "f.bin"  # missing folders are created
    write_bytes_atomic(str(target), memoryview(b"abc"))
    write_bytes_atomic(str(target), b"replaced")
    assert target.read_bytes() == b"replaced"
    (tmp_path / "new" / "dir.bin").mkdir()
    with pytest.raises(OSError):  # the rename onto a directory fails: the temp file goes away
        write_bytes_atomic(str(tmp_path / "new" / "dir.bin"), b"x")
    assert not [n for n in os.listdir(tmp_path / "new") if is_temp_name(n)]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer died"), atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half of the new")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temp file left
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and is_temp_name(tmp)  # beside it: the rename is atomic
        with open(tmp, "wb") as f:
            f.write(b"new")
        assert target.read_bytes() == b"old"  # readers see the old file until the block ends
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.bin"]


# -- the retry policy --------------------------------------------------------------------------------------
def _status(code: int, headers: dict[str, str] | None = None) -> HttpStatusError:
    return HttpStatusError("http://127.0.0.1/x", code, "reason", headers or {})


@pytest.mark.parametrize(("err", "kind"), [
    (_status(401), "auth"), (_status(403), "auth"), (_status(404), "missing"), (_status(429), "retry"),
    (_status(500), "retry"), (_status(502), "retry"), (_status(503), "retry"), (_status(504), "retry"),
    (_status(599), "retry"), (_status(408), "retry"), (_status(400), "other"), (_status(416), "other"),
    (ConnectionResetError("reset by peer"), "retry"), (ConnectionRefusedError(), "retry"), (TimeoutError(), "retry"),
    (BrokenPipeError(), "retry"), (OSError(errno.ETIMEDOUT, "timed out"), "retry"),
    (OSError(errno.ENOSPC, "disk full"), "other"), (FileNotFoundError("gone"), "missing"),
    (StoreNotFoundError("gone"), "missing"), (PermissionError("denied"), "auth"), (StoreAuthError("no"), "auth"),
    (ValueError("a bug"), "other"),
], ids=lambda v: v if isinstance(v, str) else f"{type(v).__name__}{getattr(v, 'status', '')}")
def test_classify_sorts_failures(err, kind):
    assert classify(err) == kind


def test_retry_policy_honours_retry_after_seconds_and_http_dates():
    policy = RetryPolicy(attempts=3, base_delay=1.0, max_delay=60.0)
    assert policy.delay(0, _status(429, {"Retry-After": "7"})) == 7.0
    assert policy.delay(5, _status(503, {"retry-after": "0"})) == 0.0  # the hint wins over the backoff
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28.0 <= policy.delay(0, _status(503, {"Retry-After": soon})) <= 30.0
    past = email.utils.formatdate(time.time() - 300, usegmt=True)
    assert policy.delay(0, _status(503, {"Retry-After": past})) == 0.0
    assert RetryPolicy(max_delay=5.0).delay(0, _status(429, {"Retry-After": "120"})) == 5.0  # capped
    for attempt in range(4):  # no (or an unreadable) hint: exponential backoff with jitter, capped
        for err in (_status(503), _status(503, {"Retry-After": "soon"}), ConnectionResetError()):
            assert 0.5 * 2**attempt <= policy.delay(attempt, err) <= 2**attempt
    assert RetryPolicy(base_delay=1.0, max_delay=3.0).delay(10, ConnectionResetError()) <= 3.0


def test_a_retry_after_from_the_server_replaces_the_backoff(file_server, blob):
    root, data = blob
    server = file_server(root)
    server.inject(SHARD, Fault.status(503, {"Retry-After": "0.3"}))
    store = Store(server.url, retry=RetryPolicy(attempts=2, base_delay=20.0, max_delay=30.0))
    start = time.monotonic()
    assert store.read_range(SHARD, 10, 20) == data[10:20]
    assert 0.3 <= time.monotonic() - start < 5.0  # the backoff alone would wait 10-20 s
    assert store.stats.requests == 2 and store.stats.retries == 1


@pytest.mark.parametrize(("faults", "error", "requests"), [
    ([Fault.status(401)], StoreAuthError, 1),
    ([Fault.status(403)], StoreAuthError, 1),
    ([Fault.status(404)], StoreNotFoundError, 1),
    ([Fault.status(429, {"Retry-After": "0"})] * 4, StoreUnavailableError, 4),
    ([Fault.status(500)] * 4, StoreUnavailableError, 4),
    ([Fault.status(503)] * 4, StoreUnavailableError, 4),
    ([Fault.reset()] * 4, StoreUnavailableError, 4),
    ([Fault.truncate()] * 4, StoreUnavailableError, 4),
    ([Fault.status(400)], HttpStatusError, 1),  # neither transient nor auth nor missing: raised as it is
], ids=["401", "403", "404", "429", "500", "503", "reset", "truncate", "400"])
def test_http_failures_are_sorted_and_only_transient_ones_retried(file_server, blob, faults, error, requests):
    root, _data = blob
    server = file_server(root)
    server.inject(SHARD, *faults)
    store = Store(server.url, retry=FAST_RETRY)
    with pytest.raises(error) as info:
        store.read_range(SHARD, 0, 100)
    assert server.requests[SHARD] == requests == store.stats.requests
    assert isinstance(info.value, StorageError)  # a 400 too: every failure of a store is a StorageError
    with pytest.raises(StoreNotFoundError):  # a missing file: one request, no retry
        store.read_range("nope.tar", 0, 1)
    assert server.requests["nope.tar"] == 1


@pytest.mark.parametrize("fault", [Fault.status(429, {"Retry-After": "0"}), Fault.status(502), Fault.reset(),
                                   Fault.truncate(), Fault.short(), Fault.stall(0.2)],
                         ids=["429", "502", "reset", "truncate", "short", "stall"])
def test_a_transient_failure_is_retried_and_the_bytes_are_exact(file_server, blob, fault):
    root, data = blob
    server = file_server(root)
    server.inject(SHARD, fault)
    store = Store(server.url, retry=FAST_RETRY)
    assert store.read_range(SHARD, 1_000, 51_000) == data[1_000:51_000]
    retried = fault.kind != "stall"  # a late answer is still an answer
    assert store.stats.retries == int(retried) and server.requests[SHARD] == 1 + int(retried)
    assert store.stats.bytes_read == 50_000


# -- range reads over HTTP ---------------------------------------------------------------------------------
def test_http_range_reads_follow_redirects_and_drop_auth_across_hosts(file_server, blob, tmp_path):
    root, data = blob
    origin = file_server(root, token="s3cret")
    hop = file_server(tmp_path / "empty")  # another host (port): the token must not follow the redirect
    hop.inject(SHARD, Fault.redirect(f"{origin.url}/{SHARD}"))
    store = Store(hop.url, headers={"Authorization": "Bearer s3cret"}, retry=FAST_RETRY)
    with pytest.raises(PermissionError):  # StoreAuthError: the origin saw no token
        store.read_range(SHARD, 512, 1024)
    assert hop.seen[0].header("Authorization") == "Bearer s3cret"
    assert [r.header("Authorization") for r in origin.seen] == [None]

    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / SHARD).write_bytes(data)
    same = file_server(tmp_path, ignore_range=True)  # a path-only Location: the same host keeps the header
    same.inject(SHARD, Fault.redirect(f"/moved/{SHARD}", code=307))
    store = Store(same.url, headers={"Authorization": "Bearer s3cret"}, retry=FAST_RETRY)
    assert store.read_range(SHARD, 512, 1024) == data[512:1024]
    assert store.stats.requests == 1 and store.stats.retries == 0
    assert [(r.path, r.header("Authorization")) for r in same.seen] == [(SHARD, "Bearer s3cret"),
                                                                        (f"moved/{SHARD}", "Bearer s3cret")]


def test_http_range_reads_of_a_server_that_ignores_range(file_server, blob):
    root, data = blob
    server = file_server(root, ignore_range=True)
    store = Store(server.url, retry=FAST_RETRY)
    assert store.read_range(SHARD, 1_000, 51_000) == data[1_000:51_000]
    assert server.ranges == [(SHARD, "bytes=1000-50999")]


def test_http_range_reads_reopen_a_connection_the_server_dropped(file_server, blob):
    """A kept-alive connection the server closes is reopened once without a counted retry; a fresh
    connection that fails is a real failure, retried by the policy and counted."""
    root, data = blob
    server = file_server(root)
    store = Store(server.url, retry=FAST_RETRY)
    first = store.read_range(SHARD, 0, 512)  # opens this thread's connection
    server.inject(SHARD, Fault.reset())
    assert store.read_range(SHARD, 512, 1024) == data[512:1024]
    assert first == data[:512] and store.stats.requests == 2 and store.stats.retries == 0
    assert server.requests[SHARD] == 3  # the reset one was sent again on a new connection
    fresh = Store(server.url, retry=FAST_RETRY)
    server.inject(SHARD, Fault.reset())
    assert fresh.read_range(SHARD, 0, 10) == data[:10]
    assert fresh.stats.retries == 1


_SPANS = [(5_000, 5_100), (100, 200), (60_000, 61_000), (150, 180), (100, 200), (7, 7)]  # unsorted, overlapping, empty


def test_read_ranges_matches_parts_by_content_range_and_never_returns_wrong_bytes(file_server, blob):
    root, data = blob
    want = [data[a:b] for a, b in _SPANS]
    for mode in ("multipart", "reversed"):  # parts in the order asked, and last first
        server = file_server(root, multi_range=mode)
        store = Store(server.url, retry=FAST_RETRY)
        assert store.multi_range is None
        assert store.read_ranges(SHARD, _SPANS) == want
        assert store.multi_range is True and store.stats.requests == 1
        assert server.ranges == [(SHARD, "bytes=100-199,150-179,5000-5099,60000-60999")]  # ascending, no duplicate
        assert store.read_ranges(SHARD, _SPANS[:3]) == want[:3] and store.stats.requests == 2
    server = file_server(root, multi_range="coalesced")  # one part spanning every range: sliced, still one request
    store = Store(server.url, retry=FAST_RETRY)
    assert store.read_ranges(SHARD, _SPANS) == want and store.stats.requests == 1
    assert store.multi_range is True
    server = file_server(root, multi_range="first")  # only the first range honoured: the rest one by one, then always
    store = Store(server.url, retry=FAST_RETRY)
    assert store.read_ranges(SHARD, _SPANS) == want
    assert store.multi_range is False and store.stats.requests == 1 + 2
    assert store.read_ranges(SHARD, _SPANS[:3]) == want[:3] and store.stats.requests == 3 + 3
    assert all("," not in spec for _, spec in server.ranges[1:])
    server = file_server(root)  # parts of the wrong length: retried, then an error (no bytes)
    server.inject(SHARD, *[Fault.short()] * FAST_RETRY.attempts)
    store = Store(server.url, retry=FAST_RETRY)
    with pytest.raises(StoreUnavailableError, match="MalformedMultipart"):
        store.read_ranges(SHARD, _SPANS)
    assert store.stats.requests == FAST_RETRY.attempts and store.multi_range is None


def test_read_ranges_of_servers_without_multi_range(file_server, blob):
    root, data = blob
    server = file_server(root, ignore_range=True)  # 200 with the whole file, of which a prefix is read
    store = Store(server.url, retry=FAST_RETRY)
    assert store.read_ranges(SHARD, _SPANS) == [data[a:b] for a, b in _SPANS]
    assert store.multi_range is False and store.stats.requests == 1
    assert store.stats.bytes_read <= 61_000 + 1  # not the whole file
    server = file_server(root, multi_range="refuse")  # 400 to a multi-range header, then one range per GET
    store = Store(server.url, retry=FAST_RETRY)
    assert store.read_ranges(SHARD, [(0, 10), (600, 700)]) == [data[:10], data[600:700]]
    assert store.multi_range is False and store.stats.requests == 3 == server.total
    assert store.read_ranges(SHARD, [(0, 10), (600, 700)]) == [data[:10], data[600:700]]
    assert store.stats.requests == 5 == server.total
    local = Store(root)  # not HTTP: one read per range, never a multi-range request
    assert local.multi_range is False
    assert local.read_ranges(SHARD, [(600, 700), (0, 10)]) == [data[600:700], data[:10]] and local.stats.requests == 2


def test_a_file_shorter_than_the_ranges_says_nothing_about_multi_range_support(file_server, blob):
    """416 with ``Content-Range: bytes */size`` below the ranges asked: the file changed, the server may
    still answer several ranges; the next read finds out."""
    root, data = blob
    server = file_server(root)
    store = Store(server.url, retry=FAST_RETRY)
    with pytest.raises(OSError, match="416"):  # and then each range alone: still out of range
        store.read_ranges(SHARD, [(200_000, 200_010), (300_000, 300_010)])
    assert store.multi_range is None
    assert server.ranges[0] == (SHARD, "bytes=200000-200009,300000-300009")
    assert store.read_ranges(SHARD, [(0, 10), (90, 100)]) == [data[:10], data[90:100]]
    assert store.multi_range is True
