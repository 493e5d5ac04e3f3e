"""Shared fixtures: generated pools on disk, live file servers on 127.0.0.1, PostgreSQL, peer venvs."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from headwater.archive import pack_directory

from .support.files import make_files
from .support.httpserver import FileServer
from .support.peers import peer_python
from .support.pgserver import PostgresServer


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path_factory.mktemp("hw-cache")))


@pytest.fixture
def id_pool(tmp_path: object) -> tuple[str, dict[int, bytes]]:
    """An increment-id pool (base_level 2: 100 shards) of 1,500 files with sparse ids."""
    root = str(tmp_path)
    ids = sorted(random.Random(7).sample(range(1, 50_000), 1500))
    files = make_files(os.path.join(root, "src"), ids)
    pack_directory(os.path.join(root, "src"), os.path.join(root, "pool"), layout="increment-id",
                   base_level=2, silent=True)
    return os.path.join(root, "pool"), files


@pytest.fixture
def file_server() -> Iterator[Callable[..., FileServer]]:
    """Start a :class:`~tests.support.httpserver.FileServer` for this test: ``file_server(root, **options)``
    returns it running; every server started so is stopped after the test."""
    started: list[FileServer] = []

    def start(root: str | os.PathLike[str], **options: Any) -> FileServer:
        server = FileServer(root, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def served_pool(id_pool: tuple[str, dict[int, bytes]],
                file_server: Callable[..., FileServer]) -> tuple[FileServer, dict[int, bytes]]:
    """``id_pool`` behind a default :class:`FileServer` (several ranges answered as multipart)."""
    pool_dir, files = id_pool
    return file_server(pool_dir), files


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (initdb + pg_ctl in a temp dir, 127.0.0.1)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of the session server's maintenance database (create your own databases in it)."""
    return postgres_server.url()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def _migrated_postgres_template(postgres_server: PostgresServer) -> str:
    """A PostgreSQL database already migrated to head, copied (CREATE DATABASE … TEMPLATE) per test:
    much faster than migrating every test's database again."""
    from headwater.catalog.engine import open_engine

    url = postgres_server.create_database()
    open_engine(url).dispose()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def postgres_catalog_url(postgres_server: PostgresServer, _migrated_postgres_template: str) -> Iterator[str]:
    """URL of a fresh PostgreSQL database holding an empty catalog (schema at head), dropped after."""
    url = postgres_server.create_database(template=_migrated_postgres_template)
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh catalog location: a new SQLite file's path, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return os.path.join(str(tmp_path), "catalog.sqlite")
    return str(request.getfixturevalue("postgres_catalog_url"))


def _peer_python(name: str, requirements: list[str]) -> str:
    """The python of ``.venv-peers/<name>`` (the benchmarks' peer venvs), installed from PyPI on first use."""
    try:
        return peer_python(name, requirements)
    except subprocess.CalledProcessError as err:  # pragma: no cover - needs PyPI the first time
        pytest.fail(f"could not install {requirements} into .venv-peers/{name}: {err}")


@pytest.fixture(scope="session")
def datatap_python() -> str:
    """Real ``datatap==0.3.0`` (with Pillow) in its own venv: its pins must not touch ours."""
    return _peer_python("datatap", ["datatap==0.3.0", "Pillow"])


@pytest.fixture(scope="session")
def cheesechaser_python() -> str:
    """Real ``cheesechaser==0.2.2`` in its own venv."""
    return _peer_python("cheesechaser", ["cheesechaser==0.2.2"])
