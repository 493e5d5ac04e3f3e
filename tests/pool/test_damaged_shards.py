"""Damaged pools read through the pool layer: a shard cut short in the middle of a member (on disk and
behind a real HTTP server on 127.0.0.1), a shard whose index cannot be read. Intact members are delivered,
each damaged one is named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from headwater.archive import MANIFEST_NAME, TruncatedTarError, pack_directory
from headwater.pool import InvalidResourceDataError, StorePool, TruncatedMemberError
from headwater.storage import RetryPolicy

from ..support.files import make_files
from ..support.httpserver import Fault

ATTEMPTS = 4
FAST_RETRY = RetryPolicy(attempts=ATTEMPTS, base_delay=0.01, max_delay=0.05)
SHARD = "shard-00000.tar"


def _cut_pool(tmp_path: Path, *, keep_manifest: bool = True) -> tuple[str, dict[int, bytes], list[str], str, int]:
    """A one-shard pool of 30 files cut in the middle of its 16th member (by offset).

    Returns ``(pool_dir, files, members in offset order, the cut member, the shard's new size)``.
    """
    files = make_files(str(tmp_path / "src"), list(range(1, 31)), seed=11, lo=600, hi=3000)
    pool_dir = str(tmp_path / "pool")
    pack_directory(str(tmp_path / "src"), pool_dir, silent=True)
    index = json.loads(Path(pool_dir, "shard-00000.json").read_text())["files"]
    order = sorted(index, key=lambda n: index[n]["offset"])
    cut = order[15]
    size = index[cut]["offset"] + index[cut]["size"] // 2
    os.truncate(os.path.join(pool_dir, SHARD), size)
    if not keep_manifest:
        os.unlink(os.path.join(pool_dir, MANIFEST_NAME))
    return pool_dir, files, order, cut, size


def _rid(name: str) -> int:
    return int(name.split(".")[0])


def _check_report(report, out: Path, files: dict[int, bytes], order: list[str], cut: str, size: int,
                  index: dict[str, dict[str, int]]) -> None:
    intact = [_rid(n) for n in order[:15]]
    damaged = [_rid(n) for n in order[15:]]
    assert sorted(report.downloaded) == sorted(intact)
    assert sorted(report.failed) == sorted(damaged)
    for rid in intact:
        assert (out / f"{rid}.bin").read_bytes() == files[rid]
    assert sorted(os.listdir(out)) == sorted(f"{rid}.bin" for rid in intact)  # nothing partial, no temp file
    reason = report.failed[_rid(cut)]
    got = size - index[cut]["offset"]
    assert reason.startswith("TruncatedMemberError: ")
    assert f"{SHARD}: member {cut!r} is truncated: got {got} of {index[cut]['size']} bytes" in reason
    assert f"shard ends at byte {size}" in reason
    after = order[16]
    assert f"member {after!r} is truncated: got 0 of {index[after]['size']} bytes" in report.failed[_rid(after)]


def _index(pool_dir: str) -> dict[str, dict[str, int]]:
    return json.loads(Path(pool_dir, "shard-00000.json").read_text())["files"]


def test_a_local_shard_cut_in_a_member_delivers_every_intact_member_at_once(tmp_path):
    """One merged read covers the whole shard; it comes back short. The 15 members before the cut are
    delivered, the cut one and those after it are named — without a single retry (a short read from a disk
    is a damaged file, not a flaky network)."""
    pool_dir, files, order, cut, size = _cut_pool(tmp_path)
    pool = StorePool(pool_dir, retry=FAST_RETRY)
    out = tmp_path / "out"
    report = pool.batch_download_to_directory(sorted(files), str(out), save_metainfo=False, silent=True)
    _check_report(report, out, files, order, cut, size, _index(pool_dir))
    assert report.retries == 0


@pytest.mark.parametrize("multi_range", ["multipart", "refuse", "ignore"])
def test_a_served_shard_cut_in_a_member_delivers_every_intact_member(tmp_path, file_server, multi_range):
    """The same over HTTP: the server clips the range at the shard's end (206 with ``Content-Range`` naming
    the smaller size), or sends the whole, shorter file (200). That is the file's size, not a cut
    connection: intact members are delivered and the answer is not asked again."""
    pool_dir, files, order, cut, size = _cut_pool(tmp_path)
    server = file_server(pool_dir, multi_range=multi_range, ignore_range=multi_range == "ignore")
    pool = StorePool(server.url, retry=FAST_RETRY)
    out = tmp_path / "out"
    report = pool.batch_download_to_directory(sorted(files), str(out), save_metainfo=False, silent=True)
    _check_report(report, out, files, order, cut, size, _index(pool_dir))
    assert report.retries == 0
    assert server.requests[SHARD] <= 3  # one merged read (plus a refused or re-planned multi-range one)


def test_mock_resource_of_a_cut_member_names_it_at_once_and_others_still_work(tmp_path):
    pool_dir, files, order, cut, _size = _cut_pool(tmp_path, keep_manifest=False)
    pool = StorePool(pool_dir, retry=FAST_RETRY)
    with pytest.raises(TruncatedMemberError, match=rf"{SHARD}: member '{cut}' is truncated") as info, \
            pool.mock_resource(_rid(cut), None):
        pass
    assert isinstance(info.value, InvalidResourceDataError) and isinstance(info.value, TruncatedTarError)
    assert pool.data_store.stats.retries == 0
    intact = _rid(order[14])
    with pool.mock_resource(intact, None) as (td, _):
        assert Path(td, f"{intact}.bin").read_bytes() == files[intact]


def test_one_shards_bad_index_fails_only_the_resources_of_that_shard(id_pool, tmp_path):
    """Without a manifest the indexes are fetched up front for the whole batch; one that is not an index
    fails the resources that would be in its shard, named, and every other resource is downloaded."""
    pool_dir, files = id_pool
    os.unlink(os.path.join(pool_dir, MANIFEST_NAME))
    Path(pool_dir, "images", "007.json").write_text('{"not": "an index"}')
    ids = sorted(files)[:400]
    bad = [rid for rid in ids if rid % 100 == 7]
    assert bad
    pool = StorePool(pool_dir, layout="increment-id", base_level=2, retry=FAST_RETRY)
    report = pool.batch_download_to_directory(ids, str(tmp_path / "out"), save_metainfo=False, silent=True)
    assert sorted(report.failed) == bad
    assert sorted(report.downloaded) == sorted(set(ids) - set(bad))
    for rid in bad:
        assert report.failed[rid].startswith("IndexFormatError: ") and "images/007.json: not a tar index" in \
            report.failed[rid]
    for rid in report.downloaded[:20]:
        assert (tmp_path / "out" / f"{rid}.bin").read_bytes() == files[rid]


def test_an_unreachable_index_is_asked_once_per_batch_not_once_per_resource(id_pool, file_server, tmp_path):
    pool_dir, files = id_pool
    os.unlink(os.path.join(pool_dir, MANIFEST_NAME))
    server = file_server(pool_dir)
    server.inject("images/007.json", *[Fault.status(503)] * ATTEMPTS)
    ids = sorted(files)[:400]
    bad = [rid for rid in ids if rid % 100 == 7]
    pool = StorePool(server.url, layout="increment-id", base_level=2, retry=FAST_RETRY)
    report = pool.batch_download_to_directory(ids, str(tmp_path / "out"), save_metainfo=False, silent=True)
    assert sorted(report.failed) == bad and len(report.downloaded) == len(ids) - len(bad)
    assert all("images/007.json" in reason and "StoreUnavailableError" in reason for reason in report.failed.values())
    assert server.requests["images/007.json"] == ATTEMPTS
    # the failure belonged to that batch: the next one asks again, and gets the index now
    again = pool.batch_download_to_directory(bad, str(tmp_path / "out"), save_metainfo=False, silent=True)
    assert sorted(again.downloaded) == bad and again.failed == {}
    for rid in bad:
        assert (tmp_path / "out" / f"{rid}.bin").read_bytes() == files[rid]


def test_with_the_scan_layout_a_bad_index_fails_only_ids_found_nowhere_else(tmp_path):
    """Any shard may hold an id: those found in a readable shard are delivered; the rest are failed with the
    unreadable index as the reason (they may be in that shard), not reported as missing."""
    files = make_files(str(tmp_path / "src"), list(range(1, 41)), seed=2, lo=500, hi=1500)
    pool_dir = str(tmp_path / "pool")
    shards = sorted(pack_directory(str(tmp_path / "src"), pool_dir, max_shard_size=16 << 10, silent=True).shards)
    assert len(shards) >= 3
    os.unlink(os.path.join(pool_dir, MANIFEST_NAME))
    bad = shards[1]
    lost = {_rid(n) for n in _index_of(pool_dir, bad)}
    Path(pool_dir, bad[:-4] + ".json").write_text("[]")
    pool = StorePool(pool_dir, retry=FAST_RETRY)
    report = pool.batch_download_to_directory([*files, 999], str(tmp_path / "out"), save_metainfo=False, silent=True)
    assert sorted(report.downloaded) == sorted(set(files) - lost)
    assert sorted(report.failed) == sorted(lost | {999}) and report.missing == []
    assert all(reason.startswith("IndexFormatError: ") and bad[:-4] + ".json" in reason
               for reason in report.failed.values())


def _index_of(pool_dir: str, shard: str) -> dict[str, dict[str, int]]:
    return json.loads(Path(pool_dir, shard[:-4] + ".json").read_text())["files"]


def test_a_hub_pool_served_by_headwater_with_a_cut_shard_delivers_every_intact_member(tmp_path):
    """The same through the Hub contract: ``headwater serve`` answers a range past the cut shard's end with
    206 clipped to its size (or 416); the Hub pool delivers the intact members and names the rest."""
    from headwater.pool import HfBasedDataPool
    from headwater.server import ServerConfig

    from ..support.servers import live_server

    pool_dir, files, order, cut, size = _cut_pool(tmp_path)
    config = ServerConfig(str(tmp_path / "catalog.sqlite"), pools={"acme/cut": pool_dir})
    with live_server(config, public_pools=True) as url:
        pool = HfBasedDataPool("acme/cut", endpoint=url)
        out = tmp_path / "out"
        report = pool.batch_download_to_directory(sorted(files), str(out), save_metainfo=False, silent=True)
    _check_report(report, out, files, order, cut, size, _index(pool_dir))
    assert report.retries == 0
