"""Pools served as Hugging Face dataset repos by a live server on 127.0.0.1: the resolve route (ranges,
headers, errors), the repo/tree/paths-info API through the real ``huggingface_hub`` (``hf_hub_download``,
``HfApi``, ``HfFileSystem``) and ``hfutils`` (in a subprocess with ``HF_ENDPOINT``), headwater's own Hub
pools, the commit model, uploads, access rules, path traversal and clients that hang up mid-download."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pytest

from headwater.archive import pack_directory
from headwater.server.app import ServerConfig

from ..support.files import make_files, tar_bytes
from ..support.servers import BackgroundServer, bearer, live_server, make_user

REPO = "acme/pool"

# every Hub client in a subprocess: only 127.0.0.1 is reachable (anything else goes to a dead proxy)
_LOCAL_ONLY = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "",
               "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
               "HF_TOKEN": "", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@dataclass
class Hub:
    url: str
    pool: str
    up: str
    files: dict[int, bytes]
    server: BackgroundServer
    write_key: str
    read_key: str

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)

    def pool_of(self, repo: str = REPO) -> Any:
        return self.server.app.state.pools.get(repo)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = str(tmp_path_factory.mktemp("hub"))
    ids = sorted(random.Random(3).sample(range(1, 20_000), 400))
    files = make_files(os.path.join(root, "src"), ids, seed=5)
    pool = os.path.join(root, "pool")
    pack_directory(os.path.join(root, "src"), pool, layout="increment-id", base_level=2, silent=True)
    with open(os.path.join(pool, "big.bin"), "wb") as f:  # for hang-up tests
        f.write(random.Random(1).randbytes(24 << 20))
    secret = os.path.join(root, "secret.txt")
    with open(secret, "w") as f:
        f.write("root:x:0:0 secret outside the pool\n")
    os.symlink(secret, os.path.join(pool, "evil.json"))  # a symlink out of the pool: never served
    up = os.path.join(root, "up")
    os.makedirs(up)
    config = ServerConfig(os.path.join(root, "catalog.sqlite"), pools={REPO: pool, "acme/up": up},
                          max_upload_bytes=256 << 10)
    with live_server(config, handle=True, public_pools=True, pool_owner="alice") as server:
        catalog = server.app.state.catalog
        yield Hub(server.url, pool, up, files, server, make_user(catalog, "alice", permission="write"),
                  make_user(catalog, "bob"))


def _index(hub: Hub, shard: str = "images/034.tar") -> dict[str, Any]:
    with open(os.path.join(hub.pool, shard[:-4] + ".json"), "rb") as f:
        return json.loads(f.read())


# -- resolve ------------------------------------------------------------------------------------------------
def test_resolve_headers_and_single_ranges(hub: Hub) -> None:
    shard = "images/034.tar"
    data = Path(hub.pool, shard).read_bytes()
    index = _index(hub, shard)
    size = len(data)
    base = f"/datasets/{REPO}/resolve/main/{shard}"

    head = httpx.head(hub.url + base)
    assert head.status_code == 200 and head.content == b""
    h = head.headers
    assert h["accept-ranges"] == "bytes" and int(h["content-length"]) == size == int(h["x-linked-size"])
    assert h["etag"] == f'"{index["hash_lfs"]}"' == h["x-linked-etag"]  # LFS-style: the sha256
    assert len(h["x-repo-commit"]) == 40 and int(h["x-repo-commit"], 16) >= 0

    full = hub.get(base)
    assert full.status_code == 200 and full.content == data and full.headers["etag"] == h["etag"]

    entry = next(iter(index["files"].values()))
    a, b = entry["offset"], entry["offset"] + entry["size"] - 1
    part = hub.get(base, headers={"Range": f"bytes={a}-{b}"})
    assert part.status_code == 206 and part.content == data[a:b + 1]
    assert part.headers["content-range"] == f"bytes {a}-{b}/{size}" and int(part.headers["content-length"]) == b - a + 1
    assert hashlib.sha256(part.content).hexdigest() == entry["sha256"]
    for spec, want in [(f"bytes={size - 10}-", data[-10:]), ("bytes=-7", data[-7:]), ("bytes=0-0", data[:1]),
                       (f"bytes={size - 3}-{size + 1000}", data[-3:]), (f"bytes=-{size + 5}", data)]:
        r = hub.get(base, headers={"Range": spec})
        assert r.status_code == 206 and r.content == want, spec
    head_part = httpx.head(hub.url + base, headers={"Range": "bytes=10-19"})
    assert head_part.status_code == 206 and head_part.headers["content-length"] == "10" and head_part.content == b""

    for spec in [f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"]:
        r = hub.get(base, headers={"Range": spec})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}", spec
        assert "error" in r.json()
    many = httpx.head(hub.url + base, headers={"Range": "bytes=0-1,10-20"})  # HEAD: several ranges ignored
    assert many.status_code == 200 and int(many.headers["content-length"]) == size  # (GET: multipart, below)
    for spec in ["items=0-1", "bytes=abc", "bytes=5-1", "bytes=", "bytes=1-2-3", "bytes=--1"]:
        r = hub.get(base, headers={"Range": spec})
        assert r.status_code == 400 and "malformed Range header" in r.json()["error"], spec

    js = hub.get(f"/datasets/{REPO}/resolve/main/images/034.json")
    raw = Path(hub.pool, "images/034.json").read_bytes()
    assert js.content == raw and "x-linked-etag" not in js.headers
    blob_id = hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()  # git's id of the file
    assert js.headers["etag"] == f'"{blob_id}"'


def _multipart(r: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/byteranges response, split independently of headwater's client parser."""
    kind, _, param = r.headers["content-type"].partition(";")
    assert kind == "multipart/byteranges" and param.strip().startswith("boundary="), r.headers["content-type"]
    boundary = param.strip()[len("boundary="):].encode()
    body = r.content
    assert int(r.headers["content-length"]) == len(body)
    assert body.startswith(b"--" + boundary + b"\r\n") and body.endswith(b"\r\n--" + boundary + b"--\r\n")
    chunks = body[len(boundary) + 4 : -(len(boundary) + 8)].split(b"\r\n--" + boundary + b"\r\n")
    parts = []
    for chunk in chunks:
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, data))
    return parts


