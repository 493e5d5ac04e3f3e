"""S3 pools through s3fs against a moto S3 server on 127.0.0.1 (s3fs's own test convention)."""

from __future__ import annotations

import os

import pytest

from ..support.s3 import moto_s3

s3fs = pytest.importorskip("s3fs")


@pytest.fixture
def s3_endpoint():
    with moto_s3() as endpoint:
        yield endpoint


def test_pool_on_s3(id_pool, s3_endpoint, tmp_path):
    from headwater.archive import rebuild_manifest, verify_pool
    from headwater.pool import StorePool
    from headwater.storage import open_store

    pool_dir, files = id_pool
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}, "use_listings_cache": False}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("pool-bucket")
    store = open_store("s3://pool-bucket/pool", storage_options=options)
    for folder, _dirs, names in os.walk(pool_dir):
        for name in names:
            local = os.path.join(folder, name)
            store.put_file(os.path.relpath(local, pool_dir), local)
    store.put_bytes("notes/readme.txt", b"written atomically by one PUT")
    assert store.read_range("notes/readme.txt", 0, 7) == b"written"
    assert verify_pool(store, silent=True).ok
    rebuild_manifest(store)  # built locally, uploaded in one PUT

    pool = StorePool(store, layout="increment-id", base_level=2)
    ids = sorted(files)[:60]
    report = pool.batch_download_to_directory(ids, str(tmp_path / "out"), silent=True)
    assert sorted(report.downloaded) == ids and not report.failed
    for rid in ids:
        assert (tmp_path / "out" / f"{rid}.bin").read_bytes() == files[rid]
    assert report.requests < len(ids)
