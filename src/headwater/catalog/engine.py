"""Open a catalog database: URL or path → SQLAlchemy engine with the right settings, migrated to head.

Why here and not in :class:`~headwater.catalog.Catalog`: the same rules (what a path means, SQLite
pragmas, write transactions that take the lock up front, migrations run inside one transaction
under a lock) are needed by tests and benchmarks that only want an engine.

* A plain path (or ``sqlite:///path``) is the embedded default: SQLite in WAL mode, foreign keys on,
  a busy timeout so concurrent writers wait instead of failing, parent directories created.
* ``postgresql://…`` is mapped to the psycopg 3 driver (``postgresql+psycopg://…``); pooled connections
  are pinged before use, so after a PostgreSQL restart the next request reconnects instead of failing.
* Faults of the database become catalog errors (:func:`catalog_faults`): a connection lost or refused
  (PostgreSQL restarted, network gone) is :class:`~headwater.catalog.CatalogUnavailableError`, SQLite's
  "database is locked" past the busy timeout :class:`~headwater.catalog.CatalogBusyError` — both exit 3 in
  the CLI and 503 with ``Retry-After`` from the server. The transaction they interrupted is rolled back:
  nothing of it is committed.

Example:
    >>> import os, tempfile
    >>> engine = open_engine(os.path.join(tempfile.mkdtemp(), "sub", "catalog.sqlite"))
    >>> engine.dialect.name, current_revision(engine) == head_revision()
    ('sqlite', True)
    >>> engine.dispose()
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, pool
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from ..errors import require_extra
from ..storage import RetryPolicy
from .errors import CatalogBusyError, CatalogError, CatalogUnavailableError

__all__ = [
    "catalog_url",
    "open_engine",
    "write_connection",
    "catalog_faults",
    "migrate",
    "head_revision",
    "current_revision",
    "alembic_config",
    "MIGRATIONS_DIR",
]

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
_WRITE = "headwater_write"  # execution option: this connection's transactions write
BUSY_TIMEOUT_MS = 60_000


def catalog_url(url_or_path: str | os.PathLike[str]) -> URL:
    """Normalise a catalog location to a SQLAlchemy URL.

    >>> str(catalog_url("/tmp/x/catalog.sqlite"))
    'sqlite:////tmp/x/catalog.sqlite'
    >>> catalog_url("postgresql://u@localhost/cat").drivername
    'postgresql+psycopg'
    """
    text = os.fspath(url_or_path)
    if "://" not in text:
        if not text:
            raise CatalogError("empty catalog location: give a file path or a database URL")
        return URL.create("sqlite", database=os.path.abspath(os.path.expanduser(text)))
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise CatalogError(f"cannot parse catalog URL {text!r}: {exc}") from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
    elif backend == "postgres":
        url = url.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise CatalogError(f"unsupported catalog URL {url.render_as_string(hide_password=True)!r}: "
                           "use a file path, sqlite:///path or postgresql://…")
    return url


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _ensure_wal(cur: Any, timeout_s: float) -> None:
    """Switch a SQLite file to WAL, retrying while another process holds the lock.

    Why a loop: the switch needs an exclusive lock, and SQLite answers "database is locked" at
    once (without calling the busy handler) when a second process opens the same new file at the
    same moment. WAL is stored in the file, so once any process has switched, this is a read.
    """
    backoff = RetryPolicy(attempts=1 << 30, base_delay=0.005, max_delay=0.1, deadline=timeout_s).backoff()
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or not backoff.failed(exc):
                raise


def _sqlite_engine(url: URL, busy_timeout_ms: int) -> Engine:
    memory = _is_memory(url)
    if not memory:
        os.makedirs(os.path.dirname(os.path.abspath(str(url.database))), exist_ok=True)
    kwargs: dict[str, Any] = {}
    if memory:  # one shared connection, or every checkout would see a different empty database
        kwargs = {"poolclass": pool.StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would BEGIN lazily and never
        # IMMEDIATE); the "begin" listener below emits the BEGIN we want.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not memory:
            _ensure_wal(cur, busy_timeout_ms / 1000)
            # a big publish grows the WAL to its own size; give that disk space back after checkpoints
            cur.execute("PRAGMA journal_size_limit = 67108864")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL keeps it consistent
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock at BEGIN, so it waits (busy_timeout) for another writer
        # instead of failing later when a read lock cannot be upgraded.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


def open_engine(url_or_path: str | os.PathLike[str], *, migrate_to_head: bool = True,
                busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """Create the engine for a catalog location and (by default) migrate its schema to head."""
    url = catalog_url(url_or_path)
    if url.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, busy_timeout_ms)
    else:
        require_extra("postgres", "psycopg", "a PostgreSQL catalog")
        engine = create_engine(url, pool_pre_ping=True)
    if migrate_to_head:
        try:
            with catalog_faults(engine):
                migrate(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


def _fault(engine: Engine, exc: BaseException) -> CatalogError | None:
    """The catalog error for a database fault (None: not one — a bug or a constraint, raised as it is).

    Both SQLAlchemy's wrapped errors and the driver's own (raw cursors: keyset pages, PostgreSQL ``COPY``)
    are recognised."""
    where = engine.url.render_as_string(hide_password=True)
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    dbapi = engine.dialect.dbapi
    if engine.dialect.name == "sqlite":
        if isinstance(orig, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return CatalogBusyError(f"catalog {where} is locked by another writer (a long publish?) and stayed "
                                    "locked for the whole busy timeout; try again when it has finished")
        return None
    lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
    driver_errors = tuple(getattr(dbapi, name) for name in ("OperationalError", "InterfaceError") if dbapi is not None)
    if lost or isinstance(exc, OperationalError | InterfaceError) or isinstance(orig, driver_errors):
        return CatalogUnavailableError(f"catalog {where} is unavailable ({text}); what this request was writing "
                                       "was rolled back: try again in a moment")
    return None


@contextmanager
def catalog_faults(engine: Engine) -> Iterator[None]:
    """Turn database faults raised inside the block into catalog errors (see the module docstring).

    >>> import tempfile
    >>> engine = open_engine(os.path.join(tempfile.mkdtemp(), "c.sqlite"), migrate_to_head=False)
    >>> try:
    ...     with catalog_faults(engine):
    ...         raise sqlite3.OperationalError("database is locked")
    ... except CatalogBusyError as err:
    ...     print(type(err).__name__, err.exit_code)
    CatalogBusyError 3
    """
    try:
        yield
    except CatalogError:
        raise
    except Exception as exc:
        fault = _fault(engine, exc)
        if fault is None:
            raise
        raise fault from exc


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside one write transaction: committed on clean exit, rolled back on error (database
    faults as catalog errors: :func:`catalog_faults`)."""
    with catalog_faults(engine), engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE: True})
        with conn.begin():  # SQLite: BEGIN IMMEDIATE, waiting up to busy_timeout
            yield conn


def alembic_config(conn: Connection | None = None) -> Config:
    """An Alembic config for the shipped migrations, bound to ``conn`` (no ini file, no logging setup)."""
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest migration shipped with this version of headwater."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise CatalogError(f"no catalog migrations found under {MIGRATIONS_DIR}")
    return head


def current_revision(engine_or_conn: Engine | Connection) -> str | None:
    """The migration revision a catalog database is at (None when it is empty)."""
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return MigrationContext.configure(engine_or_conn).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` in one transaction, serialised across processes.

    SQLite: the transaction is ``BEGIN IMMEDIATE``, so a second process opening the same new file
    waits and then finds the schema already there. PostgreSQL: a transaction-scoped advisory lock.
    """
    if revision == "head" and current_revision(engine) == head_revision():
        return
    with write_connection(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7243010851)")
        current = current_revision(conn)
        script = ScriptDirectory.from_config(alembic_config())
        if current is not None and current not in {s.revision for s in script.walk_revisions()}:
            raise CatalogError(f"the catalog's schema is at revision {current!r}, which this version of headwater "
                               f"does not know (newest here: {head_revision()!r}); upgrade headwater")
        command.upgrade(alembic_config(conn), revision)
