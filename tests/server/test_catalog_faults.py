"""The catalog under faults, against real ``headwater serve`` processes: PostgreSQL restarted while a request
is inside a transaction (a clean 503, nothing half-committed, the next request reconnects), and several
processes writing one SQLite file at once (each publish commits whole or is refused by name; the file stays
intact).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import headwater
from headwater.catalog import Catalog

from ..support.pgserver import PostgresServer
from ..support.servers import bearer, make_user, serve_process


def _body(n: int, tag: str = "latest") -> bytes:
    lines: list[dict[str, Any]] = [{"tags": [tag]}]
    lines += [{"split": "train", "droplet": {"kind": "ImageAnnotation", "classes": {},
                                             "image": {"paths": [f"https://example.org/{i}.jpg"]}}} for i in range(n)]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _publish(url: str, key: str, repo: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/api/database/main/repository/acme/{repo}/publish", content=body, timeout=120,
                      headers={**bearer(key), "Content-Type": "application/x-ndjson"})


@pytest.fixture
def restartable_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (the session's is shared: it is not restarted)."""
    with PostgresServer() as server:
        yield server


def _wait_for_a_lock_waiter(url: str) -> None:
    import psycopg

    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the server's request never waited on the lock")


def test_postgres_restarted_under_a_running_server(restartable_postgres: PostgresServer) -> None:
    import psycopg

    url = restartable_postgres.create_database()
    with Catalog(url) as catalog:
        key = make_user(catalog, "alice", permission="write")
        catalog.create_database("main", owner="alice")
    with serve_process(url) as server:
        assert httpx.get(server.url + "/api/database", headers=bearer(key)).status_code == 200
        locker = psycopg.connect(url)  # holds a lock the publish's insert waits for, so it is mid-transaction
        locker.execute("LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE")
        answer: list[httpx.Response] = []
        publishing = threading.Thread(target=lambda: answer.append(_publish(server.url, key, "cats", _body(300))))
        publishing.start()
        _wait_for_a_lock_waiter(url)
        restartable_postgres.restart()  # ends every session: the publish's transaction is rolled back
        publishing.join(120)
        locker.close()

        refused = answer[0]
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] and "unavailable" in refused.json()["error"]
        assert "Traceback" not in server.stderr()

        # the next requests reconnect; nothing of the interrupted publish was committed
        assert httpx.get(server.url + "/api/database", headers=bearer(key)).status_code == 200
        with Catalog(url) as catalog:
            assert catalog.repositories("main") == []
        again = _publish(server.url, key, "cats", _body(300))
        assert again.status_code == 201, again.text
        with Catalog(url) as catalog:
            assert [d.splits for d in catalog.datasets("main", "acme", "cats")] == [{"train": 300}]


def test_processes_writing_one_sqlite_file_at_once(tmp_path) -> None:
    path = str(tmp_path / "catalog.sqlite")
    with Catalog(path) as catalog:
        key = make_user(catalog, "alice", permission="write")
        catalog.create_database("main", owner="alice")
    sources = []
    for i in range(4):
        source = tmp_path / f"cli{i}.jsonl"
        source.write_text("".join(json.dumps({"kind": "ImageAnnotation", "classes": {},
                                              "image": {"paths": [f"https://example.org/{i}/{j}.jpg"]}}) + "\n"
                                  for j in range(3000)))
        sources.append(str(source))
    tree = os.path.dirname(os.path.dirname(os.path.abspath(headwater.__file__ or "")))  # this tree's headwater
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}

    def cli(i: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "headwater.cli", "publish", sources[i], "--repo",
                               f"main/acme/cli{i}", "--catalog", path], capture_output=True, text=True, env=env,
                              timeout=300, check=False)

    with serve_process(path, "--workers", "2") as server, ThreadPoolExecutor(10) as pool:
        local = [pool.submit(cli, i) for i in range(4)]
        remote = [pool.submit(_publish, server.url, key, f"http{i}", _body(3000)) for i in range(6)]
        cli_results = [f.result() for f in local]
        http_results = [f.result() for f in remote]
        assert "Traceback" not in server.stderr()

    published = set()
    for i, done in enumerate(cli_results):
        if done.returncode == 0:
            published.add(f"cli{i}")
        else:  # refused by name, as the busy catalog it is: exit 3 and one error line
            assert done.returncode == 3 and done.stderr.count("error:") == 1 and "Traceback" not in done.stderr, \
                done.stderr
    for i, answer in enumerate(http_results):
        if answer.status_code == 201:
            published.add(f"http{i}")
        else:
            assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
    assert published  # with the default busy timeout (60 s) every one of them gets its turn

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        # every split holds exactly the droplets its count says: nothing half-written
        assert db.execute("SELECT count(*) FROM splits s WHERE s.count != "
                          "(SELECT count(*) FROM droplets d WHERE d.split_id = s.id)").fetchone() == (0,)
    finally:
        db.close()
    with Catalog(path) as catalog:
        repos = {r.name for r in catalog.repositories("main")}
        assert repos == published
        for name in repos:
            assert [d.splits for d in catalog.datasets("main", "acme", name)] == [{"train": 3000}]


def test_a_sqlite_catalog_locked_too_long_is_answered_503_and_then_works(tmp_path) -> None:
    path = str(tmp_path / "catalog.sqlite")
    with Catalog(path) as catalog:
        key = make_user(catalog, "alice", permission="write")
        catalog.create_database("main", owner="alice")
    with serve_process(path, "--catalog-busy-timeout", "0.3") as server:
        url = server.url
        other = sqlite3.connect(path, isolation_level=None)  # another process's long publish, as it holds the lock
        other.execute("BEGIN IMMEDIATE")
        try:
            refused = _publish(url, key, "cats", _body(10))
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "is locked by another writer" in refused.json()["error"]
            assert httpx.get(url + "/api/database", headers=bearer(key)).status_code == 200  # reads go on
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert _publish(url, key, "cats", _body(10)).status_code == 201
    with Catalog(path) as catalog:
        assert [d.splits for d in catalog.datasets("main", "acme", "cats")] == [{"train": 10}]
