"""Remote mode: ``Api(url=…, api_key=…)`` against a live uvicorn server equals ``Api(catalog=…)`` call for call.

Also: the stream cache in remote mode, retries (a fault-injecting ASGI wrapper around the real app, in this
test only), and stream resume through a real TCP proxy that cuts connections mid-body.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from headwater.catalog import Catalog, NotFoundError
from headwater.client import (
    Api,
    ClientError,
    HttpTransport,
    RemoteAuthError,
    RemoteNotFoundError,
    RemoteUnavailableError,
    StreamCache,
    StreamKey,
)
from headwater.server.app import ServerConfig, create_app
from headwater.storage.retry import RetryPolicy

from ..support.servers import live_server, make_user

TEMPLATE = {"kind": "ImageAnnotationTemplate",
            "classes": {"cat": {"instances": {"boundingBox": True}}, "dog": {"instances": {"boundingBox": True}}}}
FAST = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


def droplet(i: int, version: int = 1) -> bytes:
    name = ("cat", "dog")[i % 2]
    boxes = [{"boundingBox": {"rectangle": [[0.1, 0.1], [0.2 + 0.001 * (i % 500), 0.5]]}}] * (1 + i % 3)
    return msgspec.json.encode({"kind": "ImageAnnotation", "uid": f"v{version}-{i}",
                                "image": {"paths": [f"pool://imgs/{i}.jpg"]},
                                "classes": {name: {"instances": boxes, "multiInstances": []}},
                                "metadata": {"pad": "x" * (i % 40)}})


N_TRAIN = 2500


@dataclass
class World:
    url: str
    path: str
    key: str
    write_key: str
    v1: str
    v2: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path = str(tmp_path_factory.mktemp("remote") / "catalog.sqlite")
    with Catalog(path) as cat:
        cat.create_database("main")  # no owner: shared by every key holder
        cat.create_database("other")
        v1 = cat.publish("main", "acme", "pets", template=TEMPLATE, tags=("latest", "v1"),
                         splits={"train": [droplet(i) for i in range(N_TRAIN)],
                                 "validation": [droplet(i) for i in range(5000, 5013)], "empty": []},
                         pools={"imgs": "https://images.example.org/pets"}).uid
        v2 = cat.publish("main", "acme", "pets", template=TEMPLATE,
                         splits={"train": [droplet(i, 2) for i in range(20)]}).uid
        cat.publish("main", "acme", "birds", template=TEMPLATE, splits={"train": [droplet(2)]})
        cat.publish("other", "x", "y", template=TEMPLATE, splits={"train": [droplet(3)]})
        key = make_user(cat, "alice")
        write_key = make_user(cat, "alice", permission="write")
        cat.choose_default_database("alice", "main")
    with live_server(ServerConfig(path)) as url:
        yield World(url, path, key, write_key, v1, v2)


def remote(w: World, **kw: Any) -> Api:
    kw.setdefault("cache", False)
    return Api(url=w.url, api_key=w.key, **kw)


def local(w: World, **kw: Any) -> Api:
    kw.setdefault("cache", False)
    return Api(catalog=w.path, default_database="main", **kw)


def tags_of(repo: Any) -> list[tuple[str, str, list[tuple[str, int]], Any]]:
    return [(t.tag, t.dataset, [(s.split, s.annotation_count) for s in t.splits], t.updated_at) for t in repo.tags]


def test_metadata_calls_match_the_embedded_api(world: World) -> None:
    r, e = remote(world), local(world)
    assert [(d.uid, d.name) for d in r.get_database_list()] == [(d.uid, d.name) for d in e.get_database_list()]
    assert r.get_current_user().username == "alice"
    assert r.get_default_database().uid == e.get_default_database().uid
    rdb, edb = r.get_database_by_name("main"), e.get_database_by_name("main")
    assert (rdb.uid, rdb.name, rdb.connection_options) == (edb.uid, edb.name, edb.connection_options)
    assert r.get_database_by_uid(rdb.uid).name == "main"
    assert r.get_database_by_name("nope", allow_multiple=True) == []
    with pytest.raises(NotFoundError, match="database 'nope' not found"):
        r.get_database_by_name("nope")
    assert [(x.namespace, x.name, tags_of(x)) for x in rdb.get_repository_list()] == \
           [(x.namespace, x.name, tags_of(x)) for x in edb.get_repository_list()]
    assert tags_of(rdb.get_repository("acme/pets")) == tags_of(edb.get_repository("acme", "pets"))
    for ref in ("latest", "v1", world.v1, world.v2):
        a, b = rdb.get_dataset(f"acme/pets:{ref}"), edb.get_dataset("acme", "pets", ref)
        assert (a.uid, a.database, a.splits, a.template_json, a.pools, a.get_stable_identifier()) == \
               (b.uid, b.database, b.splits, b.template_json, b.pools, b.get_stable_identifier())
        assert a.template == b.template
        assert {s: a.split_count(s) for s in a.splits} == {s: b.split_count(s) for s in b.splits}


@pytest.mark.parametrize(("chunk", "nchunks", "seed", "offset", "truncate"), [
    (0, 1, None, 0, None), (1, 3, None, 0, None), (2, 3, None, 17, None), (6, 7, None, 0, None),
    (0, 1, 5, 0, None), (3, 4, 11, 100, None), (1, 2, None, 0, 333), (0, 5, 2, 3, 1000), (9, 10, None, 0, None),
])
def test_streams_match_the_embedded_api(world: World, chunk: int, nchunks: int, seed: int | None, offset: int,
                                        truncate: int | None) -> None:
    a = remote(world).get_database_by_name("main").get_dataset("acme/pets:v1")
    b = local(world).get_database_by_name("main").get_dataset("acme/pets:v1")
    want = list(b.stream_split("train", chunk, nchunks, raw=True, shuffle_seed=seed, offset=offset, truncate=truncate))
    got = list(a.stream_split("train", chunk, nchunks, raw=True, shuffle_seed=seed, offset=offset, truncate=truncate))
    assert got == want and want
    decoded = list(a.stream_split("train", chunk, nchunks, shuffle_seed=seed, offset=offset, truncate=truncate))
    assert [d.uid for d in decoded] == [msgspec.json.decode(x)["uid"] for x in want]


def test_every_chunking_covers_the_split_once(world: World) -> None:
    ds = remote(world).get_database_by_name("main").get_dataset("acme/pets:v1")
    full = list(ds.stream_split("train", raw=True))
    assert len(full) == N_TRAIN
    for n in (2, 7):
        got = [line for k in range(n) for line in ds.stream_split("train", k, n, raw=True)]
        assert got == full
    shuffled = [line for k in range(3) for line in ds.stream_split("train", k, 3, shuffle_seed=1, raw=True)]
    assert sorted(shuffled) == sorted(full) and shuffled != full
    assert list(ds.stream_split("empty", raw=True)) == []
    assert [d.uid for d in ds.query("validation", classes="cat")] == \
           [d.uid for d in local(world).get_database_by_name("main").get_dataset("acme/pets:v1").query(
               "validation", classes="cat")]


def test_blocks_are_whole_lines_and_big(world: World) -> None:
    transport = HttpTransport(world.url, world.key, block_bytes=64 << 10)
    db = transport.current_user()["defaultDatabase"]
    blocks = list(transport.stream_blocks(db, "acme", "pets", world.v1, "train", 0, 1))
    assert all(b.endswith(b"\n") for b in blocks)
    assert len(blocks) < N_TRAIN / 50  # many droplets a block, not one
    assert b"".join(blocks).count(b"\n") == N_TRAIN


def test_stream_cache_works_remotely(world: World, tmp_path: Any) -> None:
    cache = StreamCache(tmp_path / "streams")
    api = remote(world, cache=cache)
    ds = api.get_database_by_name("main").get_dataset("acme/pets:v1")
    first = list(ds.stream_split("train", 1, 4, raw=True))
    assert cache.lookup(StreamKey(world.v1, "train", 1, 4)) is not None
    transport = api.transport
    assert isinstance(transport, HttpTransport)
    sent = transport.requests
    assert list(ds.stream_split("train", 1, 4, raw=True)) == first  # replayed: no request
    assert list(ds.stream_split("train", 1, 4, offset=10, raw=True)) == first[10:]
    assert transport.requests == sent


def test_remote_dataset_pickles_for_workers(world: World) -> None:
    ds = remote(world).get_database_by_name("main").get_dataset("acme/pets:latest")
    copy = pickle.loads(pickle.dumps(ds))
    assert list(copy.stream_split("train", raw=True)) == list(ds.stream_split("train", raw=True))
    assert world.key not in repr(ds._ctx.transport)  # the key is never shown


def test_errors_are_clear_and_typed(world: World) -> None:
    api = remote(world)
    db = api.get_database_by_name("main")
    with pytest.raises(RemoteNotFoundError, match="nope") as info:
        db.get_dataset("acme/pets:nope")
    assert isinstance(info.value, NotFoundError) and isinstance(info.value, KeyError) and info.value.status == 404
    with pytest.raises(NotFoundError):
        db.get_repository("acme/none")
    with pytest.raises(RemoteAuthError, match="invalid or revoked") as auth:
        Api(url=world.url, api_key="hw_000000000000_not-a-key", cache=False).get_database_list()
    assert auth.value.status == 401
    with pytest.raises(RemoteAuthError):  # anonymous: no user
        Api(url=world.url, cache=False).get_current_user()
    assert Api(url=world.url, cache=False).get_database_list() == []  # nothing public
    with pytest.raises(RemoteUnavailableError, match="still failing after 2 attempts"):
        Api(transport=HttpTransport("http://127.0.0.1:9", retry=RetryPolicy(2, 0.0)), cache=False).get_database_list()
    with pytest.raises(ClientError):
        HttpTransport("ftp://x")
    with pytest.raises(ClientError, match="not both"):
        Api(catalog=world.path, url=world.url)


# -- retries: the real app behind a fault-injecting ASGI wrapper ---------------------------------------
class Flaky:
    """Answers the first ``fail`` requests of each path with ``status`` (and ``Retry-After``), then passes through."""

    def __init__(self, app: Any, fail: int, status: int = 503, retry_after: str | None = "0") -> None:
        self.app, self.fail, self.status, self.retry_after = app, fail, status, retry_after
        self.seen: dict[str, int] = {}
        self.hits: list[tuple[str, float]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        self.hits.append((path, time.monotonic()))
        count = self.seen[path] = self.seen.get(path, 0) + 1
        if count <= self.fail:
            headers = [(b"content-type", b"application/json")]
            if self.retry_after is not None:
                headers.append((b"retry-after", self.retry_after.encode()))
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"error": "injected failure"}'})
            return None
        return await self.app(scope, receive, send)


def test_retries_transient_failures(world: World) -> None:
    flaky = Flaky(create_app(ServerConfig(world.path)), fail=2)
    with live_server(flaky) as url:
        transport = HttpTransport(url, world.key, retry=FAST)
        api = Api(transport=transport, cache=False)
        ds = api.get_database_by_name("main").get_dataset("acme/pets:v1")  # each path fails twice first
        assert list(ds.stream_split("validation", raw=True)) == \
               list(local(world).get_database_by_name("main").get_dataset("acme/pets:v1").stream_split(
                   "validation", raw=True))
        assert transport.retried >= 8 and all(v == 3 for v in flaky.seen.values())


def test_gives_up_with_the_servers_message_and_honours_retry_after(world: World) -> None:
    flaky = Flaky(create_app(ServerConfig(world.path)), fail=100, status=429, retry_after="1")
    with live_server(flaky) as url:
        transport = HttpTransport(url, world.key, retry=RetryPolicy(attempts=2, base_delay=0.0))
        start = time.monotonic()
        with pytest.raises(RemoteUnavailableError, match=r"injected failure.*still failing after 2") as info:
            transport.databases()
        assert time.monotonic() - start >= 0.9  # waited the Retry-After second, not the 0 s backoff
        assert info.value.status == 429 and len(flaky.hits) == 2
    flaky = Flaky(create_app(ServerConfig(world.path)), fail=1, status=400)
    with live_server(flaky) as url:
        transport = HttpTransport(url, world.key, retry=FAST)
        with pytest.raises(ClientError, match="injected failure"):  # 4xx: never retried
            transport.databases()
        assert len(flaky.hits) == 1


# -- stream resume through a TCP proxy that cuts connections ---------------------------------------------
class CuttingProxy:
    """A TCP proxy to ``upstream``; the first ``cuts`` connections are closed after relaying ``after`` bytes
    from the server (mid-line, mid-chunk), the rest pass through untouched."""

    def __init__(self, upstream: str, *, after: int, cuts: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.after, self.cuts = after, cuts
        self.connections = 0
        self.cut = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            limit = self.after if self.connections <= self.cuts else None
            threading.Thread(target=self._serve, args=(client, limit), daemon=True).start()

    def _serve(self, client: socket.socket, limit: int | None) -> None:
        server = socket.create_connection(self.upstream)

        def up() -> None:
            try:
                while data := client.recv(65536):
                    server.sendall(data)
            except OSError:
                pass

        threading.Thread(target=up, daemon=True).start()
        sent = 0
        try:
            while data := server.recv(65536):
                if limit is not None and sent + len(data) >= limit:
                    client.sendall(data[: limit - sent])
                    self.cut += 1
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def test_stream_resumes_after_cut_connections_exactly_once_in_order(world: World) -> None:
    want = list(local(world).get_database_by_name("main").get_dataset("acme/pets:v1").stream_split(
        "train", 0, 1, shuffle_seed=3, raw=True))
    size = sum(len(x) + 1 for x in want)
    proxy = CuttingProxy(world.url, after=size // 4 + 7, cuts=3)
    try:
        transport = HttpTransport(proxy.url, world.key, retry=FAST, block_bytes=8 << 10)
        ds = Api(transport=transport, cache=False).get_database_by_name("main").get_dataset("acme/pets:v1")
        got = list(ds.stream_split("train", 0, 1, shuffle_seed=3, raw=True))
        assert got == want
        assert proxy.cut == 3 and transport.retried >= 3
        # and through the cache: the entry filled across the resumes is complete and exact
        cache_api = Api(transport=HttpTransport(proxy.url, world.key, retry=FAST), cache=StreamCache(
            os.path.join(os.environ["HEADWATER_CACHE"], "resume")))
        proxy.cuts = proxy.connections + 2  # the next two connections are cut too
        ds2 = cache_api.get_database_by_name("main").get_dataset("acme/pets:v1")
        assert list(ds2.stream_split("train", 1, 2, raw=True)) == list(
            local(world).get_database_by_name("main").get_dataset("acme/pets:v1").stream_split("train", 1, 2, raw=True))
        assert cache_api.cache is not None and cache_api.cache.lookup(StreamKey(world.v1, "train", 1, 2)) is not None
    finally:
        proxy.close()


def test_stream_gives_up_when_the_connection_keeps_breaking(world: World) -> None:
    proxy = CuttingProxy(world.url, after=100, cuts=1000)  # inside the response headers: never any progress
    try:
        transport = HttpTransport(proxy.url, world.key, retry=RetryPolicy(3, 0.0))
        db = Api(url=world.url, api_key=world.key, cache=False).get_default_database().uid
        got = 0
        with pytest.raises(RemoteUnavailableError, match="still failing after 3 attempts"):
            for block in transport.stream_blocks(db, "acme", "pets", world.v1, "train", 0, 1):
                got += block.count(b"\n")
        assert got == 0 and proxy.cut == 3
    finally:
        proxy.close()


def test_publish_is_retried_with_its_idempotency_key(world: World) -> None:
    pools = {"imgs": "https://images.example.org/pets"}
    items = [("train", droplet(i)) for i in range(3)]
    flaky = Flaky(create_app(ServerConfig(world.path)), fail=1, status=503)
    with live_server(flaky) as url:
        transport = HttpTransport(url, world.write_key, retry=FAST)
        made = transport.publish("main", "acme", "retried", items, pools=pools, tags=())
        assert made["splitCounts"] == {"train": 3} and transport.retried == 1
        with pytest.raises(RemoteUnavailableError, match="cannot be read again"):
            transport.publish("main", "acme", "retried2", iter(items), pools=pools, tags=())
    flaky = Flaky(create_app(ServerConfig(world.path)), fail=1, status=500)
    with live_server(flaky) as url:
        transport = HttpTransport(url, world.write_key, retry=FAST)
        # a 500 may come after the work was done: sent again, with the same Idempotency-Key, it commits once
        again = transport.publish("main", "acme", "retried3", lambda: iter(items), pools=pools, tags=())
        assert len(flaky.hits) == 2 and transport.retried == 1
    with Catalog(world.path) as cat:
        assert [d.uid for d in cat.datasets("main", "acme", "retried")] == [made["uid"]]
        assert [d.uid for d in cat.datasets("main", "acme", "retried3")] == [again["uid"]]
        assert [r.name for r in cat.repositories("main")] == ["birds", "pets", "retried", "retried3"]


def test_remote_errors_keep_every_field_across_a_pickle():
    import pickle

    from headwater.client import RemoteRequestError

    err = RemoteRequestError("refused", status=400, url="http://h/x", body={"error": "refused"},
                             headers={"X-Error-Code": "Bad"})
    err.problems, err.total = [("line 3", "invalid JSON")], 7
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.status, back.url, back.body, back.headers, back.problems, back.total) == (
        RemoteRequestError, "refused", 400, "http://h/x", {"error": "refused"}, {"X-Error-Code": "Bad"},
        [("line 3", "invalid JSON")], 7)
