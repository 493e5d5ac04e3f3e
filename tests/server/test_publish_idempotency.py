"""A publish commits once or not at all, also when its client retries: ``Idempotency-Key`` on a live server.

The lost answer is real: a TCP proxy on 127.0.0.1 passes the publish to the server and, once the server has
answered (it answers only after the commit), closes the client's connection without passing the answer on.
headwater's client then sends the publish again with the same key and must get the one dataset back.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from headwater.catalog import Catalog
from headwater.client import Api, HttpTransport
from headwater.server.app import ServerConfig

from ..support.servers import bearer, live_server, make_user

REPO = "/api/database/main/repository/acme/cats"


def _droplet(i: int) -> dict[str, Any]:
    return {"kind": "ImageAnnotation", "image": {"paths": [f"https://example.org/{i}.jpg"]}, "classes": {}}


def _body(n: int, tags: tuple[str, ...] = ("latest",)) -> bytes:
    lines = [{"tags": list(tags)}, *({"split": "train", "droplet": _droplet(i)} for i in range(n))]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _datasets(catalog: Catalog) -> list[str]:
    return [d.uid for d in catalog.datasets("main", "acme", "cats")]


@pytest.fixture
def server(catalog_url: str) -> Iterator[tuple[str, Catalog, str, str]]:
    """A live server over a SQLite and over a PostgreSQL catalog; alice and bob may write ``main``."""
    catalog = Catalog(catalog_url)
    alice, bob = make_user(catalog, "alice", permission="write"), make_user(catalog, "bob", permission="write")
    catalog.create_database("main")
    with live_server(ServerConfig(catalog_url)) as url:
        yield url, catalog, alice, bob
    catalog.close()


def _post(url: str, secret: str, body: bytes, key: str | None) -> httpx.Response:
    headers = {**bearer(secret), "Content-Type": "application/x-ndjson"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(url + REPO + "/publish", content=body, headers=headers, timeout=60)


def test_the_same_key_publishes_once_and_answers_again_with_that_dataset(server) -> None:
    url, catalog, alice, bob = server
    first = _post(url, alice, _body(5), "k-1")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = _post(url, alice, _body(5), "k-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert _datasets(catalog) == [first.json()["uid"]]

    other = _post(url, alice, _body(6), "k-1")  # the same key for something else: refused, nothing written
    assert other.status_code == 422
    assert "k-1" in other.json()["error"] and first.json()["uid"] in other.json()["error"]
    assert _datasets(catalog) == [first.json()["uid"]]

    bobs = _post(url, bob, _body(5), "k-1")  # keys are per user
    assert bobs.status_code == 201 and bobs.json()["uid"] != first.json()["uid"]
    assert _post(url, alice, _body(5), None).status_code == 201  # no key: a new dataset each time, as before
    assert len(_datasets(catalog)) == 3
    bad = _post(url, alice, _body(5), "not a key")
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]


def test_concurrent_publishes_with_one_key_commit_one_dataset(server) -> None:
    url, catalog, alice, _bob = server
    body = _body(2000)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _post(url, alice, body, "same-key"), range(4)))
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    uids = {a.json()["uid"] for a in answers}
    assert len(uids) == 1 and _datasets(catalog) == list(uids)
    assert catalog.split_count(uids.pop(), "train") == 2000


class _LosingProxy:
    """Forwards TCP to ``upstream``; the first time the server answers a publish, the answer is dropped and
    the client's connection closed (the publish committed, the client never hears it)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dropped = 0
        self.publishes = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        publishing = threading.Event()

        def up() -> None:
            try:
                while data := client.recv(65536):
                    if b"/publish " in data and data.startswith(b"POST "):
                        with self._lock:
                            self.publishes += 1
                        publishing.set()
                    server.sendall(data)
            except OSError:
                pass
            finally:
                server.close()

        threading.Thread(target=up, daemon=True).start()
        try:
            while data := server.recv(65536):
                if publishing.is_set():
                    with self._lock:
                        drop = self.dropped == 0
                        self.dropped += drop
                    if drop:
                        client.shutdown(socket.SHUT_RDWR)
                        return
                    publishing.clear()
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            server.close()

    def close(self) -> None:
        self.listener.close()


def test_a_publish_whose_answer_is_lost_is_retried_and_commits_once(server, tmp_path) -> None:
    url, catalog, alice, _bob = server
    proxy = _LosingProxy(url)
    try:
        transport = HttpTransport(proxy.url, api_key=alice, timeout=30)
        answer = transport.publish("main", "acme", "cats", [("train", _droplet(i)) for i in range(50)])
        assert proxy.dropped == 1 and proxy.publishes == 2  # the answer was lost once; the client sent again
        assert _datasets(catalog) == [answer["uid"]]
        assert catalog.dataset("main", "acme", "cats", "latest").uid == answer["uid"]
        assert catalog.split_count(answer["uid"], "train") == 50

        # the same through the Api, from a JSONL file (a new publish: a new key, a new dataset)
        path = tmp_path / "a.jsonl"
        path.write_text("".join(json.dumps(_droplet(i)) + "\n" for i in range(7)))
        proxy.dropped = 0
        dataset = Api(alice, url=proxy.url).publish("main", "acme/cats", str(path))
        assert proxy.dropped == 1
        assert sorted(_datasets(catalog)) == sorted([answer["uid"], dataset.uid])
    finally:
        proxy.close()
