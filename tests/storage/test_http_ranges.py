"""Range reads over real HTTP on 127.0.0.1 against servers that answer in every way a remote store may
(ranges honoured or ignored, several ranges as multipart or not, redirects, refusals, cuts)."""

from __future__ import annotations

import pytest

from headwater.storage import (
    Store,
    StoreUnavailableError,
    TruncatedFileError,
)

from ..support.httpserver import Fault
from .conftest import FAST_RETRY, SHARD


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
    attempts = FAST_RETRY.attempts
    assert attempts is not None
    server.inject(SHARD, *[Fault.short()] * attempts)
    store = Store(server.url, retry=FAST_RETRY)
    with pytest.raises(StoreUnavailableError, match="MalformedMultipart"):
        store.read_ranges(SHARD, _SPANS)
    assert store.stats.requests == attempts and store.multi_range is None


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
    with pytest.raises(TruncatedFileError, match="ends at byte 100000"):  # then each range alone: 416 again
        store.read_ranges(SHARD, [(200_000, 200_010), (300_000, 300_010)])
    assert store.multi_range is None
    assert server.ranges[0] == (SHARD, "bytes=200000-200009,300000-300009")
    assert store.read_ranges(SHARD, [(0, 10), (90, 100)]) == [data[:10], data[90:100]]
    assert store.multi_range is True


@pytest.mark.parametrize("ignore_range", [False, True], ids=["206", "200"])
def test_a_file_that_ends_inside_the_range_is_a_truncated_file_not_a_cut_connection(file_server, blob, ignore_range):
    """The server clips the range at the file's end (206, ``Content-Range: bytes a-b/size``), answers 416
    ``bytes */size``, or sends the whole, shorter file (200): the file is shorter, asking again gives the
    same. One request each, no retry, and the bytes that exist come with the error."""
    root, data = blob
    server = file_server(root, ignore_range=ignore_range)
    store = Store(server.url, retry=FAST_RETRY)
    with pytest.raises(TruncatedFileError,
                       match=r"ends at byte 100000: asked bytes \[99000:101000\), got 1000") as info:
        store.read_range(SHARD, 99_000, 101_000)
    assert info.value.data == data[99_000:] and info.value.size == 100_000
    with pytest.raises(TruncatedFileError, match="got 0 of 10") as info:
        store.read_range(SHARD, 100_500, 100_510)
    assert info.value.data == b"" and info.value.size == 100_000
    assert store.stats.retries == 0 and server.requests[SHARD] == 2


def test_learn_multi_range_asks_once_for_two_bytes_and_never_raises(file_server, blob, tmp_path):
    """What a batch download asks in the background while the manifest comes: one request, no retry, the
    same verdict as a real multi-range read would give; a missing file or a failure leaves it unknown."""
    root, _data = blob
    for mode, verdict in (("multipart", True), ("reversed", True), ("coalesced", True), ("first", False),
                          ("ignore", False), ("refuse", False)):
        server = file_server(root, multi_range=mode)
        store = Store(server.url, retry=FAST_RETRY)
        assert store.learn_multi_range(SHARD) is verdict, mode
        assert store.stats.requests == 1 == server.total and server.ranges == [(SHARD, "bytes=0-0,2-2")], mode
        assert store.stats.bytes_read <= 3, mode  # a server sending the whole file: only its prefix is read
        assert store.learn_multi_range(SHARD) is verdict and server.total == 1, mode  # known: not asked again
    server = file_server(root)
    store = Store(server.url, retry=FAST_RETRY)
    assert store.learn_multi_range("nope.tar") is None and store.multi_range is None
    server.inject(SHARD, Fault.status(503, {"Retry-After": "0"}))
    assert store.learn_multi_range(SHARD) is None and server.total == 2 and store.stats.retries == 0
    assert store.learn_multi_range(SHARD) is True and server.total == 3
    assert Store(str(tmp_path)).learn_multi_range(SHARD) is False  # not HTTP: never a multi-range request
