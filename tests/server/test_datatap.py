"""The datatap read API over a live uvicorn server on 127.0.0.1 (real HTTP, real catalogs)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from headwater.catalog import Catalog
from headwater.client import EmbeddedTransport
from headwater.droplet.ndjson import iter_lines
from headwater.server.app import ServerConfig

from ..support.ports import free_port, wait_ready
from ..support.servers import bearer, live_server, make_user

TEMPLATE = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"boundingBox": True}}}}


def stream_lines(transport: EmbeddedTransport, *args: Any, **kwargs: Any) -> list[bytes]:
    return list(iter_lines(transport.stream_blocks(*args, **kwargs)))


def droplet(i: int, tag: str = "v1") -> bytes:
    box = {"boundingBox": {"rectangle": [[0.1, 0.1], [0.5, 0.5 + i % 5 / 10]]}}
    return json.dumps({"kind": "ImageAnnotation", "uid": f"{tag}-{i}", "image": {"paths": [f"pool://images/{i}.jpg"]},
                       "classes": {"cat": {"instances": [box]}}}, separators=(",", ":")).encode()


@dataclass
class World:
    url: str
    catalog: Catalog
    keys: dict[str, str]
    db: dict[str, str]  # name -> uid
    v1: str
    v2: str
    open_ds: str

    def get(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=bearer(self.keys.get(key) if key else None), timeout=30, **kw)

    def post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=bearer(self.keys.get(key) if key else None), timeout=30)


def build(location: str, *, train: int = 101) -> tuple[Catalog, dict[str, str], dict[str, str], str, str, str]:
    cat = Catalog(location)
    keys = {"alice": make_user(cat, "alice"), "bob": make_user(cat, "bob"),
            "alice_w": make_user(cat, "alice", permission="write")}
    db = {"alices": cat.create_database("alices", owner="alice").uid,
          "open": cat.create_database("open", owner="bob", public=True).uid,
          "shared": cat.create_database("shared").uid}
    cat.choose_default_database("alice", "alices")
    v1 = cat.publish("alices", "acme", "cats", template=TEMPLATE, tags=["latest", "stable"],
                     splits={"train": [droplet(i) for i in range(train)],
                             "validation": [droplet(i, "val") for i in range(7)]}).uid
    v2 = cat.publish("alices", "acme", "cats", template=TEMPLATE,
                     splits={"train": [droplet(i, "v2") for i in range(5)], "empty": []}).uid
    cat.publish("alices", "acme", "dogs", template=TEMPLATE, splits={"train": [droplet(0, "dog")]})
    open_ds = cat.publish("open", "pub", "birds", template=TEMPLATE,
                          splits={"train": [droplet(i, "b") for i in range(9)]}).uid
    return cat, keys, db, v1, v2, open_ds


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat, keys, db, v1, v2, open_ds = build(path)
    with live_server(ServerConfig(path)) as url:
        yield World(url, cat, keys, db, v1, v2, open_ds)
    cat.close()


def lines(response: httpx.Response) -> list[bytes]:
    body = response.content
    assert body == b"" or body.endswith(b"\n")
    out = body.split(b"\n")[:-1]
    assert all(out), "no blank lines"
    return out


def stream_path(w: World, uid: str, split: str = "train", db: str = "alices", repo: str = "acme/cats") -> str:
    return f"/api/database/{w.db[db]}/repository/{repo}/{uid}/split/{split}/stream"


def test_every_route_matches_the_embedded_transport(catalog_url: str) -> None:
    cat, keys, db, v1, v2, _ = build(catalog_url)
    local = EmbeddedTransport(cat)
    alices = db["alices"]
    with live_server(ServerConfig(catalog_url)) as url, \
            httpx.Client(base_url=url, headers=bearer(keys["alice"])) as http:
        def get(path: str) -> Any:
            r = http.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-type"] == "application/json"
            return r.json()

        user = get("/api//user")  # datatap joins "/api/" + "/user"
        assert user == {"uid": cat.user("alice").uid, "username": "alice", "email": "alice@example.org",
                        "defaultDatabase": alices}
        assert get("/api//database") == get("/api/database") == [local.database(alices), local.database(db["open"]),
                                                                 local.database(db["shared"])]
        assert get(f"/api//database/{alices}") == local.database(alices)
        assert get("/api/database/alices") == local.database(alices)  # a name works too
        assert "credentials" not in json.dumps(get(f"/api/database/{alices}")["connectionOptions"]).lower()
        r = http.post("/api//database/query", json={"name": "alices"})
        assert r.status_code == 200 and r.json() == [local.database(alices)]
        assert http.post("/api/database/query", json={"name": "nope"}).json() == []
        assert get(f"/api//database/{alices}/repository") == local.repositories(alices)
        assert [r["name"] for r in local.repositories(alices)] == ["cats", "dogs"]
        repo = get(f"/api/database/{alices}/repository/acme/cats")
        assert repo == local.repository(alices, "acme", "cats")
        assert {t["tag"]: t["dataset"] for t in repo["tags"]} == {"latest": v2, "stable": v1}
        for ref, uid in (("latest", v2), ("stable", v1), (v1, v1), (v2, v2)):
            want = local.dataset(alices, "acme", "cats", uid)
            assert get(f"/api/database/{alices}/repository//acme/cats/{ref}") == want
        ds = get(f"/api/database/{alices}/repository/acme/cats/stable")
        assert ds["splits"] == ["train", "validation"] and ds["template"] == TEMPLATE
        assert ds["repository"] == {"namespace": "acme", "name": "cats"} and ds["database"] == alices

        r = http.get(f"/api//database/{alices}/repository/acme/cats/{v1}/split/train/stream",
                     params={"chunk": "1", "nchunks": "3"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        expected = list(stream_lines(local, alices, "acme", "cats", v1, "train", 1, 3))
        assert lines(r) == expected and len(expected) == 34
        assert r.headers["x-headwater-items"] == "34" and r.headers["x-headwater-dataset"] == v1
        full = list(stream_lines(local, alices, "acme", "cats", v1, "train", 0, 1))
        for n in (1, 2, 3, 7, 150):
            got = []
            for k in range(n):
                got += lines(http.get(f"/api/database/{alices}/repository/acme/cats/{v1}/split/train/stream",
                                      params={"chunk": k, "nchunks": n}))
            assert got == full, n
        r = http.get(f"/api/database/{alices}/repository/acme/cats/{v2}/split/empty/stream")
        assert r.status_code == 200 and r.content == b"" and r.headers["x-headwater-items"] == "0"
    cat.close()


def test_headwater_stream_extras(world: World) -> None:
    path = stream_path(world, world.v1)
    local = EmbeddedTransport(world.catalog)
    for params in ({"chunk": 1, "nchunks": 4, "shuffleSeed": 7}, {"chunk": 0, "nchunks": 2, "truncate": 50},
                   {"chunk": 2, "nchunks": 3, "offset": 5}, {"chunk": 0, "nchunks": 3, "shuffleSeed": 3, "offset": 30,
                                                              "truncate": 95}):
        r = world.get(path, "alice", params=params)
        assert r.status_code == 200, r.text
        want = list(stream_lines(local, world.db["alices"], "acme", "cats", world.v1, "train", params["chunk"],
                                       params["nchunks"], shuffle_seed=params.get("shuffleSeed"),
                                       offset=params.get("offset", 0), truncate=params.get("truncate")))
        assert lines(r) == want and int(r.headers["x-headwater-items"]) == len(want)
    shuffled = []
    for k in range(3):
        shuffled += lines(world.get(path, "alice", params={"chunk": k, "nchunks": 3, "shuffleSeed": 11}))
    in_order = lines(world.get(path, "alice"))
    assert shuffled != in_order and sorted(shuffled) == sorted(in_order)
    # a tag works where the uid goes (a convenience: clients resolve tags to uids first)
    assert lines(world.get(stream_path(world, "stable"), "alice")) == in_order
    # a tag is resolved on every request (it moves); a uid always names the same dataset
    assert len(lines(world.get(stream_path(world, "latest"), "alice"))) == 5
    world.catalog.move_tag("alices", "acme", "cats", "latest", world.v1)
    assert lines(world.get(stream_path(world, "latest"), "alice")) == in_order
    assert world.get(stream_path(world, world.v1), "bob").status_code == 404  # the uid is cached, access is not


@pytest.mark.parametrize("params, message", [
    ({"chunk": 3, "nchunks": 3}, "Invalid chunk specification. 3 must be in the range [0, 3)"),
    ({"chunk": -1, "nchunks": 3}, "Invalid chunk specification. -1 must be in the range [0, 3)"),
    ({"chunk": 0, "nchunks": 0}, "Invalid chunk specification. 0 must be in the range [0, 0)"),
    ({"chunk": "x", "nchunks": 2}, "bad request: query.chunk"),
    ({"nchunks": "1.5"}, "bad request: query.nchunks"),
    ({"chunk": 0, "nchunks": 2, "offset": 52}, "offset must be in [0, 50] for chunk 0 of 2, got 52"),
    ({"offset": -1}, "offset must be in [0, 101]"),
    ({"truncate": -4}, "truncate must be >= 0, got -4"),
    ({"shuffleSeed": "abc"}, "bad request: query.shuffleSeed"),
])
def test_bad_stream_parameters_are_400(world: World, params: dict[str, Any], message: str) -> None:
    r = world.get(stream_path(world, world.v1), "alice", params=params)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert message in r.json()["error"]


def test_errors_are_json(world: World) -> None:
    a = world.db["alices"]
    cases = [
        (f"/api/database/{a}/repository/acme/nope", 404, "repository 'acme/nope' not found in database 'alices'"),
        (f"/api/database/{a}/repository/acme/cats/nope", 404, "no tag or dataset 'nope' in repository 'acme/cats'"),
        (f"/api/database/{a}/repository/acme/cats/{world.v1}/split/nope/stream", 404, "split 'nope' not found"),
        # a dataset of another repository is not reachable through this one
        (f"/api/database/{a}/repository/acme/dogs/{world.v1}/split/train/stream", 404, "no tag or dataset"),
        (f"/api/database/{world.db['open']}/repository/acme/cats/{world.v1}/split/train/stream", 404,
         "repository 'acme/cats' not found"),
        (f"/api/database/{a}/repository/a%20b/cats", 400, "invalid namespace 'a b'"),
        ("/api/database/nope", 404, "database 'nope' not found"),
        ("/api/nothing-here", 404, "Not Found"),
        ("/api/database/x/repository/y", 404, "Not Found"),
    ]
    for path, status, message in cases:
        r = world.get(path, "alice")
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"error"} and message in r.json()["error"], (path, r.json())
    r = httpx.post(world.url + "/api/database/query", content=b"{not json", headers=bearer(world.keys["alice"]))
    assert r.status_code == 400 and r.json()["error"].startswith("database query: not valid JSON")
    r = world.post("/api/database/query", {"nom": "alices"}, "alice")
    assert r.status_code == 400 and r.json() == {"error": 'database query: expected {"name": "…"}'}
    r = httpx.delete(world.url + "/api/database", headers=bearer(world.keys["alice"]))
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}


def test_private_databases_are_invisible_to_others(world: World) -> None:
    a = world.db["alices"]
    bob_sees = [d["name"] for d in world.get("/api/database", "bob").json()]
    assert bob_sees == ["open", "shared"]  # his public one and the unowned one, not alice's
    assert world.post("/api/database/query", {"name": "alices"}, "bob").json() == []
    for path in (f"/api/database/{a}", "/api/database/alices", f"/api/database/{a}/repository",
                 f"/api/database/{a}/repository/acme/cats", f"/api/database/{a}/repository/acme/cats/latest",
                 stream_path(world, world.v1)):
        missing = world.get(path, "bob")
        assert missing.status_code == 404, path
        # exactly what a database that does not exist answers: nothing leaks
        assert missing.json() == {"error": f"database {path.split('/')[3]!r} not found"}
    assert world.get(stream_path(world, world.v1), "alice").status_code == 200
    # alice sees the public database of bob, and both see the unowned one
    assert [d["name"] for d in world.get("/api/database", "alice").json()] == ["alices", "open", "shared"]
    assert world.get(stream_path(world, world.open_ds, db="open", repo="pub/birds"), "alice").status_code == 200
    assert world.get("/api/user", "bob").json()["defaultDatabase"] == world.db["open"]  # the one he owns


def test_anonymous_reads_public_databases_only(world: World) -> None:
    r = world.get("/api/user")
    assert r.status_code == 401 and "authentication required" in r.json()["error"]
    assert [d["name"] for d in world.get("/api//database").json()] == ["open"]
    assert world.get(f"/api/database/{world.db['shared']}").status_code == 404
    assert world.get(f"/api/database/{world.db['alices']}/repository").status_code == 404
    r = world.get(stream_path(world, world.open_ds, db="open", repo="pub/birds"), params={"chunk": 1, "nchunks": 2})
    assert r.status_code == 200 and len(lines(r)) == 5
    world.catalog.change_database_access("open", public=False)  # the owner changes their mind: effective at once
    assert world.get("/api/database").json() == []
    assert world.get(stream_path(world, world.open_ds, db="open", repo="pub/birds")).status_code == 404


def test_no_anonymous_server(tmp_path) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat, keys, db, *_ = build(path, train=3)
    with live_server(ServerConfig(path, anonymous_read=False)) as url:
        for route in ("/api/database", f"/api/database/{db['open']}", f"/api/database/{db['open']}/repository",
                      "/api/user"):
            r = httpx.get(url + route)
            assert r.status_code == 401 and "authentication required" in r.json()["error"], route
        assert httpx.post(url + "/api/database/query", json={"name": "open"}).status_code == 401
        r = httpx.get(url + f"/api/database/{db['open']}/repository", headers=bearer(keys["alice"]))
        assert r.status_code == 200 and r.json()[0]["name"] == "birds"
    cat.close()


def test_revoked_key_is_refused(world: World) -> None:
    assert world.get("/api/user", "alice").status_code == 200
    (key,) = [k for k in world.catalog.api_keys("alice") if k.permission == "read"]
    world.catalog.revoke_api_key(key.key_id)
    for path in ("/api/user", "/api/database", stream_path(world, world.open_ds, db="open", repo="pub/birds")):
        r = world.get(path, "alice")  # even for what an anonymous caller could read: the key is wrong
        assert r.status_code == 401 and r.json() == {"error": "invalid or revoked API key"}
    assert world.get("/api/user", "alice_w").status_code == 200  # her other key still works


def test_client_disconnect_mid_stream_leaves_the_server_healthy(tmp_path) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat, keys, db, *_ = build(path, train=3)
    big = cat.publish("shared", "big", "set", template=TEMPLATE,
                      splits={"train": (droplet(i, "big") for i in range(60_000))}).uid
    route = f"/api/database/{db['shared']}/repository/big/set/{big}/split/train/stream"
    auth = bearer(keys["alice"])
    with live_server(ServerConfig(path), handle=True) as server:
        for _ in range(5):  # an httpx client that reads a few lines and closes the response
            with httpx.Client(base_url=server.url, headers=auth) as http, http.stream("GET", route) as r:
                assert r.status_code == 200
                it = r.iter_lines()
                assert [json.loads(next(it))["uid"] for _ in range(3)] == ["big-0", "big-1", "big-2"]
        for _ in range(5):  # a raw socket closed after the first bytes, without reading the rest
            host, port = server.url.rsplit("/", 1)[1].split(":")
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(f"GET {route} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n\r\n"
                             .encode())
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10
        while server._server.server_state.tasks and time.monotonic() < deadline:  # abandoned passes wind down
            time.sleep(0.05)
        assert not server._server.server_state.tasks
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
            assert http.get("/healthz").json() == {"ok": True}
            r = http.get(route, params={"chunk": 5, "nchunks": 6})
            assert r.status_code == 200 and len(lines(r)) == 10_000
    cat.close()


def test_openapi_docs(world: World) -> None:
    r = httpx.get(world.url + "/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    spec = httpx.get(world.url + "/openapi.json").json()
    paths = spec["paths"]
    for route in ("/api/user", "/api/database", "/api/database/query", "/api/database/{database}",
                  "/api/database/{database}/repository", "/api/database/{database}/repository/{namespace}/{name}",
                  "/api/database/{database}/repository/{namespace}/{name}/{tag_or_uid}",
                  "/api/database/{database}/repository/{namespace}/{name}/{uid}/split/{split}/stream"):
        assert route in paths, route
    stream = paths["/api/database/{database}/repository/{namespace}/{name}/{uid}/split/{split}/stream"]["get"]
    assert {p["name"] for p in stream["parameters"]} >= {"chunk", "nchunks", "shuffleSeed", "offset", "truncate"}
    assert "application/x-ndjson" in stream["responses"]["200"]["content"]


@pytest.mark.parametrize("workers", [1, 2])
def test_headwater_serve_command(tmp_path, workers: int) -> None:
    """``headwater serve`` in its own process (``--workers 2``: uvicorn's factory path in fresh processes)."""
    import signal
    import subprocess
    import sys

    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat, keys, db, v1, *_ = build(path, train=10)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "serve", "--catalog", path, "--port", str(port),
                             "--workers", str(workers), "--no-anonymous", "--log-level", "warning",
                             "--pool", f"acme/images={tmp_path}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        assert httpx.get(url + "/api/database").status_code == 401  # --no-anonymous
        with httpx.Client(base_url=url, headers=bearer(keys["alice"])) as http:
            for _ in range(4 * workers):  # several connections: with 2 workers both answer
                r = http.get(f"/api/database/{db['alices']}/repository/acme/cats/{v1}/split/train/stream",
                             params={"chunk": 1, "nchunks": 2}, headers={"Connection": "close"})
                assert r.status_code == 200 and len(lines(r)) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            raise
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    cat.close()


def test_dataset_pools_are_shown_as_server_urls_not_disk_paths(tmp_path) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    served = os.path.join(str(tmp_path), "pools", "images")
    cat = Catalog(path)
    key = make_user(cat, "alice")
    cat.create_database("alices", owner="alice")
    uid = cat.publish("alices", "acme", "cats", template=TEMPLATE, tags=["latest"], splits={"train": [droplet(0)]},
                      pools={"images": os.path.join(served, "cats"), "web": "https://example.org/pool",
                             "elsewhere": "/srv/not/served"}).uid
    with live_server(ServerConfig(path, pools={"acme/images": served})) as url:
        for ref in ("latest", uid):
            got = httpx.get(f"{url}/api/database/alices/repository/acme/cats/{ref}", headers=bearer(key)).json()
            assert got["pools"] == {"images": f"{url}/datasets/acme/images/resolve/main/cats",
                                    "web": "https://example.org/pool"}  # never a path on the server's disk
    cat.close()


def test_accepted_connections_get_tcp_nodelay_even_on_a_protocol_0_socket() -> None:
    """``--workers N``: uvicorn binds ``socket(family)`` (protocol 0), which asyncio does not treat as TCP."""
    import asyncio

    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.server import ServerState

    from headwater.server.runner import NoDelayHTTPProtocol, _uvicorn_options

    assert _uvicorn_options("info")["http"].func is NoDelayHTTPProtocol  # what serve() hands uvicorn (bound to limits)

    async def nodelay_of(protocol_class: type) -> int:
        async def app(scope: Any, receive: Any, send: Any) -> None:  # never called: no request is sent
            raise AssertionError

        config = uvicorn.Config(app, http=protocol_class, log_level="warning")
        config.load()
        made: list[Any] = []

        def factory() -> Any:
            made.append(protocol_class(config=config, server_state=ServerState(), app_state={}))
            return made[-1]

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as uvicorn's bind_socket does
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.get_running_loop().create_server(factory, sock=listener)
        _reader, writer = await asyncio.open_connection(*listener.getsockname())
        for _ in range(200):
            if made and made[0].transport is not None:
                break
            await asyncio.sleep(0.01)
        value = made[0].transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        made[0].transport.close()
        server.close()
        return int(value)

    assert asyncio.run(nodelay_of(NoDelayHTTPProtocol)) != 0
    assert asyncio.run(nodelay_of(H11Protocol)) == 0  # the stock protocol leaves Nagle on: why the class exists
