"""Users, API keys and access rules: catalog side (SQLite and PostgreSQL), the Bearer parsing the
datatap and Hugging Face clients need, the FastAPI dependencies over a live server, and the CLI."""

from __future__ import annotations

import base64
import hashlib
import os

import httpx
import pytest
from alembic import command
from click.testing import CliRunner
from fastapi import Depends, Request
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, insert, inspect, select

from headwater.catalog import Catalog, CatalogError, ConflictError, NotFoundError, Principal
from headwater.catalog.engine import (
    alembic_config,
    current_revision,
    head_revision,
    migrate,
    open_engine,
    write_connection,
)
from headwater.catalog.models import api_keys, utcnow
from headwater.cli import main
from headwater.server.app import ServerConfig, create_app
from headwater.server.auth import (
    principal,
    principal_ignoring_foreign_tokens,
    readable_database,
    require_read,
    require_write,
    writable_database,
)

from ..support.servers import bearer, live_server, make_user

# the databases table as migration 0001 left it
databases_v1 = Table("databases", MetaData(), Column("id", Integer, primary_key=True), Column("uid", String(36)),
                     Column("name", String(128)), Column("public", Boolean),
                     Column("created_at", DateTime(timezone=True)))


def test_users_keys_and_authentication(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    alice = cat.create_user("alice", email="alice@example.org")
    assert cat.user("alice") == cat.user(alice.uid) == alice
    with pytest.raises(ConflictError, match="user 'alice' already exists"):
        cat.create_user("alice")
    assert cat.create_user("alice", exist_ok=True) == alice
    with pytest.raises(CatalogError, match="invalid username"):
        cat.create_user("al/ice")
    with pytest.raises(CatalogError, match="invalid email"):
        cat.create_user("bob", email="no-at-sign")
    with pytest.raises(NotFoundError, match="user 'nobody' not found"):
        cat.create_api_key("nobody")
    with pytest.raises(CatalogError, match="unknown permission 'admin'"):
        cat.create_api_key("alice", "admin")

    read_id, read_secret = cat.create_api_key("alice")
    write_id, write_secret = cat.create_api_key("alice", "write")
    assert read_secret.startswith(f"hw_{read_id}_") and len(read_secret) >= 50
    who = cat.authenticate(read_secret)
    assert who == Principal(uid=alice.uid, username="alice", email="alice@example.org", permission="read",
                            key_id=read_id, default_database=None)
    writer = cat.authenticate(write_secret)
    assert not who.can_write and writer is not None and writer.can_write

    # stored hashed: the secret is nowhere in the database
    with cat.engine.connect() as conn:
        rows = conn.execute(select(api_keys)).all()
    assert {r.key_hash for r in rows} == {hashlib.sha256(s.encode()).hexdigest() for s in (read_secret, write_secret)}
    assert not any(read_secret in str(tuple(r)) for r in rows)

    for bad in ("", "hw_", read_secret + "x", read_secret[:-1], "hw_000000000000_" + "a" * 43, None):
        assert cat.authenticate(bad) is None  # type: ignore[arg-type]

    listed = cat.api_keys("alice")
    assert [(k.key_id, k.permission, k.revoked) for k in listed] == [(read_id, "read", False),
                                                                     (write_id, "write", False)]
    first = cat.revoke_api_key(read_id)
    assert first.revoked and cat.revoke_api_key(read_id).revoked_at == first.revoked_at  # idempotent
    assert cat.authenticate(read_secret) is None and cat.authenticate(write_secret) is not None
    assert [k.key_id for k in cat.api_keys(include_revoked=False)] == [write_id]
    with pytest.raises(NotFoundError, match="API key 'nope' not found"):
        cat.revoke_api_key("nope")
    cat.close()


def test_database_owner_public_and_default(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    alice = cat.create_user("alice")
    db = cat.create_database("private", owner="alice")
    assert db.owner == alice.uid and not db.public
    assert cat.create_database("shared").owner is None
    assert cat.change_database_access("private", public=True).public
    assert cat.change_database_access("private", owner=None).owner is None
    assert cat.change_database_access(db.uid, owner=alice.uid).owner == alice.uid
    assert [d.name for d in cat.owned_databases("alice")] == ["private"]
    both = cat.change_database_access("private", owner=None, public=False)
    assert both.owner is None and not both.public
    assert cat.change_database_access("private") == both  # nothing given: nothing changes
    cat.change_database_access("private", owner="alice")
    assert cat.choose_default_database("alice", "private").default_database == db.uid
    _, secret = cat.create_api_key("alice")
    principal = cat.authenticate(secret)
    assert principal is not None and principal.default_database == db.uid
    with pytest.raises(NotFoundError, match="user 'bob' not found"):
        cat.create_database("x", owner="bob")
    assert [d.name for d in cat.databases()] == ["private", "shared"]  # the failed create left nothing
    cat.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return os.path.join(str(tmp_path), "catalog.sqlite")
    return str(request.getfixturevalue("postgres_database"))


def test_0002_migrates_a_catalog_holding_data_both_ways(unmigrated_url: str) -> None:
    """Upgrading a 0001 catalog full of data to 0002 and back keeps every row (SQLite included, where a
    table copy would trip over the foreign keys that point at databases)."""
    engine = open_engine(unmigrated_url, migrate_to_head=False)
    migrate(engine, "0001")
    with write_connection(engine) as conn:
        conn.execute(insert(databases_v1).values(uid="db-1", name="old", public=False, created_at=utcnow()))
    engine.dispose()
    with Catalog(unmigrated_url) as cat:  # opening migrates to head
        assert current_revision(cat.engine) == head_revision()
        ds = cat.publish("old", "a", "b", template={}, splits={"s": [b"1", b"2"]})
        cat.create_user("alice")
        assert cat.change_database_access("old", owner="alice").owner == cat.user("alice").uid
        with write_connection(cat.engine) as conn:
            command.downgrade(alembic_config(conn), "0001")
        assert "users" not in inspect(cat.engine).get_table_names()
    with Catalog(unmigrated_url) as cat:
        assert cat.database("old").owner is None and list(cat.read_range(ds.uid, "s")) == [b"1", b"2"]


# -- over HTTP ---------------------------------------------------------------------------------------
def _app_with_probe_routes(config: ServerConfig):
    """The real app plus two tiny routes that exercise the dependencies as write routes will."""
    app = create_app(config)

    @app.get("/probe/read")
    def probe_read(who: Principal = Depends(require_read)) -> dict[str, str]:
        return {"user": who.username, "permission": who.permission}

    @app.post("/probe/write/{db}")
    def probe_write(db: str, request: Request, who: Principal = Depends(require_write)) -> dict[str, str]:
        return {"database": writable_database(request, who, db).name}

    @app.get("/probe/see/{db}")
    def probe_see(db: str, request: Request, who: Principal | None = Depends(principal)) -> dict[str, str]:
        return {"database": readable_database(request, who, db).name}

    @app.get("/probe/lenient")
    def probe_lenient(who: Principal | None = Depends(principal_ignoring_foreign_tokens)) -> dict[str, str | None]:
        return {"user": who.username if who else None}

    return app


@pytest.fixture
def probe(tmp_path):
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    cat = Catalog(path)
    keys = {"alice_read": make_user(cat, "alice"), "alice_write": make_user(cat, "alice", permission="write"),
            "bob_write": make_user(cat, "bob", permission="write")}
    cat.create_database("alices", owner="alice")
    cat.create_database("unowned")
    with live_server(_app_with_probe_routes(ServerConfig(path))) as url:
        yield url, keys, cat
    cat.close()


def test_bearer_forms(probe) -> None:
    url, keys, _ = probe
    secret = keys["alice_read"]
    with httpx.Client(base_url=url) as http:
        for headers in (bearer(secret), bearer(secret, raw=True), {"authorization": f"bearer  {secret}"}):
            r = http.get("/probe/read", headers=headers)
            assert r.status_code == 200, (headers, r.text)
            assert r.json() == {"user": "alice", "permission": "read"}
        for headers, message in [
            ({}, "authentication required"),
            ({"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}, "malformed Authorization header"),
            ({"Authorization": "Bearer"}, "malformed Authorization header"),
            ({"Authorization": "Bearer " + base64.b64encode(b"hw_000000000000_" + b"x" * 43).decode()},
             "invalid or revoked API key"),
            ({"Authorization": "Bearer not-a-key"}, "invalid or revoked API key"),
            ({"Authorization": "Bearer " + base64.b64encode(b"\xff\xfe").decode()}, "invalid or revoked API key"),
        ]:
            r = http.get("/probe/read", headers=headers)
            assert r.status_code == 401, headers
            assert message in r.json()["error"]
            assert r.headers["www-authenticate"].startswith("Bearer")


def test_foreign_tokens_can_be_treated_as_anonymous(probe) -> None:
    url, keys, _ = probe
    with httpx.Client(base_url=url) as http:
        assert http.get("/probe/lenient", headers=bearer(keys["alice_read"], raw=True)).json() == {"user": "alice"}
        assert http.get("/probe/lenient", headers=bearer(keys["alice_read"])).json() == {"user": "alice"}
        for foreign in ("hf_" + "a" * 34, "Basic x", "Bearer"):
            headers = {"Authorization": foreign if " " in foreign or foreign == "Bearer" else f"Bearer {foreign}"}
            assert http.get("/probe/lenient", headers=headers).json() == {"user": None}
        r = http.get("/probe/lenient", headers=bearer("hw_000000000000_" + "x" * 43, raw=True))
        assert r.status_code == 401 and r.json() == {"error": "invalid or revoked API key"}


def test_write_rules_and_revocation(probe) -> None:
    url, keys, cat = probe
    with httpx.Client(base_url=url) as http:
        assert http.post("/probe/write/alices", headers=bearer(keys["alice_write"])).json() == {"database": "alices"}
        assert http.post("/probe/write/unowned", headers=bearer(keys["bob_write"])).json() == {"database": "unowned"}
        r = http.post("/probe/write/alices", headers=bearer(keys["alice_read"]))
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        r = http.post("/probe/write/alices", headers=bearer(keys["bob_write"]))  # invisible to bob: 404
        assert r.status_code == 404 and r.json() == {"error": "database 'alices' not found"}
        assert http.post("/probe/write/alices").status_code == 401
        cat.change_database_access("alices", public=True)  # now bob sees it, but may still not write it
        r = http.post("/probe/write/alices", headers=bearer(keys["bob_write"]))
        assert r.status_code == 403 and "may not write to database 'alices'" in r.json()["error"]
        assert http.get("/probe/see/alices").json() == {"database": "alices"}  # anonymous, public
        assert http.get("/probe/see/unowned").status_code == 404
        # revocation takes effect on the next request (no cache in front of the catalog)
        (key,) = [k for k in cat.api_keys("alice") if k.permission == "write"]
        cat.revoke_api_key(key.key_id)
        r = http.post("/probe/write/alices", headers=bearer(keys["alice_write"]))
        assert r.status_code == 401 and r.json() == {"error": "invalid or revoked API key"}


def test_cli_keys_and_databases(tmp_path) -> None:
    path = os.path.join(str(tmp_path), "cat", "catalog.sqlite")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, [*args, "--catalog", path])
        assert result.exit_code == code, result.output
        return result.output

    created = runner.invoke(main, ["keys", "create", "--user", "alice", "--email", "a@example.org", "--write",
                                   "--catalog", path])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()  # the secret alone on stdout
    assert secret.startswith("hw_") and "\n" not in secret
    assert "store the secret now" in created.stderr
    with Catalog(path) as cat:
        who = cat.authenticate(secret)
        assert who is not None and who.can_write and who.email == "a@example.org"
    read_secret = runner.invoke(main, ["keys", "create", "--user", "alice", "--catalog", path]).stdout.strip()
    listing = run("keys", "list")
    assert listing.count("\talice\t") == 2 and "write" in listing and "read" in listing and secret not in listing
    out = run("keys", "revoke", who.key_id)
    assert f"revoked {who.key_id}" in out
    assert "revoked 20" in run("keys", "list", "--user", "alice")
    assert "error: API key 'zzz' not found" in run("keys", "revoke", "zzz", code=2)

    out = run("database", "create", "photos", "--owner", "alice")
    assert "photos" in out and "owner=alice" in out and "private" in out
    with Catalog(path) as cat:
        reader = cat.authenticate(read_secret)
        assert reader is not None and reader.default_database == cat.database("photos").uid
    assert "public" in run("database", "set", "photos", "--public")
    assert "owner=(no owner" in run("database", "set", "photos", "--no-owner")
    # an owner must exist: a typo'd user is refused by name, nothing is created
    assert "user 'bob' not found (create it with: headwater keys create --user bob)" in \
        run("database", "set", "photos", "--owner", "bob", code=2)
    assert "user 'bob' not found" in run("database", "create", "bobs", "--owner", "bob", code=2)
    with Catalog(path) as cat:
        assert [u.username for u in cat.users()] == ["alice"] and [d.name for d in cat.databases()] == ["photos"]
    runner.invoke(main, ["keys", "create", "--user", "bob", "--catalog", path])
    assert "owner=bob" in run("database", "set", "photos", "--owner", "bob")
    assert "nothing to change" in run("database", "set", "photos", code=2)
    assert "database 'nope' not found" in run("database", "set", "nope", "--public", code=2)
    assert "photos" in run("database", "list")
    assert "already exists" in run("database", "create", "photos", code=2)


def test_cli_serve_rejects_bad_pools(tmp_path) -> None:
    result = CliRunner().invoke(main, ["serve", "--catalog", os.path.join(str(tmp_path), "c.sqlite"),
                                       "--pool", "no-slash=/tmp"])
    assert result.exit_code == 2 and "is not OWNER/REPO=URL" in result.output


def test_cli_pool_access(tmp_path) -> None:
    path = os.path.join(str(tmp_path), "catalog.sqlite")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, [*args, "--catalog", path])
        assert result.exit_code == code, result.output
        return result.output

    run("keys", "create", "--user", "alice")
    run("keys", "create", "--user", "bob")
    out = run("pool", "set", "acme/images", "--owner", "alice", "--public")
    assert out.strip() == "acme/images\towner=alice\tpublic\tgrants=-"
    assert "grants=bob:write" in run("pool", "grant", "acme/images", "bob", "--write")
    assert "grants=bob:read" in run("pool", "grant", "acme/images", "bob")
    assert "acme/images" in run("pool", "list") and "1 pool(s) recorded" in run("pool", "list")
    assert "grants=-" in run("pool", "revoke", "acme/images", "bob")
    assert "user 'bob' has no grant on pool 'acme/images'" in run("pool", "revoke", "acme/images", "bob", code=2)
    assert "private" in run("pool", "set", "acme/images", "--private")
    assert "owner=(no owner" in run("pool", "set", "acme/images", "--no-owner")
    assert "user 'carol' not found (create it with" in run("pool", "set", "acme/images", "--owner", "carol", code=2)
    assert "user 'carol' not found" in run("pool", "grant", "acme/images", "carol", code=2)
    assert "invalid pool 'images'" in run("pool", "set", "images", "--public", code=2)
    assert "nothing to change" in run("pool", "set", "acme/images", code=2)


def test_cli_serve_needs_a_public_url_on_a_wildcard_address(tmp_path) -> None:
    result = CliRunner().invoke(main, ["serve", "--catalog", os.path.join(str(tmp_path), "c.sqlite"),
                                       "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "give --public-url" in result.output
    result = CliRunner().invoke(main, ["serve", "--catalog", os.path.join(str(tmp_path), "c.sqlite"),
                                       "--public-url", "ftp://x"])
    assert result.exit_code == 2 and "must be http(s)://" in result.output


def test_pool_access_migration_upgrades_and_downgrades(unmigrated_url: str) -> None:
    engine = open_engine(unmigrated_url, migrate_to_head=False)
    migrate(engine, "0002")
    engine.dispose()
    with Catalog(unmigrated_url) as cat:  # opening migrates to head
        cat.create_user("alice")
        cat.change_pool_access("acme/images", owner="alice", public=True)
        cat.grant_pool_access("acme/images", "alice", "write")
        assert cat.pool_accesses()[0].grants == {cat.user("alice").uid: "write"}
        with write_connection(cat.engine) as conn:
            command.downgrade(alembic_config(conn), "0002")
        assert "pools" not in inspect(cat.engine).get_table_names()
    with Catalog(unmigrated_url) as cat:
        assert cat.pool_access("acme/images").recorded is False  # migrated again, empty