def test_several_ranges_answer_multipart_byteranges(hub: Hub) -> None:
    shard = "images/034.tar"
    data = Path(hub.pool, shard).read_bytes()
    size = len(data)
    base = f"/datasets/{REPO}/resolve/main/{shard}"
    entries = sorted(_index(hub, shard)["files"].values(), key=lambda e: e["offset"])[::3]
    spec = ",".join(f"{e['offset']}-{e['offset'] + e['size'] - 1}" for e in entries)
    r = hub.get(base, headers={"Range": f"bytes={spec}"})
    assert r.status_code == 206 and "content-range" not in r.headers and len(r.headers["x-repo-commit"]) == 40
    parts = _multipart(r)
    assert len(parts) == len(entries)
    for (headers, body), e in zip(parts, entries, strict=True):  # every member exact, in the order asked
        assert headers["content-range"] == f"bytes {e['offset']}-{e['offset'] + e['size'] - 1}/{size}"
        assert headers["content-type"] == "application/x-tar"
        assert body == data[e["offset"]:e["offset"] + e["size"]]
        assert hashlib.sha256(body).hexdigest() == e["sha256"]

    # boundaries: first byte, last byte, suffix, open end, an end past the file (clamped)
    r = hub.get(base, headers={"Range": f"bytes=0-0,100-199,{size - 1}-{size + 50}"})
    assert [(h["content-range"], b) for h, b in _multipart(r)] == [
        (f"bytes 0-0/{size}", data[:1]), (f"bytes 100-199/{size}", data[100:200]),
        (f"bytes {size - 1}-{size - 1}/{size}", data[-1:])]
    r = hub.get(base, headers={"Range": "bytes=0-9, -5"})  # whitespace after the comma is allowed
    assert [b for _, b in _multipart(r)] == [data[:10], data[-5:]]
    r = hub.get(base, headers={"Range": f"bytes=10-19,{size - 8}-"})
    assert [b for _, b in _multipart(r)] == [data[10:20], data[-8:]]

    # unsatisfiable ranges are dropped; one satisfiable range left → a plain 206; none → 416
    r = hub.get(base, headers={"Range": f"bytes=0-9,{size}-,{size + 5}-{size + 9},30-39"})
    assert [(h["content-range"], b) for h, b in _multipart(r)] == [
        (f"bytes 0-9/{size}", data[:10]), (f"bytes 30-39/{size}", data[30:40])]
    r = hub.get(base, headers={"Range": f"bytes={size}-,5-9,-0"})
    assert r.status_code == 206 and r.content == data[5:10] and r.headers["content-range"] == f"bytes 5-9/{size}"
    r = hub.get(base, headers={"Range": f"bytes={size}-,-0,{size + 1}-{size + 2}"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    for bad in ["bytes=0-1,abc", "bytes=0-1,5-2", "bytes=0-1,", "bytes=0-1,,4-5"]:
        assert hub.get(base, headers={"Range": bad}).status_code == 400, bad

    # overlapping, touching or unsorted ranges are coalesced and sorted: no byte is sent twice
    r = hub.get(base, headers={"Range": "bytes=500-599,0-99,50-149,150-199,520-530"})
    assert [(h["content-range"], b) for h, b in _multipart(r)] == [
        (f"bytes 0-199/{size}", data[:200]), (f"bytes 500-599/{size}", data[500:600])]
    r = hub.get(base, headers={"Range": "bytes=0-99,0-99,10-20"})
    assert r.status_code == 206 and r.content == data[:100] and r.headers["content-range"] == f"bytes 0-99/{size}"

    # at most MAX_RANGES ranges; more → the whole file (RFC 9110 lets a server ignore Range)
    from headwater.server.range_responses import MAX_RANGES
    many = [(i * 10, i * 10 + 4) for i in range(MAX_RANGES + 1)]
    r = hub.get(base, headers={"Range": "bytes=" + ",".join(f"{a}-{b}" for a, b in many[:MAX_RANGES])})
    parts = _multipart(r)
    assert len(parts) == MAX_RANGES
    assert all(b == data[a:a + 5] for (_, b), (a, _) in zip(parts, many[:MAX_RANGES], strict=True))
    r = hub.get(base, headers={"Range": "bytes=" + ",".join(f"{a}-{b}" for a, b in many)})
    assert r.status_code == 200 and r.content == data and "content-range" not in r.headers


def test_multipart_bodies_larger_than_one_read_are_streamed_exactly(hub: Hub) -> None:
    """Parts above SMALL_BODY in all are streamed part by part, several chunks each; bytes exact."""
    from headwater.server.range_responses import CHUNK, SMALL_BODY
    big = Path(hub.pool, "big.bin").read_bytes()
    spans = [(7, 7 + CHUNK + 3), (CHUNK * 2, CHUNK * 2 + SMALL_BODY), (len(big) - 1000, len(big) - 1)]
    spec = ",".join(f"{a}-{b - 1}" for a, b in spans)
    r = hub.get(f"/datasets/{REPO}/resolve/main/big.bin", headers={"Range": f"bytes={spec}"})
    assert r.status_code == 206
    parts = _multipart(r)
    assert [h["content-range"] for h, _ in parts] == [f"bytes {a}-{b - 1}/{len(big)}" for a, b in spans]
    assert [b for _, b in parts] == [big[a:b] for a, b in spans]


def test_store_reads_several_ranges_in_one_request_from_the_server(hub: Hub) -> None:
    from headwater.storage import Store

    shard = "images/034.tar"
    data = Path(hub.pool, shard).read_bytes()
    entries = sorted(_index(hub, shard)["files"].values(), key=lambda e: -e["offset"])  # descending
    spans = [(e["offset"], e["offset"] + e["size"]) for e in entries] + [(0, 512), (0, 512), (3, 3)]
    store = Store(hub.url + f"/datasets/{REPO}/resolve/main")
    assert store.read_ranges(shard, spans) == [data[a:b] for a, b in spans]
    assert store.multi_range is True and store.stats.requests == 1
    assert store.stats.bytes_read == sum(b - a for a, b in set(spans))  # the parts only, no gap between them
    assert store.read_ranges(shard, spans[:2]) == [data[a:b] for a, b in spans[:2]] and store.stats.requests == 2
    fresh = Store(hub.url + f"/datasets/{REPO}/resolve/main")  # ranges past the end (a file that shrank):
    with pytest.raises(OSError):  # an error, and no conclusion about multi-range support from the 416
        fresh.read_ranges(shard, [(len(data) + 10, len(data) + 20), (len(data) + 30, len(data) + 40)])
    assert fresh.multi_range is None


def test_resolve_errors_speak_the_hub_codes(hub: Hub) -> None:
    r = hub.get("/datasets/acme/nope/resolve/main/images/034.tar")
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound" and "error" in r.json()
    r = hub.get(f"/datasets/{REPO}/resolve/main/images/nope.tar")
    assert r.status_code == 404 and r.headers["x-error-code"] == "EntryNotFound"
    assert len(r.headers["x-repo-commit"]) == 40
    for rev in ["v1.0", "0" * 40]:
        r = hub.get(f"/datasets/{REPO}/resolve/{rev}/images/034.tar")
        assert r.status_code == 404 and r.headers["x-error-code"] == "RevisionNotFound", rev
    r = hub.get(f"/api/datasets/{REPO}/tree/main/images/034.tar")
    assert r.status_code == 404 and "is a file" in r.json()["error"]
    assert hub.get(f"/api/datasets/{REPO}/tree/main?cursor=x").status_code == 400


def _raw(hub: Hub, method: str, target: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, bytes]:
    """A request whose target goes on the wire exactly as written (no client-side dot-segment removal)."""
    parts = urlsplit(hub.url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_path_traversal_is_refused(hub: Hub) -> None:
    pre = f"/datasets/{REPO}/resolve/main/"
    targets = [
        pre + "../../../../../../etc/passwd",
        pre + "images/../../secret.txt",
        pre + "..%2f..%2fsecret.txt",
        pre + "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        pre + "%252e%252e/%252e%252e/etc/passwd",
        pre + "..%5c..%5csecret.txt",
        pre + "images%2f..%2f..%2fsecret.txt",
        pre + "%2fetc%2fpasswd",
        pre + "/etc/passwd",
        pre + "images/034.tar%00.json",
        pre + "evil.json",  # a symlink to a file outside the pool
        f"/datasets/{REPO}/resolve/../../../etc/passwd",
        f"/datasets/{REPO}/resolve/main/C:/Windows/win.ini",
        f"/api/datasets/{REPO}/tree/main/..%2f..%2f",
        f"/api/datasets/{REPO}/tree/main/../..",
    ]
    for target in targets:
        status, body = _raw(hub, "GET", target)
        assert 400 <= status < 500, (target, status)
        assert b"root:x:" not in body and b"outside the pool" not in body, target
        assert "error" in json.loads(body), target
    status, body = _raw(hub, "GET", pre + "..%2f..%2fsecret.txt")
    assert status == 400 and b"unsafe path" in body
    listed = httpx.get(hub.url + f"/api/datasets/{REPO}/tree/main").json()
    assert "evil.json" not in {e["path"] for e in listed}
    # uploads: the same tricks on the write route
    auth = {"Authorization": f"Bearer {hub.write_key}"}
    for target in ["/api/pools/acme/up/files/..%2f..%2fx.tar", "/api/pools/acme/up/files/%2e%2e/x.tar",
                   "/api/pools/acme/up/files/a/../../x.tar", "/api/pools/acme/up/files/.headwater/x.json",
                   "/api/pools/acme/up/files/a%5cb.tar", "/api/pools/acme/up/files/%252e%252e/x.tar"]:
        status, body = _raw(hub, "PUT", target, auth, tar_bytes({"1.bin": b"x"}))
        assert 400 <= status < 500, (target, status)
    assert not os.path.exists(os.path.join(os.path.dirname(hub.up), "x.tar"))


def test_client_hanging_up_mid_download_leaves_the_server_healthy(hub: Hub) -> None:
    parts = urlsplit(hub.url)
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    ranges = ["", "Range: bytes=1000-20000000\r\n", "Range: bytes=0-9,1000-9000000,10000000-20000000\r\n",
              "Range: bytes=0-99,200-299\r\n"]  # the last: a small multipart body, read at once
    for i in range(24):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        rng = ranges[i % len(ranges)]
        sock.sendall(f"GET /datasets/{REPO}/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\n{rng}\r\n".encode())
        assert sock.recv(65536)  # headers and the first bytes arrive …
        sock.close()  # … and the client goes away
    with httpx.stream("GET", hub.url + f"/datasets/{REPO}/resolve/main/big.bin", timeout=30) as r:
        next(r.iter_bytes())  # an httpx client that stops reading and closes
    big = Path(hub.pool, "big.bin").read_bytes()
    assert hub.get(f"/datasets/{REPO}/resolve/main/big.bin").content == big
    assert hub.get("/healthz").json() == {"ok": True}
    if fds is not None:  # no descriptor leaked by the abandoned bodies
        deadline = time.monotonic() + 5
        while len(os.listdir("/proc/self/fd")) > fds + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        leftover = [os.readlink(f"/proc/self/fd/{n}") for n in os.listdir("/proc/self/fd")
                    if os.path.exists(f"/proc/self/fd/{n}")]
        assert len(leftover) <= fds + 2, "\n".join(leftover)


# -- the real huggingface_hub ----------------------------------------------------------------------------------
def test_huggingface_hub_download_and_api(hub: Hub, tmp_path, monkeypatch) -> None:
    from huggingface_hub import DatasetInfo, HfApi, HfFileSystem, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    import headwater.server.routes.hub as hub_module

    monkeypatch.setattr(hub_module, "PAGE_LIMIT", 40)  # force pagination of the tree listing
    cache = str(tmp_path / "hf")
    kw: dict[str, Any] = {"repo_type": "dataset", "endpoint": hub.url, "token": False, "cache_dir": cache}
    path = hf_hub_download(REPO, "images/034.json", **kw)
    assert Path(path).read_bytes() == Path(hub.pool, "images/034.json").read_bytes()
    commit = path.split(os.sep + "snapshots" + os.sep)[1].split(os.sep)[0]
    tar = hf_hub_download(REPO, "images/034.tar", **kw)
    assert Path(tar).read_bytes() == Path(hub.pool, "images/034.tar").read_bytes()
    at_commit = hf_hub_download(REPO, "images/035.tar", revision=commit, **kw)
    assert Path(at_commit).read_bytes() == Path(hub.pool, "images/035.tar").read_bytes()
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "images/nope.tar", **kw)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/nope", "images/034.tar", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "images/034.tar", **(kw | {"revision": "v9"}))

    api = HfApi(endpoint=hub.url, token=False)
    info = api.repo_info(REPO, repo_type="dataset", files_metadata=True)
    assert isinstance(info, DatasetInfo) and info.siblings is not None
    assert info.sha == commit and info.id == REPO
    on_disk = sorted(os.path.relpath(os.path.join(d, n), hub.pool).replace(os.sep, "/")
                     for d, _, names in os.walk(hub.pool) for n in names
                     if n != "evil.json" and ".headwater" not in d)
    assert sorted(s.rfilename for s in info.siblings) == on_disk
    sib = {s.rfilename: s for s in info.siblings}["images/034.tar"]
    assert sib.lfs is not None
    assert sib.lfs.sha256 == _index(hub)["hash_lfs"] and sib.blob_id == _index(hub)["hash"]
    assert sorted(api.list_repo_files(REPO, repo_type="dataset")) == on_disk  # 200+ entries: several pages
    tree = list(api.list_repo_tree(REPO, "images", repo_type="dataset"))
    assert sorted(e.path for e in tree) == [p for p in on_disk if p.startswith("images/")]
    found = api.get_paths_info(REPO, ["images/034.tar", "images", "missing.bin"], repo_type="dataset")
    assert [(type(e).__name__, e.path) for e in found] == [("RepoFile", "images/034.tar"), ("RepoFolder", "images")]
    assert api.list_repo_refs(REPO, repo_type="dataset").branches[0].target_commit == commit
    assert api.file_exists(REPO, "images/034.tar", repo_type="dataset")
    assert not api.file_exists(REPO, "images/nope.tar", repo_type="dataset")

    fs = HfFileSystem(endpoint=hub.url, token=False)
    assert sorted(cast("list[str]", fs.ls(f"datasets/{REPO}", detail=False))) == [f"datasets/{REPO}/{n}" for n in
                                                               ["big.bin", "headwater-manifest.sqlite", "images"]]
    assert sorted(fs.glob(f"datasets/{REPO}/images/*.tar")) == [f"datasets/{REPO}/{p}" for p in on_disk
                                                                if p.endswith(".tar")]
    entry = next(iter(_index(hub)["files"].values()))
    with fs.open(f"datasets/{REPO}/images/034.tar", "rb") as f:
        f.seek(entry["offset"])
        assert hashlib.sha256(f.read(entry["size"])).hexdigest() == entry["sha256"]
    assert fs.info(f"datasets/{REPO}@{commit}/images/034.tar")["size"] == os.path.getsize(
        os.path.join(hub.pool, "images/034.tar"))


_HFUTILS = textwrap.dedent('''
    import hashlib, json, os, sys
    from hfutils.index import hf_tar_file_download, hf_tar_file_exists, hf_tar_get_index, hf_tar_list_files
    repo, out, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    result = {"listed": sorted(hf_tar_list_files(repo, "images/034.tar")),
              "exists": [hf_tar_file_exists(repo, "images/034.tar", n) for n in names[:2]] +
                        [hf_tar_file_exists(repo, "images/034.tar", "nope.bin")],
              "index_keys": sorted(hf_tar_get_index(repo, "images/034.tar")), "files": {}}
    for name in names:
        local = os.path.join(out, name)
        hf_tar_file_download(repo, "images/034.tar", name, local, silent=True)
        result["files"][name] = hashlib.sha256(open(local, "rb").read()).hexdigest()
    print(json.dumps(result))
''')


def test_hfutils_downloads_indexed_tar_members(hub: Hub, tmp_path) -> None:
    index = _index(hub)
    names = sorted(index["files"])[:4]
    env = {**os.environ, **_LOCAL_ONLY, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-c", _HFUTILS, REPO, str(tmp_path / "out"), json.dumps(names)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["listed"] == sorted(index["files"]) and out["exists"] == [True, True, False]
    assert out["index_keys"] == ["files", "filesize", "hash", "hash_lfs"]
    assert out["files"] == {n: index["files"][n]["sha256"] for n in names}


def test_headwater_hub_pools_against_the_server(hub: Hub, tmp_path) -> None:
    from headwater.pool import HfBasedDataPool, IncrementIDDataPool

    ids = [*sorted(hub.files)[::3], 19_999_999]
    pool = IncrementIDDataPool(REPO, base_level=2, endpoint=hub.url)
    report = pool.batch_download_to_directory(ids, str(tmp_path / "out"), silent=True)
    assert sorted(report.downloaded) == ids[:-1] and report.missing == [19_999_999] and not report.failed
    for rid in ids[:-1]:
        assert (tmp_path / "out" / f"{rid}.bin").read_bytes() == hub.files[rid]
    # ≤ one read per shard, + the commit lookup, the manifest (HEAD, GET), the multi-range question (two bytes
    # of the manifest, asked while it comes) and the index of the missing id's shard
    assert report.requests <= len({rid % 100 for rid in ids[:-1]}) + 5
    assert pool.data_store.multi_range is True  # each shard's members as parts of one multipart answer
    assert pool.data_commit == httpx.get(hub.url + f"/api/datasets/{REPO}").json()["sha"]
    scan = HfBasedDataPool(REPO, endpoint=hub.url)  # resolves ids through the served manifest
    rid = ids[7]
    with scan.mock_resource(rid, {"k": 1}) as (folder, info):
        assert Path(folder, f"{rid}.bin").read_bytes() == hub.files[rid] and info == {"k": 1}


# -- commits ---------------------------------------------------------------------------------------------
def test_commits_are_content_addressed_and_old_ones_serve_only_unchanged_files(hub: Hub, tmp_path) -> None:
    auth = bearer(hub.write_key, raw=True)
    r = httpx.put(hub.url + "/api/pools/acme/up/files/images/001.tar", content=tar_bytes({"1.bin": b"one"}),
                  headers=auth)
    assert r.status_code == 201, r.text
    c1 = r.json()["commit"]
    assert httpx.get(hub.url + "/api/datasets/acme/up").json()["sha"] == c1
    r = httpx.put(hub.url + "/api/pools/acme/up/files/images/002.tar", content=tar_bytes({"2.bin": b"two"}),
                  headers=auth)
    c2 = r.json()["commit"]
    assert c2 != c1
    # at the old commit: an unchanged file is served, with the old commit id
    r = hub.get(f"/datasets/acme/up/resolve/{c1}/images/001.tar")
    assert r.status_code == 200 and r.headers["x-repo-commit"] == c1
    assert r.headers["cache-control"].endswith("immutable")
    # a file the old commit did not have is not found there
    r = hub.get(f"/datasets/acme/up/resolve/{c1}/images/002.tar")
    assert r.status_code == 404 and r.headers["x-error-code"] == "EntryNotFound"
    # a changed file is not served under the old id (no other bytes than the commit's)
    r = httpx.put(hub.url + "/api/pools/acme/up/files/images/001.tar", content=tar_bytes({"1.bin": b"ONE!"}),
                  headers=auth, params={"replace": "true"})
    c3 = r.json()["commit"]
    r = hub.get(f"/datasets/acme/up/resolve/{c1}/images/001.tar")
    assert r.status_code == 404 and "changed since commit" in r.json()["error"]
    assert hub.get(f"/datasets/acme/up/resolve/{c3}/images/001.tar").status_code == 200
    # another server process over the same pool computes the same id and knows the recorded old commits
    config = ServerConfig(str(tmp_path / "other.sqlite"), pools={"acme/up": hub.up})
    with live_server(config, public_pools=True) as other:
        assert httpx.get(other + "/api/datasets/acme/up").json()["sha"] == c3
        assert httpx.get(other + f"/api/datasets/acme/up/revision/{c2}").json()["sha"] == c2
        assert httpx.get(other + f"/datasets/acme/up/resolve/{c2}/images/002.tar").status_code == 200
    # a change made behind the server's back is seen after the refresh interval (here: invalidated)
    os.remove(os.path.join(hub.up, "images", "002.json"))
    hub.pool_of("acme/up").invalidate()
    assert httpx.get(hub.url + "/api/datasets/acme/up").json()["sha"] not in (c1, c2, c3)


# -- uploads -----------------------------------------------------------------------------------------------
def test_uploads(hub: Hub) -> None:
    from headwater.pool import StorePool

    url = hub.url + "/api/pools/acme/up/files/"
    members = {f"{i}.bin": random.Random(i).randbytes(100 + i) for i in (1105, 2205, 3305)}
    data = tar_bytes(members)
    assert httpx.put(url + "images/005.tar", content=data).status_code == 401
    r = httpx.put(url + "images/005.tar", content=data, headers=bearer(hub.read_key, raw=True))
    assert r.status_code == 403 and "read-only" in r.json()["error"]
    r = httpx.put(url + "images/005.tar", content=data, headers=bearer(hub.write_key))  # datatap-style base64
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["files"] == 3 and body["sha256"] == hashlib.sha256(data).hexdigest() and body["size"] == len(data)
    assert hub.get("/datasets/acme/up/resolve/main/images/005.tar").content == data
    index = hub.get("/datasets/acme/up/resolve/main/images/005.json").json()
    assert sorted(index["files"]) == sorted(members) and index["hash_lfs"] == body["sha256"]
    with StorePool(hub.up, layout="increment-id", base_level=2).mock_resource(2205, None) as (folder, _):
        assert Path(folder, "2205.bin").read_bytes() == members["2205.bin"]  # manifest rebuilt

    auth = bearer(hub.write_key, raw=True)
    raw_index = json.dumps(index).encode()  # the hfutils order: tar first, then its index
    r = httpx.put(url + "images/005.json", content=raw_index, headers=auth)
    assert r.status_code == 200 and r.json()["verified"] is True
    bad = dict(index, files={k: dict(v, offset=v["offset"] + 512) for k, v in index["files"].items()})
    r = httpx.put(url + "images/005.json", content=json.dumps(bad).encode(), headers=auth)
    assert r.status_code == 422 and "does not match" in r.json()["error"]
    r = httpx.put(url + "images/077.json", content=raw_index, headers=auth)
    assert r.status_code == 409 and "first" in r.json()["error"]
    r = httpx.put(url + "images/005.json", content=b"{not json", headers=auth)
    assert r.status_code == 400
    r = httpx.put(url + "images/006.tar", content=b"this is not a tar archive" * 40, headers=auth)
    assert r.status_code == 400 and "not a valid tar" in r.json()["error"]
    r = httpx.put(url + "images/006.tar", content=tar_bytes({"../../escape.bin": b"x"}), headers=auth)
    assert r.status_code == 400 and "unsafe member name" in r.json()["error"]
    r = httpx.put(url + "notes.txt", content=b"hello", headers=auth)
    assert r.status_code == 400 and "only .tar" in r.json()["error"]
    r = httpx.put(url + "images/006.tar", content=b"", headers=auth)
    assert r.status_code == 400
    r = httpx.put(hub.url + "/api/pools/acme/nope/files/images/006.tar", content=data, headers=auth)
    assert r.status_code == 404

    big = tar_bytes({"9.bin": random.Random(9).randbytes(300 << 10)})  # over max_upload_bytes (256 KiB)
    r = httpx.put(url + "images/009.tar", content=big, headers=auth)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks() -> Any:  # no Content-Length: counted while streaming
        for i in range(0, len(big), 32 << 10):
            yield big[i:i + (32 << 10)]

    r = httpx.put(url + "images/009.tar", content=chunks(), headers=auth)
    assert r.status_code == 413
    assert not os.path.exists(os.path.join(hub.up, "images", "009.tar"))
    assert not [n for n in os.listdir(os.path.join(hub.up, "images")) if n.endswith(".tmp")]

    r = httpx.delete(url + "images/005.tar", headers=auth)
    assert r.status_code == 200 and r.json()["deleted"]
    assert hub.get("/datasets/acme/up/resolve/main/images/005.tar").status_code == 404
    assert httpx.delete(url + "images/005.tar", headers=auth).status_code == 404
    assert hub.get("/healthz").status_code == 200


# -- access ------------------------------------------------------------------------------------------------
def test_pools_need_a_key_when_anonymous_reads_are_off(hub: Hub, tmp_path) -> None:
    from huggingface_hub import hf_hub_download

    config = ServerConfig(str(tmp_path / "private.sqlite"), pools={REPO: hub.pool}, anonymous_read=False)
    with live_server(config, handle=True, public_pools=True) as server:
        key = make_user(server.app.state.catalog, "carol")
        target = f"{server.url}/datasets/{REPO}/resolve/main/images/034.json"
        assert httpx.get(target).status_code == 401
        assert httpx.get(target, headers={"Authorization": "Bearer hf_" + "x" * 34}).status_code == 401  # foreign
        assert httpx.get(target, headers={"Authorization": "Bearer hw_000000000000_nope"}).status_code == 401
        assert httpx.get(target, headers=bearer(key, raw=True)).status_code == 200
        assert httpx.get(target, headers=bearer(key)).status_code == 200
        assert httpx.get(f"{server.url}/api/datasets/{REPO}", headers=bearer(key, raw=True)).json()["private"] is True
        path = hf_hub_download(REPO, "images/034.json", repo_type="dataset", endpoint=server.url, token=key,
                               cache_dir=str(tmp_path / "hf"))
        assert Path(path).read_bytes() == Path(hub.pool, "images/034.json").read_bytes()


def test_a_pool_on_plain_http_is_served_read_only(hub: Hub, tmp_path, file_server) -> None:
    upstream = file_server(hub.pool)
    config = ServerConfig(str(tmp_path / "c.sqlite"), pools={"acme/http": upstream.url})
    with live_server(config, handle=True, public_pools=True, pool_owner="erin") as server:
        key = make_user(server.app.state.catalog, "erin", permission="write")
        info = httpx.get(server.url + "/api/datasets/acme/http").json()  # listed through its manifest
        shards = sorted(s["rfilename"] for s in info["siblings"] if s["rfilename"].endswith(".tar"))
        on_disk = sorted(os.listdir(os.path.join(hub.pool, "images")))
        assert shards == [f"images/{p}" for p in on_disk if p.endswith(".tar")]
        index = _index(hub)
        entry = next(iter(index["files"].values()))
        a, b = entry["offset"], entry["offset"] + entry["size"] - 1
        r = httpx.get(server.url + "/datasets/acme/http/resolve/main/images/034.tar",
                      headers={"Range": f"bytes={a}-{b}"})
        assert r.status_code == 206 and hashlib.sha256(r.content).hexdigest() == entry["sha256"]
        assert r.headers["etag"] == f'"{index["hash_lfs"]}"'
        r = httpx.put(server.url + "/api/pools/acme/http/files/images/001.tar",
                      content=tar_bytes({"1.bin": b"x"}), headers=bearer(key, raw=True))
        assert r.status_code == 405 and "read-only" in r.json()["error"]


def test_resolve_bodies_around_the_one_read_and_chunk_sizes(hub: Hub) -> None:
    """Bodies up to ``SMALL_BODY`` go out in one read and one send, longer ones stream in ``CHUNK``s: every
    size on either side of those limits (and of several chunks) is exact, for ranges and the whole file."""
    from headwater.server.range_responses import CHUNK, SMALL_BODY

    big = Path(hub.pool, "big.bin").read_bytes()
    base = f"/datasets/{REPO}/resolve/main/big.bin"
    for length in (SMALL_BODY - 1, SMALL_BODY, SMALL_BODY + 1, CHUNK * 2 + 7, len(big) - 12_345):
        start = 12_345 if length == len(big) - 12_345 else 1_000
        r = hub.get(base, headers={"Range": f"bytes={start}-{start + length - 1}"})
        assert r.status_code == 206 and int(r.headers["content-length"]) == length
        assert r.content == big[start:start + length], length
    assert len(big) > SMALL_BODY and len(big) > CHUNK  # both paths really ran
