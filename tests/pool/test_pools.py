"""DataPool behaviour on real shards: locally and over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

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
    UnpinnedWarning,
)
from headwater.storage import RetryPolicy

from ..support.files import make_files
from ..support.httpserver import Fault

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def _read_dir(folder: str) -> dict[str, bytes]:
    return {name: Path(folder, name).read_bytes() for name in os.listdir(folder)}


def test_mock_resource_local(id_pool):
    pool_dir, files = id_pool
    pool = StorePool(pool_dir, layout="increment-id", base_level=2)
    rid = sorted(files)[10]
    with pool.mock_resource(rid, {"x": 1}) as (td, info):
        assert info == {"x": 1}
        assert _read_dir(td) == {f"{rid}.bin": files[rid]}
    assert not os.path.exists(td)
    with pytest.raises(ResourceNotFoundError), pool.mock_resource(999_999, None):
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
        assert (tmp_path / "o" / f"{rid}.bin").read_bytes() == files[rid]
    # 100 shards, each read in one GET (several ranges as one multipart answer): far fewer requests than 1,000 files.
    assert report.requests == server.total
    assert pool.data_store.multi_range is True
    tar_requests = [path for path, _ in server.ranges if path.endswith(".tar")]
    assert len(tar_requests) == len(set(tar_requests)) == len({rid % 100 for rid in ids}), server.requests
    # HEAD (cache key) + GET, and two bytes of it asked as two ranges while they came: does the server do
    # multi-range? (so that no shard read has to find out alone, before all the others)
    assert server.requests[MANIFEST_NAME] == 3
    assert (MANIFEST_NAME, "bytes=0-0,2-2") in server.ranges
    # A second pool object on this machine reuses the cached manifest: only the HEAD.
    StorePool(server.url, layout="increment-id", base_level=2).locate(ids[0])
    assert server.requests[MANIFEST_NAME] == 4


def test_http_request_budget_and_gap(id_pool, file_server, tmp_path):
    pool_dir, files = id_pool
    server = file_server(pool_dir, multi_range="refuse")  # merged single ranges: what the budget is about
    ids = sorted(files)[::7]
    policy = PlanPolicy(max_gap=0, whole_fraction=2.0, max_requests=None)
    pool = StorePool(server.url, layout="increment-id", base_level=2, plan=policy)
    pool.batch_download_to_directory(ids, str(tmp_path / "a"), silent=True)
    unmerged = server.total
    server.reset()
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
    server.inject(shard, Fault.status(429, {"Retry-After": "0"}), Fault.status(503), Fault.reset())
    pool = StorePool(server.url, layout="increment-id", base_level=2, retry=FAST_RETRY)
    report = pool.batch_download_to_directory([rid], str(tmp_path / "o"), silent=True)
    assert report.downloaded == [rid]
    assert report.retries >= 2  # 429 and 503 by us; aiohttp itself may re-send after the reset
    assert server.requests[shard] == 4


def test_http_persistent_failure_and_corruption_are_reported(served_pool, tmp_path):
    server, files = served_pool
    a, b, c = sorted(files)[:3]
    server.inject(f"images/0{a % 100:02d}.tar", *[Fault.status(500)] * 10)
    server.inject(f"images/0{b % 100:02d}.tar", Fault.corrupt())
    pool = StorePool(server.url, layout="increment-id", base_level=2, retry=FAST_RETRY)
    report = pool.batch_download_to_directory([a, b, c], str(tmp_path / "o"), silent=True)
    assert report.downloaded == [c]
    assert "4 attempts" in report.failed[a]
    assert "sha256" in report.failed[b]
    assert sorted(os.listdir(tmp_path / "o")) == [f"{c}.bin"]


def test_http_auth_failure_is_not_not_found(id_pool, file_server, tmp_path):
    pool_dir, files = id_pool
    server = file_server(pool_dir, token="s3cret")
    bad = StorePool(server.url, layout="increment-id", base_level=2, headers={"Authorization": "Bearer nope"})
    with pytest.raises(PoolAuthError, match="access refused"):
        bad.batch_download_to_directory(sorted(files)[:5], str(tmp_path / "o"), silent=True)
    good = StorePool(server.url, layout="increment-id", base_level=2, headers={"Authorization": "Bearer s3cret"})
    assert len(good.batch_download_to_directory(sorted(files)[:5], str(tmp_path / "o"), silent=True).downloaded) == 5


def test_hf_increment_id_pool_over_resolve_urls(id_pool, file_server, tmp_path, monkeypatch):
    pool_dir, files = id_pool
    hub = tmp_path / "hub" / "datasets" / "owner" / "repo" / "resolve"
    hub.mkdir(parents=True)
    shutil.copytree(pool_dir, hub / "main")
    server = file_server(tmp_path / "hub", token="tok")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    pool = IncrementIDDataPool("owner/repo", base_level=[2], hf_token="tok")
    ids = sorted(files)[:40]
    with pytest.warns(UnpinnedWarning, match="no Hub API revision route"):  # said, not silently None
        report = pool.batch_download_to_directory(ids, str(tmp_path / "o"), silent=True)
    assert sorted(report.downloaded) == ids
    # a static mirror has no Hub API: one revision lookup (404), then every read at the unpinned revision
    requests = server.requests
    assert requests.pop("api/datasets/owner/repo/revision/main") == 1
    assert all(p.startswith("datasets/owner/repo/resolve/main/") for p in requests)
    assert pool.data_commit is None and pool.idx_commit is None
    with pool.mock_resource(ids[3], None) as (td, _):
        assert _read_dir(td) == {f"{ids[3]}.bin": files[ids[3]]}
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PoolAuthError):
        pool = IncrementIDDataPool("owner/repo", base_level=2)
        pool.batch_download_to_directory(ids, str(tmp_path / "p"), silent=True)


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


def test_remote_manifest_never_reused_stale(file_server, tmp_path):
    """A re-packed pool behind a server that sends no ETag must not be read through an old manifest."""
    src, pool_dir = str(tmp_path / "src"), str(tmp_path / "pool")
    make_files(src, [1, 2, 3], seed=1)
    pack_directory(src, pool_dir, layout="increment-id", silent=True)
    server = file_server(pool_dir, versioned=False)
    first = StorePool(server.url, layout="increment-id")
    assert first.batch_download_to_directory([3], str(tmp_path / "a"), silent=True).downloaded == [3]
    files = make_files(src, [1, 2, 3], seed=2)  # new contents, new offsets
    pack_directory(src, str(tmp_path / "repacked"), layout="increment-id", silent=True)  # pack refuses a full pool
    shutil.copytree(tmp_path / "repacked", pool_dir, dirs_exist_ok=True)  # the same names, new bytes, in place
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


def test_batch_download_from_a_server_that_refuses_multi_range_keeps_the_budget(id_pool, file_server, tmp_path):
    """The one multi-range request (two bytes of the manifest, asked while the manifest comes) is refused
    (400): only it is wasted; the shards follow the single-range plan within the request budget, and the
    report counts every request."""
    pool_dir, files = id_pool
    server = file_server(pool_dir, multi_range="refuse")
    ids = sorted(files)[::7]
    pool = StorePool(server.url, layout="increment-id", base_level=2, plan=PlanPolicy(max_gap=0, whole_fraction=2.0,
                                                                                        max_requests=150))
    report = pool.batch_download_to_directory(ids, str(tmp_path / "o"), save_metainfo=False, silent=True)
    assert sorted(report.downloaded) == ids and report.requests == server.total
    for rid in ids:
        assert (tmp_path / "o" / f"{rid}.bin").read_bytes() == files[rid]
    tar_ranges = [spec for path, spec in server.ranges if path.endswith(".tar")]
    assert [path for path, spec in server.ranges if "," in (spec or "")] == [MANIFEST_NAME]
    assert pool.data_store.multi_range is False and len(tar_ranges) <= 150
