"""DataPool behaviour on real shards: locally and over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from headwater.archive import MANIFEST_NAME, pack_directory
from headwater.pool import (
    DataPool,
    IncrementIDDataPool,
    PlanPolicy,
    PoolAuthError,
    ResourceNotFoundError,
    StorePool,
    TableLayout,
)
from headwater.storage import RetryPolicy, Store

from .conftest import make_files
from .rangeserver import RangeServer

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def _read_dir(folder: str) -> dict[str, bytes]:
    return {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}


def test_mock_resource_local(id_pool):
    pool_dir, files = id_pool
    pool = StorePool(pool_dir, layout="increment-id", base_level=2)
    rid = sorted(files)[10]
    with pool.mock_resource(rid, {"x": 1}) as (td, info):
        assert info == {"x": 1}
        assert _read_dir(td) == {f"{rid}.bin": files[rid]}
    assert not os.path.exists(td)
    with pytest.raises(ResourceNotFoundError):
        with pool.mock_resource(999_999, None):
            pass


def test_batch_download_exact_metainfo_resume(id_pool, tmp_path):
    pool_dir, files = id_pool
    pool = StorePool(pool_dir, layout="increment-id", base_level=2)
    ids = sorted(files)[:300]
    out = str(tmp_path / "out")
    items = [(rid, {"id": rid}) for rid in ids] + [(10**9, {"id": "ghost"})]
    report = pool.batch_download_to_directory(items, out, max_downloads=123, silent=True)
    assert len(report.downloaded) == 123 and not report.failed
    got = _read_dir(out)
    assert len(got) == 2 * 123
    for rid in report.downloaded:
        assert got[f"{rid}.bin"] == files[rid]
        assert json.loads(got[f"{rid}_metainfo.json"]) == {"id": rid}
    # Resume: complete resources are skipped, the cap counts them, nothing is fetched again.
    again = pool.batch_download_to_directory(items, out, max_downloads=123, silent=True)
    assert sorted(again.skipped) == sorted(report.downloaded) and again.downloaded == []
    # A damaged local file is fetched again; then the rest, the unknown id reported as missing.
    victim = report.downloaded[0]
    with open(os.path.join(out, f"{victim}.bin"), "r+b") as f:
        f.write(b"\0\0\0")
    rest = pool.batch_download_to_directory(items, out, silent=True)
    assert victim in rest.downloaded
    assert rest.missing == [10**9]
    assert rest.delivered == 300
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_without_manifest_uses_indexes(id_pool, tmp_path):
    pool_dir, files = id_pool
    os.unlink(os.path.join(pool_dir, MANIFEST_NAME))
    pool = StorePool(pool_dir, layout="increment-id", base_level=2)
    ids = random.Random(3).sample(sorted(files), 50)
    report = pool.batch_download_to_directory(ids, str(tmp_path / "o"), silent=True)
    assert sorted(report.downloaded) == sorted(ids)
    scan = StorePool(pool_dir)  # scan layout: any shard, ids are file stems
    with scan.mock_resource(str(ids[0]), None) as (td, _):
        assert _read_dir(td) == {f"{ids[0]}.bin": files[ids[0]]}


def test_http_requests_are_coalesced(served_pool, tmp_path):
    server, files = served_pool
    ids = random.Random(5).sample(sorted(files), 1000)
    pool = StorePool(server.url, layout="increment-id", base_level=2)
    report = pool.batch_download_to_directory(ids, str(tmp_path / "o"), save_metainfo=False, silent=True)
    assert sorted(report.downloaded) == sorted(ids)
    for rid in ids:
        assert open(tmp_path / "o" / f"{rid}.bin", "rb").read() == files[rid]
    # 100 shards, most read as a few merged ranges: far fewer requests than 1,000 files.
    assert report.requests == server.total
    assert server.total <= 200, server.requests
    assert server.requests[MANIFEST_NAME] == 2  # HEAD (cache key) + GET
    # A second pool object on this machine reuses the cached manifest: only the HEAD.
    StorePool(server.url, layout="increment-id", base_level=2).locate(ids[0])
    assert server.requests[MANIFEST_NAME] == 3


def test_http_request_budget_and_gap(served_pool, tmp_path):
    server, files = served_pool
    ids = sorted(files)[::7]
    policy = PlanPolicy(max_gap=0, whole_fraction=2.0, max_requests=None)
    pool = StorePool(server.url, layout="increment-id", base_level=2, plan=policy)
    pool.batch_download_to_directory(ids, str(tmp_path / "a"), silent=True)
    unmerged = server.total
    server.reset_counts()
    budget = StorePool(server.url, layout="increment-id", base_level=2,
                       plan=PlanPolicy(max_gap=0, whole_fraction=2.0, max_requests=100))
    report = budget.batch_download_to_directory(ids, str(tmp_path / "b"), silent=True)
    assert len(report.downloaded) == len(ids)
    data_requests = sum(n for p, n in server.requests.items() if p.endswith(".tar"))
    assert data_requests <= 100 < unmerged


def test_http_retries_429_503_and_resets(served_pool, tmp_path):
    server, files = served_pool
    rid = sorted(files)[0]
    shard = f"images/0{rid % 100:02d}.tar"
    server.faults[shard] = [("status", 429, {"Retry-After": "0"}), ("status", 503, {}), ("reset",)]
    pool = StorePool(server.url, layout="increment-id", base_level=2, retry=FAST_RETRY)
    report = pool.batch_download_to_directory([rid], str(tmp_path / "o"), silent=True)
    assert report.downloaded == [rid]
    assert report.retries >= 2  # 429 and 503 by us; aiohttp itself may re-send after the reset
    assert server.requests[shard] == 4


def test_http_persistent_failure_and_corruption_are_reported(served_pool, tmp_path):
    server, files = served_pool
    a, b, c = sorted(files)[:3]
    server.faults[f"images/0{a % 100:02d}.tar"] = [("status", 500, {})] * 10
    server.faults[f"images/0{b % 100:02d}.tar"] = [("corrupt",)]
    pool = StorePool(server.url, layout="increment-id", base_level=2, retry=FAST_RETRY)
    report = pool.batch_download_to_directory([a, b, c], str(tmp_path / "o"), silent=True)
    assert report.downloaded == [c]
    assert "4 attempts" in report.failed[a]
    assert "sha256" in report.failed[b]
    assert sorted(os.listdir(tmp_path / "o")) == [f"{c}.bin"]


def test_http_auth_failure_is_not_not_found(id_pool, tmp_path):
    pool_dir, files = id_pool
    with RangeServer(pool_dir, token="s3cret") as server:
        bad = StorePool(server.url, layout="increment-id", base_level=2, headers={"Authorization": "Bearer nope"})
        with pytest.raises(PoolAuthError, match="access refused"):
            bad.batch_download_to_directory(sorted(files)[:5], str(tmp_path / "o"), silent=True)
        good = StorePool(server.url, layout="increment-id", base_level=2, headers={"Authorization": "Bearer s3cret"})
        assert len(good.batch_download_to_directory(sorted(files)[:5], str(tmp_path / "o"), silent=True).downloaded) == 5


def test_hf_increment_id_pool_over_resolve_urls(id_pool, tmp_path, monkeypatch):
    pool_dir, files = id_pool
    hub = tmp_path / "hub" / "datasets" / "owner" / "repo" / "resolve"
    hub.mkdir(parents=True)
    shutil.copytree(pool_dir, hub / "main")
    with RangeServer(str(tmp_path / "hub"), token="tok") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        pool = IncrementIDDataPool("owner/repo", base_level=[2], hf_token="tok")
        ids = sorted(files)[:40]
        report = pool.batch_download_to_directory(ids, str(tmp_path / "o"), silent=True)
        assert sorted(report.downloaded) == ids
        # a static mirror has no Hub API: one revision lookup (404), then every read at the unpinned revision
        assert server.requests.pop("api/datasets/owner/repo/revision/main") == 1
        assert all(p.startswith("datasets/owner/repo/resolve/main/") for p in server.requests)
        assert pool.data_commit is None and pool.idx_commit is None
        with pool.mock_resource(ids[3], None) as (td, _):
            assert _read_dir(td) == {f"{ids[3]}.bin": files[ids[3]]}
        monkeypatch.delenv("HF_TOKEN", raising=False)
        with pytest.raises(PoolAuthError):
            IncrementIDDataPool("owner/repo", base_level=2).batch_download_to_directory(ids, str(tmp_path / "p"), silent=True)


def test_table_layout_csv_and_parquet(tmp_path):
    files = make_files(str(tmp_path / "src" / "batch1"), [1, 2, 3], ext=".jpg")
    pack_directory(str(tmp_path / "src"), str(tmp_path / "pool"), silent=True)
    rows = [(rid, "shard-00000.tar", f"batch1/{rid}.jpg") for rid in (1, 2, 3)]
    (tmp_path / "t.csv").write_text("id,archive,filename\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [r[0] for r in rows], "archive": [r[1] for r in rows],
                             "filename": [r[2] for r in rows]}), str(tmp_path / "t.parquet"))
    for table in ("t.csv", "t.parquet"):
        pool = StorePool(str(tmp_path / "pool"), layout=TableLayout(str(tmp_path / table)))
        out = tmp_path / f"out-{table}"
        report = pool.batch_download_to_directory([1, 3, 7], str(out), silent=True)
        assert sorted(report.downloaded) == [1, 3] and report.missing == [7]
        assert _read_dir(str(out)) == {"1.jpg": files[1], "3.jpg": files[3]}


def test_generic_datapool_subclass_exact_cap(tmp_path):
    from contextlib import contextmanager

    class Numbers(DataPool):
        @contextmanager
        def mock_resource(self, resource_id, resource_info, silent=False):
            if resource_id % 5 == 0:
                raise ResourceNotFoundError(resource_id)
            folder = tmp_path / f"m{resource_id}"
            folder.mkdir()
            (folder / f"{resource_id}.txt").write_text(str(resource_id))
            yield str(folder), resource_info

    report = Numbers().batch_download_to_directory(((i, {"i": i}) for i in range(1, 100)), str(tmp_path / "o"),
                                                   max_workers=8, max_downloads=17, silent=True)
    assert len(report.downloaded) == 17
    assert len(os.listdir(tmp_path / "o")) == 34


def test_store_reads_and_atomic_put(tmp_path):
    store = Store(str(tmp_path))
    store.put_bytes("x/y.bin", b"abcdef")
    assert store.read_range("x/y.bin", 1, 4) == b"bcd"
    assert store.stats.requests == 1 and store.stats.bytes_read == 3
    assert store.find(".bin") == ["x/y.bin"]
    with pytest.raises(FileNotFoundError):
        store.read_range("nope.bin", 0, 1)


def test_remote_manifest_never_reused_stale(tmp_path):
    """A re-packed pool behind a server that sends no ETag must not be read through an old manifest."""
    src, pool_dir = str(tmp_path / "src"), str(tmp_path / "pool")
    make_files(src, [1, 2, 3], seed=1)
    pack_directory(src, pool_dir, layout="increment-id", silent=True)
    with RangeServer(pool_dir, versioned=False) as server:
        first = StorePool(server.url, layout="increment-id")
        assert first.batch_download_to_directory([3], str(tmp_path / "a"), silent=True).downloaded == [3]
        files = make_files(src, [1, 2, 3], seed=2)  # new contents, new offsets
        pack_directory(src, pool_dir, layout="increment-id", silent=True)
        second = StorePool(server.url, layout="increment-id")
        assert second.batch_download_to_directory([3], str(tmp_path / "b"), silent=True).downloaded == [3]
        assert (tmp_path / "b" / "3.bin").read_bytes() == files[3]
        StorePool(server.url, layout="increment-id").locate(3)  # same content again: no new cached copy
        cached = os.listdir(os.path.join(os.environ["HEADWATER_CACHE"], "manifests"))
        assert len([n for n in cached if n.endswith(".sqlite")]) == 2


def test_written_files_follow_the_umask(id_pool, tmp_path):
    pool_dir, files = id_pool
    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    out = tmp_path / "out"
    StorePool(pool_dir, layout="increment-id", base_level=2).batch_download_to_directory(
        [(sorted(files)[0], {"a": 1})], str(out), silent=True)
    shard = next(p for p in os.listdir(os.path.join(pool_dir, "images")) if p.endswith(".tar"))
    for path in [*out.iterdir(), os.path.join(pool_dir, "images", shard),
                 os.path.join(pool_dir, "images", shard[:-4] + ".json")]:
        assert os.stat(path).st_mode & 0o777 == expected, path


class _Redirector:
    """A real HTTP server on 127.0.0.1 that records each GET's headers and answers it with a redirect to
    ``target`` + path; with ``whole``, paths under ``/moved/`` (and every path when ``target`` is None) get
    ``whole`` with 200, ignoring ``Range``."""

    def __init__(self, target: str | None = "", whole: bytes | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.seen.append(dict(self.headers))
                if whole is not None and (target is None or self.path.startswith("/moved/")):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(whole)))
                    self.end_headers()
                    self.wfile.write(whole)
                    return
                self.send_response(302)
                self.send_header("Location", f"{target}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def test_http_range_reads_follow_redirects_and_drop_auth_across_hosts(id_pool):
    pool_dir, _files = id_pool
    shard = "images/000.tar"
    data = open(os.path.join(pool_dir, shard), "rb").read()
    with RangeServer(pool_dir, token="s3cret") as origin:
        hop = _Redirector(origin.url)  # another host (port): the token must not follow the redirect
        try:
            store = Store(hop.url, headers={"Authorization": "Bearer s3cret"}, retry=FAST_RETRY)
            with pytest.raises(PermissionError):  # StoreAuthError: the origin saw no token
                store.read_range(shard, 512, 1024)
            assert hop.seen[0]["Authorization"] == "Bearer s3cret"
        finally:
            hop.close()
    same = _Redirector("/moved", whole=data)  # a path-only Location: the same host keeps the header
    try:
        store = Store(same.url, headers={"Authorization": "Bearer s3cret"}, retry=FAST_RETRY)
        assert store.read_range(shard, 512, 1024) == data[512:1024]
        assert store.stats.requests == 1 and store.stats.retries == 0
        assert [h.get("Authorization") for h in same.seen] == ["Bearer s3cret"] * 2
    finally:
        same.close()


def test_http_range_reads_of_a_server_that_ignores_range(tmp_path):
    whole = random.Random(9).randbytes(100_000)
    server = _Redirector(None, whole=whole)
    try:
        store = Store(server.url, retry=FAST_RETRY)
        assert store.read_range("any.tar", 1_000, 51_000) == whole[1_000:51_000]
        assert server.seen[0]["Range"] == "bytes=1000-50999"
    finally:
        server.close()


def test_http_range_reads_reopen_a_connection_the_server_dropped(served_pool):
    """A kept-alive connection the server closes is reopened once without a counted retry; a fresh
    connection that fails is a real failure, retried by the policy and counted."""
    server, _files = served_pool
    shard = "images/001.tar"
    store = Store(server.url, retry=FAST_RETRY)
    first = store.read_range(shard, 0, 512)  # opens this thread's connection
    server.faults[shard] = [("reset",)]
    assert store.read_range(shard, 512, 1024) == open(os.path.join(server.root, shard), "rb").read()[512:1024]
    assert len(first) == 512 and store.stats.requests == 2 and store.stats.retries == 0
    fresh = Store(server.url, retry=FAST_RETRY)
    server.faults[shard] = [("reset",)]
    assert len(fresh.read_range(shard, 0, 10)) == 10
    assert fresh.stats.retries == 1


def test_write_bytes_atomic_leaves_no_temp_file(tmp_path):
    from headwater.storage import is_temp_name, write_bytes_atomic

    target = tmp_path / "new" / "deep" / "f.bin"  # missing folders are created
    write_bytes_atomic(str(target), memoryview(b"abc"))
    write_bytes_atomic(str(target), b"replaced")
    assert target.read_bytes() == b"replaced"
    (tmp_path / "new" / "dir.bin").mkdir()
    with pytest.raises(OSError):  # the rename onto a directory fails: the temp file goes away
        write_bytes_atomic(str(tmp_path / "new" / "dir.bin"), b"x")
    assert not [n for n in os.listdir(tmp_path / "new") if is_temp_name(n)]


# -- several ranges in one request ---------------------------------------------------------------------------
class _MultiRangeServer:
    """A real HTTP server on 127.0.0.1 serving ``data`` at every path, answering a multi-range GET the way
    ``mode`` says: ``"reversed"`` (multipart, parts last first), ``"first"`` (a plain 206 of the first
    range only), ``"coalesced"`` (one 206 spanning all ranges), ``"garbled"`` (a part one byte short)."""

    def __init__(self, data: bytes, mode: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.ranges: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                spec = self.headers["Range"]
                outer.ranges.append(spec)
                spans = [tuple(int(x) for x in one.split("-")) for one in spec[len("bytes="):].split(",")]
                if len(spans) == 1 or mode in ("first", "coalesced"):
                    a, b = (spans[0][0], spans[0][1]) if mode != "coalesced" else (spans[0][0], spans[-1][1])
                    self._answer(206, data[a:b + 1], {"Content-Range": f"bytes {a}-{b}/{len(data)}"})
                    return
                body = b""
                for a, b in (reversed(spans) if mode == "reversed" else spans):
                    part = data[a:b + 1] if mode != "garbled" else data[a:b]
                    body += (f"\r\n--XyZ\r\nContent-Type: application/x-tar\r\n"
                             f"Content-Range: bytes {a}-{b}/{len(data)}\r\n\r\n").encode() + part
                body += b"\r\n--XyZ--\r\n"
                self._answer(206, body, {"Content-Type": 'multipart/byteranges; boundary="XyZ"'})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


_SPANS = [(5_000, 5_100), (100, 200), (60_000, 61_000), (150, 180), (100, 200), (7, 7)]  # unsorted, overlapping, empty


def test_read_ranges_matches_parts_by_content_range_and_never_returns_wrong_bytes():
    data = random.Random(4).randbytes(100_000)
    want = [data[a:b] for a, b in _SPANS]
    server = _MultiRangeServer(data, "reversed")  # a preamble-less body, parts in another order, quoted boundary
    try:
        store = Store(server.url, retry=FAST_RETRY)
        assert store.multi_range is None
        assert store.read_ranges("s.tar", _SPANS) == want
        assert store.multi_range is True and store.stats.requests == 1
        assert server.ranges == ["bytes=100-199,150-179,5000-5099,60000-60999"]  # ascending, no duplicate
    finally:
        server.close()
    server = _MultiRangeServer(data, "coalesced")  # one part spanning every range: sliced, still one request
    try:
        store = Store(server.url, retry=FAST_RETRY)
        assert store.read_ranges("s.tar", _SPANS) == want and store.stats.requests == 1
    finally:
        server.close()
    server = _MultiRangeServer(data, "first")  # only the first range honoured: the rest one by one, after that always
    try:
        store = Store(server.url, retry=FAST_RETRY)
        assert store.read_ranges("s.tar", _SPANS) == want
        assert store.multi_range is False and store.stats.requests == 1 + 2
        assert store.read_ranges("s.tar", _SPANS[:3]) == want[:3] and store.stats.requests == 3 + 3
        assert all("," not in spec for spec in server.ranges[1:])
    finally:
        server.close()
    server = _MultiRangeServer(data, "garbled")  # a part of the wrong length: retried, then an error (no bytes)
    try:
        store = Store(server.url, retry=FAST_RETRY)
        with pytest.raises(OSError, match="MalformedMultipart"):  # StoreUnavailableError
            store.read_ranges("s.tar", _SPANS)
        assert store.stats.requests == FAST_RETRY.attempts
    finally:
        server.close()


def test_read_ranges_of_servers_without_multi_range(served_pool, tmp_path):
    whole = random.Random(9).randbytes(100_000)
    server = _Redirector(None, whole=whole)  # ignores Range: 200 with the whole file, of which a prefix is read
    try:
        store = Store(server.url, retry=FAST_RETRY)
        assert store.read_ranges("a.tar", _SPANS) == [whole[a:b] for a, b in _SPANS]
        assert store.multi_range is False and store.stats.requests == 1
        assert store.stats.bytes_read <= 61_000 + 1  # not the whole file
    finally:
        server.close()
    rangeserver, _files = served_pool  # answers a multi-range header with 400: refused, then one range per GET
    shard = "images/002.tar"
    data = open(os.path.join(rangeserver.root, shard), "rb").read()
    store = Store(rangeserver.url, retry=FAST_RETRY)
    rangeserver.reset_counts()
    assert store.read_ranges(shard, [(0, 10), (600, 700)]) == [data[:10], data[600:700]]
    assert store.multi_range is False and store.stats.requests == 3 == rangeserver.total
    assert store.read_ranges(shard, [(0, 10), (600, 700)]) == [data[:10], data[600:700]]
    assert store.stats.requests == 5 == rangeserver.total
    local = Store(rangeserver.root)  # not HTTP: one read per range, never a multi-range request
    assert local.multi_range is False
    assert local.read_ranges(shard, [(600, 700), (0, 10)]) == [data[600:700], data[:10]] and local.stats.requests == 2


def test_batch_download_from_a_server_that_refuses_multi_range_keeps_the_budget(served_pool, tmp_path):
    """The first multi-range request is refused (400): only it is wasted; the rest follow the
    single-range plan within the request budget, and the report counts every request."""
    server, files = served_pool
    ids = sorted(files)[::7]
    server.reset_counts()
    pool = StorePool(server.url, layout="increment-id", base_level=2, plan=PlanPolicy(max_gap=0, whole_fraction=2.0,
                                                                                        max_requests=150))
    report = pool.batch_download_to_directory(ids, str(tmp_path / "o"), save_metainfo=False, silent=True)
    assert sorted(report.downloaded) == ids and report.requests == server.total
    for rid in ids:
        assert open(tmp_path / "o" / f"{rid}.bin", "rb").read() == files[rid]
    tar_ranges = [spec for path, spec in server.ranges if path.endswith(".tar")]
    assert sum("," in (spec or "") for spec in tar_ranges) == 1 and len(tar_ranges) <= 150
