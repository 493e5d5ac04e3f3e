"""Dataset writes over HTTP against a live server: publish (NDJSON), tag moves, tag history, access rules."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from headwater.catalog import Catalog
from headwater.client import (
    Api,
    HttpTransport,
    RemoteAuthError,
    RemoteNotFoundError,
    RemoteRequestError,
)
from headwater.publish import PublishError
from headwater.server.app import ServerConfig

from ..support.datasets import box, write_jsonl
from ..support.servers import bearer, live_server, make_user

LIMIT = 64 << 10


@dataclass
class World:
    url: str
    catalog: Catalog
    read: str
    write: str
    bob_write: str

    def post(self, path: str, body: bytes | Iterator[bytes], key: str | None = "write") -> httpx.Response:
        headers = {**bearer(getattr(self, key) if key else None), "Content-Type": "application/x-ndjson"}
        return httpx.post(self.url + path, content=body, headers=headers, timeout=30)


@pytest.fixture
def world(catalog_url: str) -> Iterator[World]:
    """A live server over a SQLite and over a PostgreSQL catalog."""
    path = catalog_url
    cat = Catalog(path)
    read, write = make_user(cat, "alice"), make_user(cat, "alice", permission="write")
    bob_write = make_user(cat, "bob", permission="write")
    cat.create_database("main", owner="alice")
    cat.choose_default_database("alice", "main")
    cat.create_database("bobs", owner="bob", public=True)
    with live_server(ServerConfig(path, max_upload_bytes=LIMIT)) as url:
        yield World(url, cat, read, write, bob_write)
    cat.close()


def row(i: int, split: str | None = "train", **extra: Any) -> dict[str, Any]:
    d = {"kind": "ImageAnnotation", "uid": f"d{i}", "image": {"paths": [f"pool://images/{i}.jpg"]},
         "classes": {"cat": {"instances": [box(0.1, 0.1, 0.3, 0.2 + i / 1000)]}}}
    line: dict[str, Any] = {"droplet": d, **extra}
    if split is not None:
        line["split"] = split
    return line


def ndjson(header: dict[str, Any], rows: list[Any]) -> bytes:
    return b"".join((r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in [header, *rows])


POOLS = {"images": "https://images.example.org/cats"}
PUBLISH = "/api/database/main/repository/acme/cats/publish"


def test_publish_over_http_then_stream_back(world: World) -> None:
    rows = [row(i, "train" if i % 4 else "validation") for i in range(40)]
    r = world.post(PUBLISH, ndjson({"pools": POOLS, "tags": ["latest", "v1"]}, rows))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["splitCounts"] == {"train": 30, "validation": 10} and body["tags"] == ["latest", "v1"]
    assert body["pools"] == POOLS and body["repository"] == {"namespace": "acme", "name": "cats"}
    uid = body["uid"]
    assert world.catalog.dataset("main", "acme", "cats", "v1").uid == uid
    api = Api(url=world.url, api_key=world.read, cache=False)
    ds = api.get_default_database().get_dataset("acme/cats:latest")
    assert ds.uid == uid and ds.template_json["classes"]["cat"]["instances"]["boundingBox"] is True
    got = [d.uid for d in ds.stream_split("train")]
    assert got == [f"d{i}" for i in range(40) if i % 4]  # the order of the body
    # a chunked (streamed, no Content-Length) body works the same
    chunks = iter([ndjson({"pools": POOLS}, rows[:3]), ndjson({}, rows[3:5])[3:]])
    r = world.post(PUBLISH, chunks)
    assert r.status_code == 201, r.text
    assert r.json()["splitCounts"] == {"validation": 2, "train": 3}


def test_bad_droplets_are_refused_with_line_numbers_and_nothing_is_written(world: World) -> None:
    bad_box = row(2)
    bad_box["droplet"]["classes"]["cat"]["instances"][0]["boundingBox"]["rectangle"] = [[0.5, 0.5], [0.5, 0.9]]
    rows = [row(0), row(1), bad_box, "{not json", row(4, image=1), row(5), ["x"]]
    local = row(7)
    local["droplet"]["image"]["paths"] = ["/etc/passwd"]
    unknown_pool = row(8)
    unknown_pool["droplet"]["image"]["paths"] = ["pool://elsewhere/1.jpg"]
    r = world.post(PUBLISH, ndjson({"pools": POOLS}, [*rows, local, unknown_pool, row(9, "bad split!")]))
    assert r.status_code == 400, r.text
    body = r.json()
    assert "nothing was published" in body["error"]
    where = [p["where"] for p in body["problems"]]
    assert where == ["line 4", "line 5", "line 6", "line 8", "line 9", "line 10", "line 11"], body
    text = json.dumps(body["problems"])
    assert "rectangle" in text and "invalid JSON" in text and "local file path" in text and "'elsewhere'" in text
    assert body["total"] == 7
    with pytest.raises(Exception, match="not found"):
        world.catalog.repository("main", "acme", "cats")  # not even the repository was created
    r = world.post(PUBLISH, ndjson({"pools": POOLS, "maxProblems": 2}, [bad_box, bad_box, bad_box]))
    assert r.status_code == 400 and len(r.json()["problems"]) == 2 and r.json()["total"] == 3
    for header, message in (({"tags": "latest"}, "line 1"), ({"typo": 1}, "line 1"),
                            ({"pools": {"images": "/srv/local"}}, "not a URL")):
        r = world.post(PUBLISH, ndjson(header, [row(0)]))
        assert r.status_code == 400 and message in r.json()["error"], r.text
    assert world.post(PUBLISH, b"").status_code == 400
    r = world.post(PUBLISH, ndjson({"pools": POOLS}, []))
    assert r.status_code == 400 and "no droplets" in r.json()["error"]
    r = world.post("/api/database/main/repository/acme/bad name!/publish", ndjson({"pools": POOLS}, [row(0)]))
    assert r.status_code == 400


def test_access_rules(world: World) -> None:
    body = ndjson({"pools": POOLS}, [row(0)])
    r = world.post(PUBLISH, body, key=None)
    assert r.status_code == 401 and "authentication required" in r.json()["error"]
    r = world.post(PUBLISH, body, key="read")
    assert r.status_code == 403 and "read-only" in r.json()["error"]
    r = world.post("/api/database/bobs/repository/acme/cats/publish", body)  # public, but bob's
    assert r.status_code == 403 and "may not write" in r.json()["error"]
    r = world.post("/api/database/nope/repository/acme/cats/publish", body)
    assert r.status_code == 404
    r = world.post(PUBLISH, body, key="bob_write")  # alice's private database is invisible to bob
    assert r.status_code == 404
    transport = HttpTransport(world.url, world.read)
    with pytest.raises(RemoteAuthError, match="read-only") as info:
        transport.publish("main", "acme", "cats", [("train", row(0)["droplet"])], pools=POOLS)
    assert info.value.status == 403


def test_oversized_bodies_get_413(world: World) -> None:
    rows = [row(i) for i in range(LIMIT // 150)]
    big = ndjson({"pools": POOLS}, rows)
    assert len(big) > LIMIT
    r = world.post(PUBLISH, big)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunked() -> Iterator[bytes]:
        yield big[:4096]
        yield big[4096:]

    try:
        r = world.post(PUBLISH, chunked())
        assert r.status_code == 413
    except httpx.TransportError:  # the server may close the connection before the client finished sending
        pass
    with pytest.raises(Exception, match="not found"):
        world.catalog.repository("main", "acme", "cats")
    ok = world.post(PUBLISH, ndjson({"pools": POOLS}, rows[:50]))
    assert ok.status_code == 201  # the server is fine afterwards


def test_move_tags_and_history(world: World) -> None:
    first = world.post(PUBLISH, ndjson({"pools": POOLS, "tags": ["latest", "stable"]}, [row(0)])).json()["uid"]
    second = world.post(PUBLISH, ndjson({"pools": POOLS}, [row(1), row(2)])).json()["uid"]
    api = Api(url=world.url, api_key=world.write, cache=False)
    repo = api.get_default_database().get_repository("acme/cats")
    assert {t.tag: t.dataset for t in repo.tags} == {"latest": second, "stable": first}
    moved = repo.move_tag("stable", second)
    assert moved.dataset == second and [s.annotation_count for s in moved.splits] == [2]
    assert {t.tag: t.dataset for t in repo.tags} == {"latest": second, "stable": second}
    repo.move_tag("old", first)  # a new tag
    repo.move_tag("stable", "old")  # by another tag
    events = [(e.tag, e.previous, e.dataset) for e in world.catalog.tag_history("main", "acme", "cats")]
    assert events[-3:] == [("stable", first, second), ("old", None, first), ("stable", second, first)]
    history = repo.tag_history("stable")
    assert [(h["previous"], h["dataset"]) for h in history] == [(None, first), (first, second), (second, first)]
    assert all(isinstance(h["movedAt"], int) for h in history)
    assert Api(url=world.url, api_key=world.read, cache=False).get_default_database().get_repository(
        "acme/cats").tag_history() == repo.tag_history()
    put = f"{world.url}/api/database/main/repository/acme/cats/tag/stable"
    r = httpx.put(put, json={"dataset": second}, headers=bearer(world.read))
    assert r.status_code == 403
    r = httpx.put(put, json={"dataset": second})
    assert r.status_code == 401
    r = httpx.put(put, json={"dataset": "no-such-uid"}, headers=bearer(world.write))
    assert r.status_code == 404 and "no-such-uid" in r.json()["error"]
    r = httpx.put(put, json={}, headers=bearer(world.write))
    assert r.status_code == 400
    r = httpx.put(put.replace("/stable", "/bad%20tag"), json={"dataset": first}, headers=bearer(world.write))
    assert r.status_code == 400
    r = httpx.put(put, json={"dataset": first}, headers=bearer(world.write))
    assert r.status_code == 200 and r.json()["previous"] == first  # already there: nothing recorded
    assert len(world.catalog.tag_history("main", "acme", "cats", "stable")) == 3
    with pytest.raises(RemoteNotFoundError):
        repo.move_tag("stable", "nope")


def test_database_publish_in_remote_mode_matches_embedded(world: World, tmp_path: Any) -> None:
    rows = [row(i)["droplet"] for i in range(30)]
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    remote = Api(url=world.url, api_key=world.write, cache=False).get_default_database()
    ds = remote.publish("acme/cats", path, pools=POOLS, splits={"validation": 0.3}, split_seed=4, tags=("v1",))
    local_path = str(tmp_path / "local.sqlite")
    with Catalog(local_path) as cat:
        cat.create_database("main")
    local = Api(catalog=local_path, cache=False).get_database_by_name("main")
    other = local.publish("acme/cats", path, pools=POOLS, splits={"validation": 0.3}, split_seed=4, tags=("v1",))
    assert ds.splits == other.splits and ds.template_json == other.template_json and ds.pools == other.pools
    for split in ds.splits:
        assert list(ds.stream_split(split, raw=True)) == list(other.stream_split(split, raw=True))
    assert world.catalog.dataset("main", "acme", "cats", "v1").uid == ds.uid

    # refused locally, before anything is sent: the problems name the file's lines
    bad = write_jsonl(str(tmp_path / "bad.jsonl"), [rows[0], "{oops", rows[1]])
    with pytest.raises(PublishError, match="line 2: invalid JSON"):
        remote.publish("acme/cats", bad, pools=POOLS)
    # refused (the droplets name pool 'images', which no pool given is): the file's own line numbers
    with pytest.raises(PublishError, match=r"line 3: .*'images'") as info:
        remote.publish("acme/cats", path)
    assert info.value.total == 30 and info.value.problems[0].where == "line 1"
    # local image files cannot go over HTTP (they would need a pool upload first)
    os.makedirs(tmp_path / "imgs", exist_ok=True)
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"jpeg")
    img = write_jsonl(str(tmp_path / "imgs.jsonl"), [{**rows[0], "image": {"paths": ["imgs/a.jpg"]}}])
    with pytest.raises(PublishError, match="local image file"):
        remote.publish("acme/cats", img)
    assert len(world.catalog.datasets("main", "acme", "cats")) == 1
    with pytest.raises(RemoteRequestError, match="maxProblems"):
        HttpTransport(world.url, world.write).publish("main", "acme", "cats", iter([("train", rows[0])]),
                                                      max_problems=0)


def test_cli_publish_tag_and_stream_against_a_server(world: World, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from headwater.cli import main

    def run(*args: str, **env: str) -> Any:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False,
                                    env={"HEADWATER_SERVER": None, "HEADWATER_API_KEY": None, **env})
        return result.exit_code, result.stdout, result.stderr

    rows = [row(i)["droplet"] for i in range(12)]
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    server = ("--server", world.url, "--api-key", world.write)
    code, out, err = run("publish", path, "--repo", "main/acme/cats", "--pool-url", f"images={POOLS['images']}",
                         "--split", "validation=25%", "--tag", "v1", "-q", *server)
    assert code == 0, err
    uid = world.catalog.dataset("main", "acme", "cats", "v1").uid
    assert f"published dataset {uid}" in out and "images = https://images.example.org/cats" in out
    code, out, err = run("publish", path, "--repo", "main/acme/cats", "-q", *server)  # no pool for the refs
    assert code == 2 and "line 1:" in err and "'images'" in err
    code, out, err = run("tag", "main/acme/cats", "stable", "v1", "--server", world.url, HEADWATER_API_KEY=world.write)
    assert code == 0 and out.strip() == f"stable: (new tag) -> {uid}", err
    code, out, err = run("tag", "main/acme/cats", "--history", HEADWATER_SERVER=world.url, HEADWATER_API_KEY=world.read)
    assert code == 0 and f"stable\t(new) -> {uid}" in out and "2 move(s)" in out
    code, out, err = run("tag", "main/acme/cats", *server[:2], "--api-key", world.read)
    assert code == 0 and out.count(uid) == 2
    code, out, err = run("tag", "main/acme/cats", "x", "v1", *server[:2], "--api-key", world.read)
    assert code == 3 and "read-only" in err  # credentials refused: nothing could be done
    code, out, err = run("stream", "main/acme/cats:stable", "train", "--nchunks", "2", "--chunk", "1", *server)
    assert code == 0, err
    want = list(Api(catalog=world.catalog, cache=False).get_database_by_name("main").get_dataset(
        "acme", "cats", uid).stream_split("train", 1, 2, raw=True))
    assert out.encode().splitlines() == want


def test_pools_served_by_the_server_are_stored_as_locations_and_read_as_its_urls(tmp_path: Any) -> None:
    from headwater.archive import pack_directory
    from headwater.droplet import ImageFetcher, ImageFetchError

    src, root = tmp_path / "src", tmp_path / "served"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.jpg").write_bytes(b"jpeg %d" % i)
    pack_directory(str(src), str(root / "cats" / "v1"), silent=True)
    path = str(tmp_path / "catalog.sqlite")
    with Catalog(path) as cat:
        key = make_user(cat, "alice", permission="write")
        cat.create_database("main", owner="alice")
    with live_server(ServerConfig(path, pools={"acme/images": str(root)})) as url:
        served = f"{url}/datasets/acme/images/resolve/main/cats/v1"
        rows = [row(i) for i in range(3)]
        r = httpx.post(url + PUBLISH, content=ndjson({"pools": {"images": served}}, rows), headers=bearer(key))
        assert r.status_code == 201, r.text
        assert r.json()["pools"] == {"images": served}
        with Catalog(path) as cat:
            assert cat.dataset("main", "acme", "cats", "latest").pools == {"images": str(root / "cats" / "v1")}
        dataset = Api(url=url, api_key=key, cache=False).get_database_by_name("main").get_dataset("acme/cats:latest")
        droplets = list(dataset.stream_split("train"))
        fetched = dataset.image_fetcher().fetch_many([d.image for d in droplets])  # with alice's key
        assert fetched == [b"jpeg 0", b"jpeg 1", b"jpeg 2"]
        with pytest.raises(ImageFetchError):  # the pool holds a private database's images: not for anonymous
            ImageFetcher(r.json()["pools"]).fetch_many([d.image for d in droplets])
        bad = f"{url}/datasets/acme/images/resolve/main/cats/../../../etc"
        r = httpx.post(url + PUBLISH, content=ndjson({"pools": {"images": bad}}, rows), headers=bearer(key))
        assert r.status_code == 400 and "unsafe path" in r.json()["error"]


def test_duplicate_uids_are_refused_naming_both_lines(world: World) -> None:
    rows = [row(0), row(1), row(2), row(3)]
    rows[3]["droplet"]["uid"] = "d1"
    r = world.post(PUBLISH, ndjson({"pools": POOLS}, rows))
    assert r.status_code == 400, r.text
    assert r.json()["problems"] == [{"where": "line 5", "message": "duplicate uid 'd1': line 3 has it too (every "
                                                                   "droplet of a dataset needs its own uid)"}]
    with pytest.raises(Exception, match="not found"):
        world.catalog.repository("main", "acme", "cats")


def test_refs_into_a_served_pool_must_name_members_it_holds(tmp_path) -> None:
    """The same rule as a local publish: a member the served pool does not hold is refused by line; a pool
    elsewhere is not opened by the server (it connects to no host a publisher names), only its name checked."""
    from headwater.archive import pack_directory
    from headwater.publish import publish

    (tmp_path / "src").mkdir()
    for i in (1, 2):
        (tmp_path / "src" / f"{i}.jpg").write_bytes(b"jpeg %d" % i)
    served = str(tmp_path / "served")
    pack_directory(str(tmp_path / "src"), served, silent=True)
    cat = Catalog(str(tmp_path / "catalog.sqlite"))
    write = make_user(cat, "alice", permission="write")
    cat.create_database("main", owner="alice")
    rows = [row(1), row(2), row(3)]  # pool://images/{1,2,3}.jpg: 3.jpg is not in the pool
    rows[2]["where"] = "cats.jsonl line 3"
    with live_server(ServerConfig(str(tmp_path / "catalog.sqlite"), pools={"acme/images": served})) as url:
        pools = {"images": f"{url}/datasets/acme/images/resolve/main"}
        headers = {**bearer(write), "Content-Type": "application/x-ndjson"}
        r = httpx.post(url + PUBLISH, content=ndjson({"pools": pools}, rows), headers=headers, timeout=30)
        assert r.status_code == 400, r.text
        [problem] = r.json()["problems"]
        assert problem["where"] == "cats.jsonl line 3" and "resource '3' is not in pool 'images'" in problem["message"]
        # the local publish of the same droplets against the same pool says the same
        path = write_jsonl(str(tmp_path / "d.jsonl"), [x["droplet"] for x in rows])
        with pytest.raises(PublishError) as info:
            publish(cat, "main", "acme", "cats", path, pools={"images": served}, silent=True)
        assert [(p.where, p.message) for p in info.value.problems] == [("line 3", problem["message"])]
        r = httpx.post(url + PUBLISH, content=ndjson({"pools": pools}, rows[:2]), headers=headers, timeout=30)
        assert r.status_code == 201, r.text
    cat.close()
