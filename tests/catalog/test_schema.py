"""Catalog plumbing: migrations match the models, locations/URLs, SQLite settings, several
catalog objects and processes on one file, fork/pickle, and the datatap wire JSON."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from headwater.catalog import (
    Catalog,
    CatalogError,
    database_json,
    dataset_json,
    repository_json,
    tag_json,
    user_json,
)
from headwater.catalog.engine import (
    alembic_config,
    catalog_url,
    current_revision,
    head_revision,
    open_engine,
    write_connection,
)
from headwater.catalog.models import metadata

TABLES = {"databases", "repositories", "datasets", "splits", "droplets", "tags", "tag_events", "users", "api_keys",
          "pools", "pool_grants", "publish_keys", "split_facets", "facet_classes", "facet_uids", "facet_values",
          "facet_metadata", "alembic_version"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A location with no catalog schema yet (so the migrations themselves run)."""
    if request.param == "sqlite":
        return os.path.join(str(tmp_path), "new", "dir", "catalog.sqlite")
    return str(request.getfixturevalue("postgres_database"))


def test_migrated_schema_matches_the_models(empty_url: str) -> None:
    engine = open_engine(empty_url)
    try:
        assert current_revision(engine) == head_revision() == "0005"
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_downgrade_and_upgrade_again(empty_url: str) -> None:
    cat = Catalog(empty_url)
    cat.create_database("main")
    with write_connection(cat.engine) as conn:
        command.downgrade(alembic_config(conn), "base")
    with cat.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    cat.close()
    again = Catalog(empty_url)  # opening migrates to head again
    assert again.databases() == []
    assert current_revision(again.engine) == head_revision()
    again.close()


def test_reopening_keeps_data_and_revision(empty_url: str) -> None:
    with Catalog(empty_url) as cat:
        cat.create_database("main")
        ds = cat.publish("main", "a", "b", template={}, splits={"s": [b"1"]})
    with Catalog(empty_url) as cat:
        assert cat.dataset_by_uid(ds.uid) == ds
        assert current_revision(cat.engine) == head_revision()


def test_unknown_newer_schema_is_refused(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    Catalog(path).close()
    engine = open_engine(path, migrate_to_head=False)
    with write_connection(engine) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(CatalogError, match=r"schema is at revision '9999'.*upgrade headwater"):
        Catalog(path)


def test_locations() -> None:
    assert str(catalog_url("/tmp/x.sqlite")) == "sqlite:////tmp/x.sqlite"
    assert str(catalog_url("rel/x.sqlite")) == f"sqlite:///{os.path.abspath('rel/x.sqlite')}"
    assert catalog_url("~/c.sqlite").database == os.path.expanduser("~/c.sqlite")
    assert str(catalog_url("sqlite:////tmp/x.sqlite")) == "sqlite:////tmp/x.sqlite"
    assert catalog_url("postgresql://u:pw@h:5/db").drivername == "postgresql+psycopg"
    assert catalog_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert catalog_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(CatalogError, match="unsupported catalog URL 'mysql://u:\\*\\*\\*@h/db'"):
        catalog_url("mysql://u:secret@h/db")
    with pytest.raises(CatalogError, match="empty catalog location"):
        catalog_url("")


def test_sqlite_settings_and_parent_dirs(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "a", "b", "catalog.sqlite")
    cat = Catalog(path, busy_timeout_ms=1234)
    assert os.path.exists(path) and cat.backend == "sqlite"
    with cat.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
    assert repr(cat) == f"Catalog('sqlite:///{path}')"
    cat.close()


def test_repr_hides_password() -> None:
    assert "secret" not in repr(catalog_url("postgresql://u:secret@h/db").render_as_string(hide_password=True))


def test_two_catalog_objects_on_one_file(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    a, b = Catalog(path), Catalog(path)
    a.create_database("main")
    v1 = a.publish("main", "acme", "cats", template={}, splits={"t": [b"1"]})
    assert b.dataset("main", "acme", "cats", "latest") == v1
    v2 = b.publish("main", "acme", "cats", template={}, splits={"t": [b"2", b"3"]})
    assert a.dataset("main", "acme", "cats", "latest") == v2
    b.move_tag("main", "acme", "cats", "latest", v1.uid)
    assert a.dataset("main", "acme", "cats", "latest").uid == v1.uid
    with b.publisher("main", "acme", "cats", template={}) as pub:
        pub.add("t", b"4")
        assert [d.uid for d in a.datasets("main", "acme", "cats")] == [v1.uid, v2.uid]  # not visible yet
        assert list(a.read_range(v2.uid, "t")) == [b"2", b"3"]  # readers are not blocked by the writer
    assert len(a.datasets("main", "acme", "cats")) == 3
    a.close()
    b.close()


_WRITER = textwrap.dedent("""
    import sys
    from headwater.catalog import Catalog
    path, who = sys.argv[1], sys.argv[2]
    cat = Catalog(path)  # both processes open (and migrate) the new file at the same time
    cat.create_database("main", exist_ok=True)
    for version in range(3):
        with cat.publisher("main", "acme", "shared", template={"who": who}, batch_size=100) as pub:
            pub.add_many("train", [b'{"who":"%s","v":%d,"i":%d}' % (who.encode(), version, i) for i in range(700)])
            pub.tag("latest")
            pub.tag(who)
""")


def test_two_processes_publish_into_one_sqlite_file(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, path, who], stderr=subprocess.PIPE, text=True)
             for who in ("p1", "p2")]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    cat = Catalog(path)
    found = cat.datasets("main", "acme", "shared")
    assert len(found) == 6
    for ds in found:
        who = ds.template["who"]
        assert ds.splits == {"train": 700}
        assert all(f'"who":"{who}"'.encode() in row for row in cat.read_range(ds.uid, "train"))
    assert len(cat.tag_history("main", "acme", "shared", "latest")) == 6
    for who in ("p1", "p2"):
        history = cat.tag_history("main", "acme", "shared", who)
        assert len(history) == 3 and history[0].previous is None
        assert [e.previous for e in history[1:]] == [e.dataset for e in history[:-1]]
    cat.close()


