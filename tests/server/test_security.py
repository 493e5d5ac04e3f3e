"""A multi-user server probed as a user with a key of their own would probe it (issue 14).

Each test is one finding: pool writes authorized by ownership, pool reads following the databases that use
the pool, nothing of the server's disk or configuration leaked, crafted input answered with a 4xx, URLs a
publisher chooses limited to what the operator allows. Body sizes and memory: ``test_resource_limits``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.archive import pack_directory
from headwater.catalog import Catalog
from headwater.server.app import ServerConfig, create_app
from headwater.server.runner import BackgroundServer

from ..support.files import make_files, tar_bytes
from ..support.servers import bearer, live_server, make_user

REPO = "acme/images"


@dataclass
class World:
    url: str
    server: BackgroundServer
    catalog: Catalog
    pool: str
    alice: str  # write keys
    bob: str
    bob_read: str

    def get(self, path: str, key: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.url + path, headers=bearer(key, raw=True) | (headers or {}))

    def put(self, path: str, key: str | None, content: bytes, **kw: Any) -> httpx.Response:
        return httpx.put(self.url + "/api/pools/" + REPO + "/files/" + path, content=content,
                         headers=bearer(key, raw=True), **kw)

    def delete(self, path: str, key: str | None) -> httpx.Response:
        return httpx.delete(self.url + "/api/pools/" + REPO + "/files/" + path, headers=bearer(key, raw=True))

    def refresh(self) -> None:
        """Forget what the server knows about pool access (it re-reads it every 2 s anyway)."""
        self.server.app.state.pool_readers.invalidate()


def _pool(root: str) -> str:
    make_files(os.path.join(root, "src"), list(range(1, 41)), seed=3)
    pool = os.path.join(root, "pool")
    pack_directory(os.path.join(root, "src"), pool, layout="increment-id", base_level=1, silent=True)
    return pool


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    pool = _pool(str(tmp_path))
    path = str(tmp_path / "catalog.sqlite")
    cat = Catalog(path)
    alice, bob = make_user(cat, "alice", permission="write"), make_user(cat, "bob", permission="write")
    bob_read = make_user(cat, "bob")
    cat.change_pool_access(REPO, owner="alice", public=True)
    with live_server(ServerConfig(path, pools={REPO: pool}), handle=True) as server:
        yield World(server.url, server, cat, pool, alice, bob, bob_read)
    cat.close()


# -- High: pool writes need the pool's owner ----------------------------------------------------------------
def test_another_users_write_key_cannot_replace_or_delete_a_pools_shards(world: World) -> None:
    shard = "images/03.tar"
    before = Path(world.pool, shard).read_bytes()
    evil = tar_bytes({"3.bin": b"bob's bytes"})
    r = world.put(shard, world.bob, evil, params={"replace": "true"})
    assert r.status_code == 403 and "may not write to pool acme/images" in r.json()["error"]
    r = world.delete(shard, world.bob)
    assert r.status_code == 403
    assert world.put(shard, None, evil).status_code == 401
    assert world.put(shard, world.bob_read, evil).status_code == 403  # a read key: read-only
    assert Path(world.pool, shard).read_bytes() == before  # nothing changed
    assert world.get(f"/datasets/{REPO}/resolve/main/{shard}").content == before

    # the owner may; a user granted write may too, until the grant is revoked
    world.catalog.grant_pool_access(REPO, "bob", "write")
    world.refresh()
    r = world.put("images/55.tar", world.bob, tar_bytes({"55.bin": b"granted"}))
    assert r.status_code == 201, r.text
    world.catalog.revoke_pool_access(REPO, "bob")
    world.refresh()
    assert world.delete("images/55.tar", world.bob).status_code == 403
    assert world.delete("images/55.tar", world.alice).status_code == 200


def test_the_server_refuses_to_replace_a_shard_with_other_bytes_unless_asked(world: World) -> None:
    shard = "images/07.tar"
    same = Path(world.pool, shard).read_bytes()
    r = world.put(shard, world.alice, same)  # the same bytes again: a retried upload, accepted
    assert r.status_code == 201 and r.json()["sha256"] == hashlib.sha256(same).hexdigest()
    other = tar_bytes({"7.bin": b"other bytes"})
    r = world.put(shard, world.alice, other)
    assert r.status_code == 409 and "?replace=true" in r.json()["error"]
    assert Path(world.pool, shard).read_bytes() == same
    r = world.put(shard, world.alice, other, params={"replace": "true"})
    assert r.status_code == 201
    assert world.get(f"/datasets/{REPO}/resolve/main/{shard}").content == other


def test_a_pool_without_owner_takes_no_writes_and_says_how_to_give_it_one(world: World) -> None:
    world.catalog.change_pool_access(REPO, owner=None)
    world.refresh()
    r = world.put("images/99.tar", world.alice, tar_bytes({"99.bin": b"x"}))
    assert r.status_code == 403 and "headwater pool set acme/images --owner USER" in r.json()["error"]


# -- Medium: a private database's images are as private as the database -----------------------------------
def test_pool_reads_follow_the_databases_that_use_the_pool(world: World) -> None:
    shard = f"/datasets/{REPO}/resolve/main/images/01.json"
    world.catalog.change_pool_access(REPO, owner=None, public=False)  # the pool's own record: nobody's, private
    world.catalog.create_database("secret", owner="alice")
    world.catalog.publish("secret", "acme", "cats", template={}, splits={"train": [b"{}"]},
                          pools={"images": os.path.join(world.pool, "images")})
    world.refresh()
    assert world.get(shard).status_code == 404  # anonymous: as if the pool were not served
    assert world.get(shard, world.bob_read).status_code == 404
    r = world.get(shard, world.alice)  # alice may read the database that uses the pool
    assert r.status_code == 200 and r.json()["files"]
    assert [p["id"] for p in world.get("/api/datasets").json()] == []
    assert [p["id"] for p in world.get("/api/datasets", world.alice).json()] == [REPO]
    assert world.get(f"/api/datasets/{REPO}", world.alice).json()["private"] is True

    world.catalog.change_database_access("secret", public=True)  # the database goes public: its images too
    world.refresh()
    assert world.get(shard).status_code == 200
    world.catalog.change_database_access("secret", public=False)
    world.catalog.grant_pool_access(REPO, "bob", "read")  # or a grant on the pool itself
    world.refresh()
    assert world.get(shard, world.bob_read).status_code == 200 and world.get(shard).status_code == 404


def test_without_anonymous_reads_a_key_reads_only_the_pools_it_may(tmp_path) -> None:
    pool = _pool(str(tmp_path))
    path = str(tmp_path / "catalog.sqlite")
    with Catalog(path) as cat:
        alice, bob = make_user(cat, "alice"), make_user(cat, "bob")
        cat.change_pool_access(REPO, owner="alice", public=False)
    with live_server(ServerConfig(path, pools={REPO: pool}, anonymous_read=False)) as url:
        target = f"{url}/datasets/{REPO}/resolve/main/images/01.json"
        assert httpx.get(target).status_code == 401
        assert httpx.get(target, headers=bearer(bob, raw=True)).status_code == 404
        assert httpx.get(target, headers=bearer(alice, raw=True)).status_code == 200


# -- Low: leaks ----------------------------------------------------------------------------------------------
def test_pool_urls_and_links_come_from_the_configured_public_url_never_the_host_header(tmp_path) -> None:
    pool = _pool(str(tmp_path))
    path = str(tmp_path / "catalog.sqlite")
    with Catalog(path) as cat:
        cat.create_database("main", public=True)
        cat.publish("main", "acme", "cats", template={}, splits={"train": [b"{}"]}, tags=["latest"],
                    pools={"images": os.path.join(pool, "images"), "private": str(tmp_path / "elsewhere")})
        cat.change_pool_access(REPO, public=True)
    config = ServerConfig(path, pools={REPO: pool}, public_url="https://data.example.org/hw/")
    with live_server(config) as url:
        poisoned = {"Host": "evil.example"}
        got = httpx.get(f"{url}/api/database/main/repository/acme/cats/latest", headers=poisoned).json()
        assert got["pools"] == {"images": "https://data.example.org/hw/datasets/acme/images/resolve/main/images"}
        r = httpx.get(f"{url}/api/datasets/{REPO}/tree/main/images?limit=2", headers=poisoned)
        assert r.headers["link"].startswith("<https://data.example.org/hw/api/datasets/acme/images/tree/")
    with live_server(ServerConfig(path, pools={REPO: pool})) as url:  # no public URL: the address it listens on
        got = httpx.get(f"{url}/api/database/main/repository/acme/cats/latest", headers={"Host": "evil.example"})
        assert got.json()["pools"] == {"images": f"{url}/datasets/acme/images/resolve/main/images"}
        assert str(tmp_path) not in got.text  # the unserved pool's disk path is not shown


def test_errors_do_not_name_the_servers_paths(tmp_path) -> None:
    path = str(tmp_path / "catalog.sqlite")
    missing = str(tmp_path / "gone")
    with Catalog(path) as cat:
        cat.change_pool_access(REPO, public=True)
    with live_server(ServerConfig(path, pools={REPO: missing})) as url:
        r = httpx.get(f"{url}/api/datasets/{REPO}")
        assert r.status_code == 404 and str(tmp_path) not in r.text and "not available" in r.json()["error"]


def test_docs_are_a_choice_and_off_without_anonymous_reads(tmp_path) -> None:
    path = str(tmp_path / "catalog.sqlite")
    with live_server(ServerConfig(path, anonymous_read=False)) as url:
        assert httpx.get(url + "/openapi.json").status_code == 404 and httpx.get(url + "/docs").status_code == 404
    with live_server(ServerConfig(path, anonymous_read=False, docs=True)) as url:
        assert httpx.get(url + "/openapi.json").status_code == 200
    with live_server(ServerConfig(path)) as url:
        assert httpx.get(url + "/docs").status_code == 200
    with live_server(ServerConfig(path, docs=False)) as url:
        assert httpx.get(url + "/openapi.json").status_code == 404


def test_a_public_url_must_be_a_url_and_a_wildcard_address_needs_one() -> None:
    from headwater.server.errors import ServerConfigError
    from headwater.server.runner import listen_url

    with pytest.raises(ServerConfigError, match="must be http"):
        ServerConfig("c.sqlite", public_url="data.example.org")
    with pytest.raises(ServerConfigError, match="--public-url"):
        listen_url("0.0.0.0", 8000)


# -- Low: crafted input is a 4xx with a message ------------------------------------------------------------------
def test_crafted_requests_are_4xx_with_a_message(world: World) -> None:
    target = f"/datasets/{REPO}/resolve/main/images/01.tar"
    size = os.path.getsize(os.path.join(world.pool, "images", "01.tar"))
    r = world.get(target, headers={"Range": "bytes=0-" + "9" * 5000})
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    r = world.get(target, headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert r.status_code == 416
    r = world.get(target, headers={"Range": "bytes=" + "9" * 5000 + "-1"})
    assert r.status_code == 400 and len(r.text) < 500
    nested = "[" * 100_000 + "]" * 100_000
    r = httpx.post(f"{world.url}/api/datasets/{REPO}/paths-info/main", content='{"paths": ' + nested + "}",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested" in r.json()["error"]
    deep = "/".join(["a"] * 3000) + "/x.tar"
    r = world.put(deep, world.alice, tar_bytes({"1.bin": b"x"}))
    assert r.status_code == 400 and "longer than" in r.json()["error"]
    r = world.put("/".join(["a"] * 40) + "/x.tar", world.alice, tar_bytes({"1.bin": b"x"}))
    assert r.status_code == 400 and "folders deep" in r.json()["error"]
    r = world.put("images/" + "n" * 300 + ".tar", world.alice, tar_bytes({"1.bin": b"x"}))
    assert r.status_code == 400 and "bytes long" in r.json()["error"]
    assert world.get(f"/datasets/{REPO}/resolve/main/" + "b" * 300).status_code == 400
    assert world.get("/healthz").status_code == 200


def test_a_deeply_nested_droplet_is_a_problem_not_a_500(world: World) -> None:
    world.catalog.create_database("main", owner="alice")
    nested = "[" * 5000 + "]" * 5000
    droplet = ('{"kind": "ImageAnnotation", "image": {"paths": ["https://x.example/1.jpg"]}, "classes": {}, '
               '"attributes": {"x": ' + nested + "}}")
    body = '{"tags": ["latest"]}\n{"split": "train", "droplet": ' + droplet + "}\n"
    r = httpx.post(world.url + "/api/database/main/repository/acme/cats/publish", content=body,
                   headers=bearer(world.alice))
    assert r.status_code == 400 and r.json()["problems"] == [{"where": "line 2", "message": "JSON nested too deeply"}]


# -- Low: caps on droplets and shard members -------------------------------------------------------------------
def test_a_droplet_over_the_cap_and_a_shard_over_the_member_cap_are_refused(tmp_path) -> None:
    pool = _pool(str(tmp_path))
    path = str(tmp_path / "catalog.sqlite")
    with Catalog(path) as cat:
        key = make_user(cat, "alice", permission="write")
        cat.create_database("main", owner="alice")
        cat.change_pool_access(REPO, owner="alice")
    config = ServerConfig(path, pools={REPO: pool}, max_droplet_bytes=1000, max_shard_members=50)
    with live_server(config) as url:
        big = {"kind": "ImageAnnotation", "image": {"paths": ["https://x.example/1.jpg"]}, "classes": {},
               "attributes": {"note": "x" * (200 << 10)}}  # past the cap and the slack for split/where
        body = (json.dumps({"tags": ["latest"]}) + "\n" + json.dumps({"droplet": big}) + "\n").encode()
        r = httpx.post(url + "/api/database/main/repository/acme/cats/publish", content=body, headers=bearer(key))
        assert r.status_code == 413 and "line 2" in r.json()["error"]
        many = tar_bytes({f"{i}.bin": b"" for i in range(51)})
        r = httpx.put(f"{url}/api/pools/{REPO}/files/images/77.tar", content=many, headers=bearer(key))
        assert r.status_code == 413 and "more than 50 members" in r.json()["error"]
        assert not os.path.exists(os.path.join(pool, "images", "77.tar"))
        ok = tar_bytes({f"{i}.bin": b"" for i in range(50)})
        assert httpx.put(f"{url}/api/pools/{REPO}/files/images/78.tar", content=ok,
                         headers=bearer(key)).status_code == 201


def test_a_shard_upload_updates_the_manifest_without_reading_the_other_indexes(world: World) -> None:
    """The manifest gains the new shard's rows; the others' stay as they were, even if an index went bad."""
    from headwater.archive import MANIFEST_NAME, Manifest

    with open(os.path.join(world.pool, "images", "02.json"), "w") as f:
        f.write("{not an index")  # a rebuild would have to read (and would drop) this shard
    data = tar_bytes({"41.bin": b"forty-one"})
    assert world.put("images/41.tar", world.alice, data).status_code == 201
    with Manifest(os.path.join(world.pool, MANIFEST_NAME)) as m:
        assert [r.shard for r in m.lookup("41")] == ["images/41.tar"]
        assert [r.shard for r in m.lookup("2")] == ["images/02.tar"]
    assert world.delete("images/41.tar", world.alice).status_code == 200
    with Manifest(os.path.join(world.pool, MANIFEST_NAME)) as m:
        assert m.lookup("41") == [] and [r.shard for r in m.lookup("12")] == ["images/02.tar"]


# -- Low: URLs publishers choose ---------------------------------------------------------------------------------
def test_publishers_may_name_only_the_servers_pools_and_allowed_schemes(world: World) -> None:
    world.catalog.create_database("main", owner="alice")
    publish = world.url + "/api/database/main/repository/acme/cats/publish"

    def attempt(pools: dict[str, str], image: str = "pool://images/1.bin") -> httpx.Response:
        droplet = {"kind": "ImageAnnotation", "image": {"paths": [image]}, "classes": {}}
        body = json.dumps({"pools": pools}) + "\n" + json.dumps({"droplet": droplet}) + "\n"
        return httpx.post(publish, content=body, headers=bearer(world.alice))

    for bad in ("file:///etc", "http://127.0.0.1:9/admin", "/srv/pools/x", "ftp://host/pool"):
        r = attempt({"images": bad})
        assert r.status_code == 400 and "this server accepts its own pools" in r.json()["error"], bad
    r = attempt({"images": "https://pools.example.org/x"}, image="http://169.254.169.254/latest/meta-data")
    assert r.status_code == 400 and "http:// URL" in r.json()["problems"][0]["message"]
    assert attempt({"images": "https://pools.example.org/x"}).status_code == 201
    own = f"{world.url}/datasets/{REPO}/resolve/main/images"
    assert attempt({"images": own}).status_code == 201


def test_an_operator_can_allow_more_schemes(tmp_path) -> None:
    path = str(tmp_path / "catalog.sqlite")
    with Catalog(path) as cat:
        key = make_user(cat, "alice", permission="write")
        cat.create_database("main", owner="alice")
    config = ServerConfig(path, pool_url_schemes=("http", "https"))
    with live_server(config) as url:
        droplet = {"kind": "ImageAnnotation", "image": {"paths": ["pool://images/1"]}, "classes": {}}
        body = json.dumps({"pools": {"images": "http://pools.internal/x"}}) + "\n" + json.dumps({"droplet": droplet})
        r = httpx.post(url + "/api/database/main/repository/acme/cats/publish", content=body, headers=bearer(key))
        assert r.status_code == 201, r.text


def test_a_readers_client_opens_only_the_servers_urls_and_safe_schemes(tmp_path) -> None:
    """A dataset written straight into the catalog (no publish checks) may name anything: the client of a
    remote reader still refuses local files and other hosts' plain-HTTP URLs by default."""
    from headwater.client import Api
    from headwater.droplet import ImageFetchError, ImageRefError

    path = str(tmp_path / "catalog.sqlite")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"the reader's own file")
    droplets = [json.dumps({"kind": "ImageAnnotation", "image": {"paths": [p]}, "classes": {}}).encode()
                for p in (str(secret), "http://127.0.0.1:9/admin.jpg", "pool://lan/1.jpg")]
    with Catalog(path) as cat:
        cat.create_database("main", public=True)
        cat.publish("main", "acme", "cats", template={}, splits={"train": droplets}, tags=["latest"],
                    pools={"lan": "http://127.0.0.1:9/pool"})
    with live_server(ServerConfig(path)) as url:
        dataset = Api(url=url, cache=False).get_database_by_name("main").get_dataset("acme/cats:latest")
        fetcher = dataset.image_fetcher()
        got = list(dataset.stream_split("train"))
        for droplet in got:
            with pytest.raises(ImageFetchError) as info:
                fetcher.fetch(droplet)
            assert "does not open" in str(info.value) or "local paths are not allowed" in str(info.value)
        with pytest.raises(ImageRefError, match="does not open http://"):
            fetcher.pool("lan")
    local = Api(catalog=path).get_database_by_name("main").get_dataset("acme/cats:latest")
    assert local.image_fetcher().fetch(next(iter(local.stream_split("train")))) == b"the reader's own file"


