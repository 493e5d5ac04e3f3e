"""The catalog: databases → repositories (``namespace/name``) → immutable datasets ← movable tags.

Why a relational database: publishing must be all-or-nothing (one transaction), tags must move
atomically with a kept history, and chunk k of n of a 10,000,000-droplet split must start with an
index seek. A SQLite file is the embedded default (no server to run); PostgreSQL is used by URL
when many machines share one catalog. The schema is migrated to head whenever a catalog is opened.

Example:
    >>> import os, tempfile
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_database("main")
    >>> ds = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate", "classes": {}},
    ...                  splits={"train": [b'{"n":0}', b'{"n":1}', b'{"n":2}']})
    >>> cat.dataset("main", "acme", "cats", "latest").uid == ds.uid
    True
    >>> list(cat.read_range(ds.uid, "train", 1, 3))
    [b'{"n":1}', b'{"n":2}']
    >>> cat.close()
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Row, select
from sqlalchemy.engine import URL

from .engine import BUSY_TIMEOUT_MS, catalog_faults, catalog_url, open_engine, write_connection
from .errors import CatalogError, NotFoundError, OutOfRangeError
from .facet_search import FacetCache, FacetSearch
from .facets import FilterPage, SplitFilter, SplitStats
from .lookup import (
    database_record,
    database_row,
    dataset_record,
    dataset_row_by_uid,
    dataset_rows_by_id,
    repository_record,
    repository_row,
    split_counts,
)
from .models import databases, datasets, repositories, splits, tag_events, tags, utcnow
from .mutations import ensure_database, ensure_repository, set_tag
from .name_rules import check_name
from .pool_access import PoolAccessCatalog
from .publisher import DEFAULT_BATCH_SIZE, Publisher, PublishKey, check_publish_key
from .queries import block_sql, driver_sql, ordinals_select
from .records import (
    DatabaseRecord,
    DatasetRecord,
    RepositoryRecord,
    TagEvent,
    TagRecord,
    to_ms,
)
from .users import UserCatalog, user_row

__all__ = ["Catalog"]

_IN_BATCH = 500  # ordinals per IN (...) list: well under every backend's bound-parameter limit


class Catalog(UserCatalog, PoolAccessCatalog):
    """A catalog opened from a file path / ``sqlite:///path`` (embedded) or a ``postgresql://`` URL.

    Thread-safe (a connection pool underneath); safe to use after ``fork`` (the child opens its own
    connections) and picklable (a copy re-opens the same location), so DataLoader workers can share it.
    Users, API keys and database ownership (for the server) come from
    :class:`~headwater.catalog.users.UserCatalog`, who may use a served pool from
    :class:`~headwater.catalog.pool_access.PoolAccessCatalog`.
    """

    def __init__(self, url_or_path: str | os.PathLike[str], *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self._location = os.fspath(url_or_path)
        self._busy_timeout_ms = busy_timeout_ms
        self.url: URL = catalog_url(self._location)
        """The SQLAlchemy URL (password hidden when rendered)."""
        self._engine: Engine = open_engine(self._location, busy_timeout_ms=busy_timeout_ms)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._split_cache: dict[tuple[str, str], tuple[int, int]] = {}
        self._facet_cache = FacetCache()

    # -- plumbing --------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tools and tests; the catalog API does not need it)."""
        self._check_fork()
        return self._engine

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # forked: never reuse the parent's sockets/file handles
            with self._lock:
                if os.getpid() != self._pid:
                    self._engine.dispose(close=False)
                    self._pid = os.getpid()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._check_fork()
        with catalog_faults(self._engine), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self._check_fork()
        with write_connection(self._engine) as conn:
            yield conn

    def close(self) -> None:
        """Release all connections (the catalog can still be used; it reconnects on demand)."""
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self._location, self._busy_timeout_ms))

    def __repr__(self) -> str:
        return f"Catalog({self.url.render_as_string(hide_password=True)!r})"

    # -- databases -------------------------------------------------------------------------------
    def create_database(self, name: str, *, public: bool = False, exist_ok: bool = False,
                        owner: str | None = None) -> DatabaseRecord:
        """Create database ``name`` (owned by user ``owner``, a username or uid, if given); ConflictError
        if it exists (unless ``exist_ok``: then the existing one is returned unchanged)."""
        check_name("database name", name)
        with self._write() as conn:
            owner_uid = user_row(conn, owner).uid if owner is not None else None
            return database_record(ensure_database(conn, name, exist_ok=exist_ok, now=utcnow(), public=public,
                                                   owner_uid=owner_uid))

    def database(self, name_or_uid: str) -> DatabaseRecord:
        """The database with this name (or uid)."""
        with self._read() as conn:
            return database_record(database_row(conn, name_or_uid))

    def databases(self) -> list[DatabaseRecord]:
        """All databases, by name."""
        with self._read() as conn:
            return [database_record(r) for r in conn.execute(select(databases).order_by(databases.c.name))]

    def query_databases(self, name: str) -> list[DatabaseRecord]:
        """Databases named exactly ``name`` (zero or one; a list as datatap's ``/database/query`` returns)."""
        with self._read() as conn:
            rows = conn.execute(select(databases).where(databases.c.name == name)).all()
            return [database_record(r) for r in rows]

    # -- repositories ----------------------------------------------------------------------------
    def create_repository(self, db: str, namespace: str, name: str, *, exist_ok: bool = True) -> RepositoryRecord:
        """Create repository ``namespace/name`` in database ``db`` (name or uid)."""
        with self._write() as conn:
            db_row = database_row(conn, db)
            repo = ensure_repository(conn, db_row, namespace, name, exist_ok=exist_ok, now=utcnow())
            return repository_record(db_row, repo)

    def repository(self, db: str, namespace: str, name: str) -> RepositoryRecord:
        """Repository ``namespace/name`` of database ``db``."""
        with self._read() as conn:
            db_row = database_row(conn, db)
            return repository_record(db_row, repository_row(conn, db_row, namespace, name))

    def repositories(self, db: str) -> list[RepositoryRecord]:
        """All repositories of database ``db``, by namespace then name."""
        with self._read() as conn:
            db_row = database_row(conn, db)
            rows = conn.execute(
                select(repositories).where(repositories.c.database_id == db_row.id)
                .order_by(repositories.c.namespace, repositories.c.name)
            )
            return [repository_record(db_row, r) for r in rows]

    # -- tags ------------------------------------------------------------------------------------
    def tags(self, db: str, namespace: str, name: str) -> list[TagRecord]:
        """The tags of a repository (by name), each with its dataset's split counts."""
        with self._read() as conn:
            repo = repository_row(conn, database_row(conn, db), namespace, name)
            rows = conn.execute(
                select(tags.c.name, tags.c.updated_at, tags.c.dataset_id, datasets.c.uid)
                .join(datasets, datasets.c.id == tags.c.dataset_id)
                .where(tags.c.repository_id == repo.id)
                .order_by(tags.c.name)
            ).all()
            counts = split_counts(conn, {r.dataset_id for r in rows})
        return [TagRecord(tag=r.name, dataset=r.uid, updated_at_ms=to_ms(r.updated_at),
                          splits=dict(counts[r.dataset_id]), updated_at=r.updated_at) for r in rows]

    def move_tag(self, db: str, namespace: str, name: str, tag: str, target: str) -> TagRecord:
        """Point ``tag`` at dataset ``target`` — a dataset uid of this repository, or another tag (then
        where that tag points) — in one transaction; the move is appended to the tag's history. Moving a
        tag to where it already points records nothing. The record's ``previous`` says where it pointed."""
        check_name("tag", tag)
        with self._write() as conn:
            db_row = database_row(conn, db)
            repo = repository_row(conn, db_row, namespace, name)
            ds = _dataset_of_repository(conn, db_row, repo, target)
            previous_id = conn.execute(select(tags.c.dataset_id).where(tags.c.repository_id == repo.id,
                                                                       tags.c.name == tag)).scalar()
            previous = conn.execute(select(datasets.c.uid).where(datasets.c.id == previous_id)).scalar() \
                if previous_id is not None else None
            set_tag(conn, repo.id, tag, ds.id, utcnow())
            row = conn.execute(select(tags.c.updated_at).where(tags.c.repository_id == repo.id,
                                                               tags.c.name == tag)).one()
            counts = split_counts(conn, [ds.id])[ds.id]
        return TagRecord(tag=tag, dataset=ds.uid, updated_at_ms=to_ms(row.updated_at), splits=counts,
                         updated_at=row.updated_at, previous=previous)

    def tag_history(self, db: str, namespace: str, name: str, tag: str | None = None) -> list[TagEvent]:
        """Every move of the repository's tags (or of one tag), oldest first."""
        with self._read() as conn:
            db_row = database_row(conn, db)
            repo = repository_row(conn, db_row, namespace, name)
            query = (select(tag_events).where(tag_events.c.repository_id == repo.id)
                     .order_by(tag_events.c.id))
            if tag is not None:
                check_name("tag", tag)
                query = query.where(tag_events.c.tag == tag)
            rows = conn.execute(query).all()
            ids = {r.dataset_id for r in rows} | {r.previous_dataset_id for r in rows if r.previous_dataset_id}
            uids = dict(conn.execute(select(datasets.c.id, datasets.c.uid).where(datasets.c.id.in_(ids))).all())
        if tag is not None and not rows:
            raise NotFoundError(f"tag {tag!r} not found in repository '{namespace}/{name}' of database "
                                f"{db_row.name!r}")
        return [TagEvent(tag=r.tag, dataset=uids[r.dataset_id],
                         previous=uids[r.previous_dataset_id] if r.previous_dataset_id else None,
                         moved_at=r.moved_at) for r in rows]

    # -- datasets --------------------------------------------------------------------------------
    def publisher(self, db: str, namespace: str, name: str, *, template: Mapping[str, Any] | str | bytes,
                  pools: Mapping[str, str] | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                  create_database: bool = False, key: PublishKey | None = None) -> Publisher:
        """A :class:`~headwater.catalog.publisher.Publisher` for a new dataset in ``namespace/name`` (the
        repository is created if missing, and the database too with ``create_database``). Use it as a
        context manager: one transaction. With ``key`` (an idempotency key) the transaction also records
        key → dataset, and entering it raises :class:`~headwater.catalog.AlreadyPublishedError` when a
        publish with that key committed before (see :meth:`published_with_key`)."""
        self._check_fork()
        return Publisher(self._engine, db, namespace, name, template=template, pools=pools,
                         batch_size=batch_size, create_database=create_database, key=key)

    def check_publish_key(self, key: PublishKey) -> None:
        """Raise :class:`~headwater.catalog.AlreadyPublishedError` if a publish with idempotency key ``key``
        (of the same user) committed before: ``same_request`` then says whether it had the same fingerprint."""
        with self._read() as conn:
            check_publish_key(conn, key)

    def publish(self, db: str, namespace: str, name: str, *, template: Mapping[str, Any] | str | bytes,
                splits: Mapping[str, Iterable[bytes]], tags: Iterable[str] = ("latest",),
                pools: Mapping[str, str] | None = None) -> DatasetRecord:
        """Publish a dataset from ``{split: droplet bytes}`` and point ``tags`` at it, all at once."""
        with self.publisher(db, namespace, name, template=template, pools=pools) as pub:
            for split, items in splits.items():
                pub.add_many(split, items)
            for tag in tags:
                pub.tag(tag)
        return pub.record

    def dataset(self, db: str, namespace: str, name: str, tag_or_uid: str) -> DatasetRecord:
        """The dataset a tag points to, or the dataset with that uid, in repository ``namespace/name``."""
        with self._read() as conn:
            db_row = database_row(conn, db)
            row = _dataset_of_repository(conn, db_row, repository_row(conn, db_row, namespace, name), tag_or_uid)
            return dataset_record(row, split_counts(conn, [row.id])[row.id])

    def datasets(self, db: str, namespace: str, name: str) -> list[DatasetRecord]:
        """Every dataset ever published in a repository, oldest first."""
        with self._read() as conn:
            repo = repository_row(conn, database_row(conn, db), namespace, name)
            ids = conn.execute(select(datasets.c.id).where(datasets.c.repository_id == repo.id)
                               .order_by(datasets.c.id)).scalars().all()
            rows = {r.id: r for r in dataset_rows_by_id(conn, ids)}
            counts = split_counts(conn, ids)
        return [dataset_record(rows[i], counts[i]) for i in ids]

    def dataset_by_uid(self, uid: str) -> DatasetRecord:
        """The dataset with this uid, in whichever database/repository it lives."""
        with self._read() as conn:
            row = dataset_row_by_uid(conn, uid)
            if row is None:
                raise NotFoundError(f"dataset {uid!r} not found")
            return dataset_record(row, split_counts(conn, [row.id])[row.id])

    # -- split contents --------------------------------------------------------------------------
    def _split(self, uid: str, split: str) -> tuple[int, int]:
        key = (uid, split)
        found = self._split_cache.get(key)  # safe to cache: a published split never changes
        if found is not None:
            return found
        with self._read() as conn:
            row = conn.execute(
                select(splits.c.id, splits.c.count, datasets.c.id.label("dataset_id"))
                .select_from(datasets)
                .outerjoin(splits, (splits.c.dataset_id == datasets.c.id) & (splits.c.name == split))
                .where(datasets.c.uid == uid)
            ).first()
            if row is None:
                raise NotFoundError(f"dataset {uid!r} not found")
            if row.id is None:
                names = conn.execute(select(splits.c.name).where(splits.c.dataset_id == row.dataset_id)
                                     .order_by(splits.c.id)).scalars().all()
                raise NotFoundError(f"split {split!r} not found in dataset {uid!r} (splits: {list(names)})")
        found = (int(row.id), int(row._mapping["count"]))  # row.count is the tuple method to a type checker
        if len(self._split_cache) >= 4096:
            self._split_cache.clear()
        self._split_cache[key] = found
        return found

    def split_count(self, uid: str, split: str) -> int:
        """How many droplets split ``split`` of dataset ``uid`` holds."""
        return self._split(uid, split)[1]

    def read_range(self, uid: str, split: str, start: int = 0, stop: int | None = None, *,
                   batch_size: int = 2048) -> Iterator[bytes]:
        """Droplets with ordinals ``start <= i < stop`` (``stop`` None: to the end), in order.

        Pages of ``batch_size`` rows by primary-key range, each continuing after the last ordinal
        read, with a short connection per page (no lock or snapshot held while the caller works).
        """
        split_id, stop = self._checked_range(uid, split, start, stop, batch_size)
        return self._pages(split_id, start, stop, batch_size)

    def _checked_range(self, uid: str, split: str, start: int, stop: int | None, batch_size: int) -> tuple[int, int]:
        """``(split id, stop)`` for a read of ``[start, stop)``, refused when outside the split."""
        split_id, count = self._split(uid, split)
        stop = count if stop is None else stop
        if not (0 <= start <= stop <= count):
            raise OutOfRangeError(f"range [{start}, {stop}) is outside split {split!r} of dataset {uid!r} "
                                  f"(0..{count})")
        if batch_size < 1:
            raise CatalogError(f"batch_size must be >= 1, got {batch_size}")
        return split_id, stop

    def _pages(self, split_id: int, start: int, stop: int, batch_size: int) -> Iterator[bytes]:
        position = start
        while position < stop:
            # Ordinals are contiguous, so bounding the page's range (not only LIMIT) keeps each page at
            # batch_size rows whatever plan the database picks, e.g. with stale statistics right after a
            # bulk publish PostgreSQL may choose a bitmap scan + sort, which would otherwise read to `stop`.
            page_stop = min(stop, position + batch_size)
            with self._read() as conn:
                sql, params = driver_sql(conn.dialect, {"split_id": split_id, "start": position, "stop": page_stop,
                                                        "limit": batch_size})
                cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # None once closed
                try:
                    if conn.dialect.name == "postgresql":
                        cursor.execute(sql, params, binary=True)  # bytea as it is stored, not as hex text
                    else:
                        cursor.execute(sql, params)
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
            if not rows:
                return
            for _ordinal, data in rows:
                yield data
            position = rows[-1][0] + 1

    def read_range_blocks(self, uid: str, split: str, start: int = 0, stop: int | None = None, *,
                          batch_size: int = 8192) -> Iterator[bytes]:
        """The droplets of :meth:`read_range`, as NDJSON blocks of up to ``batch_size`` droplets (each line
        ending with ``\\n``): what a stream reads. On SQLite each block is concatenated by the database in one
        query (:func:`~headwater.catalog.queries.block_sql`); elsewhere it is the page's rows joined."""
        split_id, stop = self._checked_range(uid, split, start, stop, batch_size)
        return self._block_pages(split_id, start, stop, batch_size)

    def _block_pages(self, split_id: int, start: int, stop: int, batch_size: int) -> Iterator[bytes]:
        sql = block_sql(self._engine.dialect)
        for position in range(start, stop, batch_size):
            page_stop = min(stop, position + batch_size)
            row = None
            if sql is not None:
                with self._read() as conn:
                    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                    try:
                        cursor.execute(sql, (split_id, position, page_stop))
                        row = cursor.fetchone()
                    except sqlite3.DataError:  # the page is longer than SQLite's longest value: read its rows
                        row = None
                    finally:
                        cursor.close()
            if row is not None and row[0] == page_stop - position and row[2] is not None and \
                    row[1] == ",".join(map(str, range(position, page_stop))):
                yield bytes(row[2])
            else:  # a dialect without the statement, or not the whole page in order: the page row by row
                lines = list(self._pages(split_id, position, page_stop, batch_size))
                if lines:
                    lines.append(b"")
                    yield b"\n".join(lines)

    def read_ordinals(self, uid: str, split: str, ordinals: Sequence[int]) -> list[bytes]:
        """The droplets at these ordinals, in the order asked (repeats allowed)."""
        split_id, count = self._split(uid, split)
        wanted = sorted(set(ordinals))
        if wanted and (wanted[0] < 0 or wanted[-1] >= count):
            bad = wanted[0] if wanted[0] < 0 else wanted[-1]
            raise OutOfRangeError(f"ordinal {bad} is outside split {split!r} of dataset {uid!r} (0..{count - 1})")
        found: dict[int, bytes] = {}
        query = ordinals_select()
        with self._read() as conn:
            for i in range(0, len(wanted), _IN_BATCH):
                part = wanted[i:i + _IN_BATCH]
                for ordinal, data in conn.execute(query, {"split_id": split_id, "ordinals": part}):
                    found[ordinal] = data
        return [found[o] for o in ordinals]


    # -- filters and statistics ------------------------------------------------------------------
    def _facets(self, uid: str, split: str) -> FacetSearch:
        split_id, count = self._split(uid, split)
        return FacetSearch(self._read, self._facet_cache, uid=uid, split=split, split_id=split_id, count=count)

    def filter_split(self, uid: str, split: str, flt: SplitFilter, *, offset: int = 0,
                     limit: int = 60) -> FilterPage:
        """The droplets of a split that match ``flt`` (every condition at once): their exact ``total`` and the
        ordinals ``offset … offset + limit`` of them, in split order — or of the seeded sample, in its order
        (the same seed gives the same sample, page after page).

        Answered from the facets indexed at publish (:mod:`~headwater.catalog.facet_search` says what each
        condition costs); no droplet is read.

        >>> import os, tempfile
        >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
        >>> _ = cat.create_database("main")
        >>> rows = [b'{"image":{"paths":[]},"classes":{"cat":{"instances":[%s]}}}' % b",".join([b"{}"] * k)
        ...         for k in (0, 1, 2, 3)]
        >>> ds = cat.publish("main", "acme", "cats", template={}, splits={"train": rows})
        >>> cat.filter_split(ds.uid, "train", SplitFilter.from_query({"count": "cat:2-"}))
        FilterPage(total=2, ordinals=[2, 3])
        >>> cat.close()
        """
        return self._facets(uid, split).filter(flt, offset=offset, limit=limit)

    def split_stats(self, uid: str, split: str) -> SplitStats:
        """The statistics of a split (class and instance counts, box sizes, confidences), computed at publish."""
        return self._facets(uid, split).stats()

    def ordinal_of(self, uid: str, split: str, droplet_uid: str) -> int | None:
        """The ordinal of the droplet whose uid (its ``uid``, else its image's) is ``droplet_uid`` (the first
        one if several share it), or None."""
        return self._facets(uid, split).ordinal_of(droplet_uid)


def _dataset_of_repository(conn: Connection, db_row: Row[Any], repo: Row[Any], tag_or_uid: str) -> Row[Any]:
    """The joined dataset row a tag of ``repo`` points to, or its dataset with that uid (NotFoundError)."""
    dataset_id = conn.execute(
        select(tags.c.dataset_id).where(tags.c.repository_id == repo.id, tags.c.name == tag_or_uid)
    ).scalar()
    row = dataset_rows_by_id(conn, [dataset_id])[0] if dataset_id is not None else \
        dataset_row_by_uid(conn, tag_or_uid, repository_id=repo.id)
    if row is None:
        raise NotFoundError(f"no tag or dataset {tag_or_uid!r} in repository '{repo.namespace}/{repo.name}' of "
                            f"database {db_row.name!r}")
    return row


def _reopen(location: str, busy_timeout_ms: int) -> Catalog:
    """Unpickle a :class:`Catalog`: open the same location again (connections are never pickled)."""
    return Catalog(location, busy_timeout_ms=busy_timeout_ms)