def _read_in_child(cat: Catalog, uid: str, queue: multiprocessing.Queue) -> None:
    queue.put(list(cat.read_range(uid, "t")))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_catalog_crosses_process_boundaries(catalog_url: str, method: str) -> None:
    cat = Catalog(catalog_url)
    cat.create_database("main")
    ds = cat.publish("main", "acme", "cats", template={}, splits={"t": [b"a", b"b"]})
    assert list(cat.read_range(ds.uid, "t")) == [b"a", b"b"]  # the parent's pool now holds a connection
    clone = pickle.loads(pickle.dumps(cat))
    assert clone.dataset_by_uid(ds.uid) == ds
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    proc = ctx.Process(target=_read_in_child, args=(cat, ds.uid, queue))  # type: ignore[attr-defined]  # (typeshed)
    proc.start()
    assert queue.get(timeout=60) == [b"a", b"b"]
    proc.join(60)
    assert proc.exitcode == 0
    assert list(cat.read_range(ds.uid, "t")) == [b"a", b"b"]  # the parent's connections still work
    clone.close()
    cat.close()


def test_wire_json(tmp_path: object) -> None:
    cat = Catalog(os.path.join(str(tmp_path), "c.sqlite"))
    db = cat.create_database("main")
    template = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {}}}
    ds = cat.publish("main", "acme", "cats", template=template, splits={"train": [b"1", b"2"], "validation": [b"3"]})
    assert database_json(db) == {"uid": db.uid, "name": "main",
                                 "connectionOptions": {"kind": "headwater", "public": False}}
    (tag,) = cat.tags("main", "acme", "cats")
    assert tag_json(tag) == {"tag": "latest", "dataset": ds.uid, "updatedAt": tag.updated_at_ms,
                             "splits": [{"split": "train", "annotationCount": 2},
                                        {"split": "validation", "annotationCount": 1}]}
    assert isinstance(tag.updated_at_ms, int)
    assert abs(tag.updated_at_ms / 1000 - tag.updated_at.timestamp()) < 0.001
    assert repository_json(cat.repository("main", "acme", "cats"), [tag]) == {
        "namespace": "acme", "name": "cats", "tags": [tag_json(tag)]}
    assert dataset_json(ds) == {"uid": ds.uid, "database": db.uid, "repository": {"namespace": "acme", "name": "cats"},
                                "template": template, "splits": ["train", "validation"],
                                "splitCounts": {"train": 2, "validation": 1}, "pools": {}}
    assert user_json("u1", "me", "me@example.org", db.uid) == {
        "uid": "u1", "username": "me", "email": "me@example.org", "defaultDatabase": db.uid}
    cat.close()


def test_a_writer_blocked_too_long_gets_a_clear_error(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    publisher_side, impatient = Catalog(path), Catalog(path, busy_timeout_ms=100)
    publisher_side.create_database("main")
    with publisher_side.publisher("main", "acme", "cats", template={}) as pub:
        pub.add("t", b"1")
        with pytest.raises(CatalogError, match="is locked by another writer"):
            impatient.create_database("other")
        assert impatient.databases()[0].name == "main"  # reading is not blocked
    assert impatient.create_database("other").name == "other"  # and writing works once it is committed
    impatient.close()
    publisher_side.close()
