"""Two ``headwater serve`` processes uploading into one pool at once: the manifest lists every upload.

Each upload edits the pool manifest (read, change, rename into place). Without a lock shared by the
processes, two edits that overlap lose one of them: the manifest then lacks a shard the pool holds, and
lookups by id miss it until the next ``headwater index``. The same on S3 (moto server): there the write
is conditional on the ETag that was read.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from headwater.archive import TarIndex, encode_index, index_path_for, index_stream
from headwater.archive.manifest import MANIFEST_NAME, Manifest, rebuild_manifest, update_manifest, write_manifest
from headwater.catalog import Catalog
from headwater.server.app import ServerConfig
from headwater.storage import open_store

from ..support.files import tar_bytes
from ..support.s3 import moto_s3
from ..support.servers import bearer, live_server, make_user, serve_process, share_pools

REPO = "acme/px"
UPLOADS = 48


def _shards(count: int) -> dict[str, bytes]:
    return {f"images/{i:04d}.tar": tar_bytes({f"{i}.txt": f"member {i}".encode() * 50}) for i in range(count)}


def _upload_all(urls: list[str], key: str, shards: dict[str, bytes]) -> list[int]:
    headers = bearer(key, raw=True)

    def put(item: tuple[int, tuple[str, bytes]]) -> int:
        n, (path, data) = item
        with httpx.Client(timeout=120) as client:
            r = client.put(f"{urls[n % len(urls)]}/api/pools/{REPO}/files/{path}", content=data, headers=headers)
        assert r.status_code == 201, r.text
        return r.status_code

    with ThreadPoolExecutor(12) as pool:
        return list(pool.map(put, enumerate(shards.items())))


def test_two_server_processes_uploading_at_once_leave_every_shard_in_the_manifest(tmp_path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    catalog = str(tmp_path / "catalog.sqlite")
    key = make_user(catalog, "alice", permission="write")
    with Catalog(catalog) as cat:
        share_pools(cat, [REPO], owner="alice", public=True)
    shards = _shards(UPLOADS)
    with serve_process(catalog, "--pool", f"{REPO}={pool}", "--workers", "1") as a, \
            serve_process(catalog, "--pool", f"{REPO}={pool}") as b:
        _upload_all([a.url, b.url], key, shards)
    with Manifest(str(pool / MANIFEST_NAME)) as manifest:
        listed = [s.path for s in manifest.shards()]
        assert listed == sorted(shards), f"missing from the manifest: {sorted(set(shards) - set(listed))}"
        assert len(manifest) == UPLOADS
    assert not any(name.endswith(".tmp") for _dir, _sub, files in os.walk(pool) for name in files)


def test_uploading_the_same_shard_again_repairs_a_manifest_left_behind(tmp_path) -> None:
    """An upload whose manifest update did not happen (a crash after the rename, a 503 on S3) is sent again
    with the same bytes: the shard is kept as it is, and the manifest gets its rows."""
    pool = tmp_path / "pool"
    pool.mkdir()
    catalog = str(tmp_path / "catalog.sqlite")
    key = make_user(catalog, "alice", permission="write")
    (path, data), = _shards(1).items()
    with live_server(ServerConfig(catalog, pools={REPO: str(pool)}), public_pools=True, pool_owner="alice") as url:
        put = f"{url}/api/pools/{REPO}/files/{path}"
        assert httpx.put(put, content=data, headers=bearer(key, raw=True)).status_code == 201
        write_manifest(str(pool / MANIFEST_NAME), [])  # the manifest as the interrupted upload left it
        assert httpx.put(put, content=data, headers=bearer(key, raw=True)).status_code == 201
    with Manifest(str(pool / MANIFEST_NAME)) as manifest:
        assert [s.path for s in manifest.shards()] == [path]


def test_concurrent_manifest_updates_on_s3_are_all_kept(tmp_path) -> None:
    """Writers without a shared lock (threads standing for server processes, each with its own store):
    the conditional PUT makes the losers of each race re-read and re-apply."""
    s3fs = pytest.importorskip("s3fs")
    with moto_s3():
        s3fs.S3FileSystem(use_listings_cache=False).mkdir("races")
        shards = _shards(24)
        setup = open_store("s3://races/pool")
        setup.put_bytes("README.md", b"a pool")
        rebuild_manifest(setup)  # an empty manifest: every update below edits it
        indexes: dict[str, TarIndex] = {}
        for path, data in shards.items():  # what an upload does before it updates the manifest
            indexes[path] = index_stream(io.BytesIO(data), len(data))
            setup.put_bytes(path, data)
            setup.put_bytes(index_path_for(path), encode_index(indexes[path]))

        def update(path: str) -> None:
            update_manifest(open_store("s3://races/pool"), put={path: indexes[path]})

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(update, shards))
        local = tmp_path / MANIFEST_NAME
        local.write_bytes(open_store("s3://races/pool").read_bytes(MANIFEST_NAME))
        with Manifest(str(local)) as manifest:
            assert [s.path for s in manifest.shards()] == sorted(shards)