# -- Low: spooled bodies do not leak disk ------------------------------------------------------------------------
def test_spooled_bodies_of_dead_servers_are_removed_at_start_and_the_budget_holds(tmp_path) -> None:
    from headwater.server.spool import upload_temp_prefix

    spool = tmp_path / "spool"
    dead = spool / "999999999"  # no such process
    dead.mkdir(parents=True)
    (dead / "tmpabc.ndjson").write_bytes(b"x" * 1000)
    live = spool / str(os.getppid())
    live.mkdir()
    (live / "tmpdef.ndjson").write_bytes(b"y")
    pool = _pool(str(tmp_path))
    stale = os.path.join(pool, "images", ".01.tar.hw999999999.abc.tmp")
    mine = os.path.join(pool, "images", upload_temp_prefix("02.tar") + "abc.tmp")
    for name in (stale, mine):
        with open(name, "wb") as f:
            f.write(b"partial upload")
    path = str(tmp_path / "catalog.sqlite")
    app = create_app(ServerConfig(path, pools={REPO: pool}, spool_dir=str(spool), spool_budget_bytes=4096))
    assert not dead.exists() and (live / "tmpdef.ndjson").exists()
    assert not os.path.exists(stale) and os.path.exists(mine)  # this process is alive: not stale
    os.unlink(mine)
    cat = app.state.catalog
    key = make_user(cat, "alice", permission="write")
    cat.create_database("main", owner="alice")
    with live_server(app) as url:
        droplet = {"kind": "ImageAnnotation", "image": {"paths": ["https://x.example/1.jpg"]}, "classes": {},
                   "attributes": {"note": "z" * 500}}
        body = "\n".join([json.dumps({})] + [json.dumps({"droplet": droplet})] * 10) + "\n"
        r = httpx.post(url + "/api/database/main/repository/acme/cats/publish", content=body, headers=bearer(key))
        assert r.status_code == 507 and "spool" in r.json()["error"]
        r = httpx.post(url + "/api/database/main/repository/acme/cats/publish", content=body[:2000].rsplit("\n", 1)[0]
                       + "\n", headers=bearer(key))
        assert r.status_code == 201, r.text
    assert os.listdir(spool / str(os.getpid())) == []  # nothing left behind


def test_random_members_named_like_uploads_are_kept(tmp_path) -> None:
    """Only temp files named by a dead server process are removed; a pool's own files never are."""
    pool = _pool(str(tmp_path))
    odd = os.path.join(pool, "images", ".notes.tmp")
    with open(odd, "wb") as f:
        f.write(random.Random(0).randbytes(10))
    create_app(ServerConfig(str(tmp_path / "c.sqlite"), pools={REPO: pool}))
    assert os.path.exists(odd)
