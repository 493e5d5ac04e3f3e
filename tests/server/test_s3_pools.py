"""A pool on S3 (s3fs against a moto server on 127.0.0.1) served by a live headwater server as a Hub
dataset repo: resolve with ranges, huggingface_hub and headwater's own Hub pool on top, uploads written
to the bucket (shard, index, manifest, commit record), and a client hanging up mid-stream."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from headwater.archive import pack_directory
from headwater.server.app import ServerConfig

from ..support.files import make_files
from ..support.s3 import moto_s3
from ..support.servers import live_server, make_user

s3fs = pytest.importorskip("s3fs")

REPO = "acme/s3"
BUCKET = "hub-bucket"


@pytest.fixture(scope="module")
def s3_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with moto_s3():  # AWS_ENDPOINT_URL: how a server process is pointed at S3
        root = str(tmp_path_factory.mktemp("s3hub"))
        ids = sorted(random.Random(11).sample(range(1, 10_000), 150))
        files = make_files(os.path.join(root, "src"), ids, seed=2)
        pool = os.path.join(root, "pool")
        pack_directory(os.path.join(root, "src"), pool, layout="increment-id", base_level=1, silent=True)
        with open(os.path.join(pool, "big.bin"), "wb") as f:
            f.write(random.Random(2).randbytes(20 << 20))  # several 8 MiB remote chunks
        fs = s3fs.S3FileSystem(use_listings_cache=False)
        fs.mkdir(BUCKET)
        fs.put(pool + "/", f"{BUCKET}/pool/", recursive=True)
        config = ServerConfig(os.path.join(root, "catalog.sqlite"), pools={REPO: f"s3://{BUCKET}/pool"},
                              max_upload_bytes=1 << 20)
        with live_server(config, handle=True, public_pools=True, pool_owner="alice") as server:
            key = make_user(server.app.state.catalog, "alice", permission="write")
            yield {"url": server.url, "pool": pool, "files": files, "fs": fs, "key": key, "server": server}


def test_resolve_from_s3_with_ranges(s3_hub: dict[str, Any], tmp_path) -> None:
    import json

    url, pool = s3_hub["url"], s3_hub["pool"]
    shard = "images/03.tar"
    data = Path(pool, shard).read_bytes()
    index = json.loads(Path(pool, "images/03.json").read_bytes())
    base = f"{url}/datasets/{REPO}/resolve/main/{shard}"
    head = httpx.head(base)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    assert head.headers["etag"] == f'"{index["hash_lfs"]}"' and len(head.headers["x-repo-commit"]) == 40
    assert httpx.get(base).content == data
    for name, entry in list(index["files"].items())[:5]:
        a, b = entry["offset"], entry["offset"] + entry["size"] - 1
        r = httpx.get(base, headers={"Range": f"bytes={a}-{b}"})
        assert r.status_code == 206 and r.headers["content-range"] == f"bytes {a}-{b}/{len(data)}"
        assert hashlib.sha256(r.content).hexdigest() == entry["sha256"], name
    assert httpx.get(base, headers={"Range": "bytes=-100"}).content == data[-100:]
    r = httpx.get(base, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
    big = Path(pool, "big.bin").read_bytes()
    r = httpx.get(f"{url}/datasets/{REPO}/resolve/main/big.bin", headers={"Range": "bytes=1000-17000000"})
    assert r.status_code == 206 and r.content == big[1000:17_000_001]

    from huggingface_hub import hf_hub_download

    from headwater.pool import IncrementIDDataPool

    path = hf_hub_download(REPO, "images/03.json", repo_type="dataset", endpoint=url, token=False,
                           cache_dir=str(tmp_path / "hf"))
    assert json.loads(Path(path).read_bytes()) == index
    ids = sorted(s3_hub["files"])[:40]
    report = IncrementIDDataPool(REPO, base_level=1, endpoint=url).batch_download_to_directory(
        ids, str(tmp_path / "out"), silent=True)
    assert sorted(report.downloaded) == ids and not report.failed
    for rid in ids:
        assert (tmp_path / "out" / f"{rid}.bin").read_bytes() == s3_hub["files"][rid]


def test_hang_up_mid_stream_from_s3(s3_hub: dict[str, Any]) -> None:
    parts = urlsplit(s3_hub["url"])
    for _ in range(5):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        sock.sendall(f"GET /datasets/{REPO}/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(65536)
        sock.close()
    r = httpx.get(f"{s3_hub['url']}/datasets/{REPO}/resolve/main/images/03.json")
    assert r.status_code == 200 and httpx.get(s3_hub["url"] + "/healthz").json() == {"ok": True}


def test_upload_into_an_s3_pool(s3_hub: dict[str, Any]) -> None:
    url, fs = s3_hub["url"], s3_hub["fs"]
    before = httpx.get(f"{url}/api/datasets/{REPO}").json()["sha"]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for rid in (90_007, 90_017):
            info = tarfile.TarInfo(f"{rid}.bin")
            payload = str(rid).encode() * 10
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    r = httpx.put(f"{url}/api/pools/{REPO}/files/images/07.tar", content=raw.getvalue(),
                  headers={"Authorization": f"Bearer {s3_hub['key']}"})
    assert r.status_code == 409 and "replace=true" in r.json()["error"]  # another shard is there
    r = httpx.put(f"{url}/api/pools/{REPO}/files/images/07.tar", content=raw.getvalue(),
                  headers={"Authorization": f"Bearer {s3_hub['key']}"}, params={"replace": "true"})
    assert r.status_code == 201, r.text
    commit = r.json()["commit"]
    assert commit != before and httpx.get(f"{url}/api/datasets/{REPO}").json()["sha"] == commit
    assert fs.cat(f"{BUCKET}/pool/images/07.tar") == raw.getvalue()
    assert b"90017.bin" in fs.cat(f"{BUCKET}/pool/images/07.json")
    assert fs.exists(f"{BUCKET}/pool/.headwater/commits/{commit}.json.gz")
    from headwater.pool import IncrementIDDataPool

    pool = IncrementIDDataPool(REPO, base_level=1, endpoint=url)  # resolves through the rebuilt manifest
    with pool.mock_resource(90_017, None) as (folder, _):
        assert Path(folder, "90017.bin").read_bytes() == b"90017" * 10
    r = httpx.get(f"{url}/datasets/{REPO}/resolve/{before}/images/03.tar")  # unchanged since the old commit
    assert r.status_code == 200 and r.headers["x-repo-commit"] == before
