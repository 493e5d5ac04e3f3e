"""Publishing a dataset: every droplet of every split, the dataset row and its tags in ONE transaction.

Why one transaction: a reader must see either the whole new dataset (all splits, exact counts, its
tags moved) or nothing of it — never a half-written split behind a moved ``latest`` tag. Any
exception inside the ``with`` block rolls everything back.

The transaction (and, on SQLite, the write lock: other *writers* wait, readers never do) lasts from
entering the ``with`` block to leaving it, so do slow work such as packing images into a pool before
entering, and feed ``add_many`` from data that is ready.

Why batches: droplets are buffered and written ``batch_size`` rows at a time (``executemany`` on
SQLite; on PostgreSQL into one ``COPY`` kept open across batches until another statement needs the
connection), so publishing millions of droplets is bound by the database's write speed, not by
per-row statement overhead. Ordinals are assigned contiguously per split in the
order droplets are added.

Facets: each batch's droplets are also decoded once for what filters and statistics need
(:mod:`headwater.catalog.facet_index`), unless the caller hands their packed facts with them
(``add_many(..., facts=...)``: ``headwater publish`` computes them on its worker processes, off this
process's critical path) — their uid and metadata rows written with the batch (PostgreSQL:
gathered and copied every ~50,000 rows, between two COPYs of droplets), the per-class postings and the
split's statistics at the end, all in the same transaction.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_database("main")
    >>> with cat.publisher("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate"}) as pub:
    ...     first = pub.add("train", b'{"kind":"ImageAnnotation"}')
    ...     added = pub.add_many("validation", [b'{"a":1}', b'{"a":2}'])
    ...     pub.tag("latest")
    >>> pub.record.splits
    {'train': 1, 'validation': 2}
    >>> cat.close()
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from types import TracebackType
from typing import Any, cast

import msgspec
from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from .engine import write_connection
from .errors import AlreadyPublishedError, CatalogError
from .facet_index import FacetRows, SplitFacets, write_facet_rows, write_split_facets
from .lookup import database_row, json_object_text
from .models import datasets, publish_keys, splits, utcnow
from .mutations import ensure_database, ensure_repository, set_tag
from .name_rules import check_name
from .records import DatasetRecord

__all__ = ["Publisher", "PublishKey", "DEFAULT_BATCH_SIZE", "check_publish_key"]

DEFAULT_BATCH_SIZE = 5000
_FACET_ROWS = 50_000  # PostgreSQL: facet rows gathered before the droplets' COPY is ended to write them
_SQLITE_INSERT = "INSERT INTO droplets (split_id, ordinal, data) VALUES (?, ?, ?)"
_PG_COPY = "COPY droplets (split_id, ordinal, data) FROM STDIN (FORMAT BINARY)"


def _check_data(split: str, ordinal: int, data: object) -> bytes:
    if type(data) is not bytes:
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        else:
            raise CatalogError(f"droplet {ordinal} of split {split!r}: expected bytes, got {type(data).__name__}")
    if not data:
        raise CatalogError(f"droplet {ordinal} of split {split!r} is empty")
    if b"\n" in data:  # streams are NDJSON: one droplet per line
        raise CatalogError(f"droplet {ordinal} of split {split!r} contains a newline; encode it as compact JSON")
    return data


def _all_good(items: list[Any]) -> bool:
    """True when every item is non-empty ``bytes`` without a newline — checked by C loops (``map``, ``all``),
    not one Python step a droplet; False sends the caller to the per-item check that names the bad one."""
    return (set(map(type, items)) == {bytes} and all(items)
            and not any(map(bytes.__contains__, items, repeat(b"\n"))))


@dataclass(frozen=True)
class PublishKey:
    """A publish's idempotency key: ``key`` chosen by the sender (unique per logical publish), scoped to the
    user ``user_uid``; ``fingerprint`` identifies what was asked (e.g. a sha256 of the request), so that the
    same key sent with other content is refused rather than answered with the wrong dataset."""

    user_uid: str
    key: str
    fingerprint: str


def _published_with_key(conn: Connection, key: PublishKey) -> tuple[str, str] | None:
    """``(fingerprint, dataset uid)`` of the publish that used ``key`` for its user, or None."""
    row = conn.execute(
        select(publish_keys.c.fingerprint, datasets.c.uid).join(datasets, datasets.c.id == publish_keys.c.dataset_id)
        .where(publish_keys.c.user_uid == key.user_uid, publish_keys.c.key == key.key)
    ).first()
    return (str(row.fingerprint), str(row.uid)) if row is not None else None


def check_publish_key(conn: Connection, key: PublishKey) -> None:
    """Raise :class:`~headwater.catalog.AlreadyPublishedError` if a publish with ``key`` committed before."""
    found = _published_with_key(conn, key)
    if found is None:
        return
    fingerprint, uid = found
    if fingerprint == key.fingerprint:
        raise AlreadyPublishedError(f"publish {key.key!r} already committed as dataset {uid}", key=key.key,
                                    dataset_uid=uid, same_request=True)
    raise AlreadyPublishedError(
        f"Idempotency-Key {key.key!r} was already used for another publish (dataset {uid}); a retry must send "
        "the same request, and a new publish needs a new key", key=key.key, dataset_uid=uid, same_request=False)


class Publisher:
    """Context manager that writes one new dataset (see the module docstring). Made by
    :meth:`Catalog.publisher <headwater.catalog.Catalog.publisher>`."""

    def __init__(self, engine: Engine, database: str, namespace: str, name: str, *,
                 template: Mapping[str, Any] | str | bytes, pools: Mapping[str, str] | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, create_database: bool = False,
                 key: PublishKey | None = None) -> None:
        check_name("namespace", namespace)
        check_name("repository name", name)
        self._template_text = json_object_text("template", template)
        pools = dict(pools or {})
        for pool_name, url in pools.items():
            check_name("pool name", pool_name)
            if not isinstance(url, str) or not url:
                raise CatalogError(f"pool {pool_name!r}: URL must be a non-empty string, got {url!r}")
        self._pools_text = msgspec.json.encode(pools).decode("utf-8")
        if batch_size < 1:
            raise CatalogError(f"batch_size must be >= 1, got {batch_size}")
        self._engine = engine
        self._database = database
        self._namespace = namespace
        self._name = name
        self._batch_size = batch_size
        self._create_database = create_database
        self._key = key
        self.uid: str = str(uuid.uuid4())
        """The new dataset's uid, known before commit (it is immutable)."""
        self._splits: dict[str, list[int]] = {}  # name → [split_id, next ordinal]
        self._split_facets: dict[int, SplitFacets] = {}  # split_id → its facets so far (headwater.catalog.facet_index)
        self._uid_rows: FacetRows = []
        self._meta_rows: FacetRows = []
        self._tags: list[str] = []
        self._buffer: list[tuple[int, int, bytes]] = []
        self._facts: list[bytes | None] = []  # the buffered droplets' packed facets when given (pack_facts)
        self._copy: tuple[Any, Any, Any] | None = None  # PostgreSQL: (cursor, copy context, copy) while open
        self._state = "new"
        self._record: DatasetRecord | None = None
        self._conn: Connection | None = None
        self._cm: Any = None

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> Publisher:
        if self._state != "new":
            raise CatalogError("a Publisher can be entered only once")
        self._cm = write_connection(self._engine)
        self._conn = self._cm.__enter__()
        try:
            now = utcnow()
            if self._create_database:  # created by this transaction: a refused publish leaves none behind
                self._db = ensure_database(self._conn, self._database, exist_ok=True, now=now)
            else:
                self._db = database_row(self._conn, self._database)
            self._repo = ensure_repository(self._conn, self._db, self._namespace, self._name,
                                           exist_ok=True, now=now)
            self._created_at = now
            self._dataset_id = self._conn.execute(
                insert(datasets).values(uid=self.uid, repository_id=self._repo.id, template=self._template_text,
                                        pools=self._pools_text, created_at=now).returning(datasets.c.id)
            ).scalar_one()
            if self._key is not None:
                self._claim(self._conn, self._key, now)
        except BaseException:
            self._state = "closed"
            self._cm.__exit__(*sys.exc_info())
            raise
        self._state = "open"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._state != "open":
            return
        if exc_type is None:
            try:
                self._finish()
            except BaseException as err:
                self._state = "closed"
                self._abort_copy(err)
                self._cm.__exit__(*sys.exc_info())
                raise
        self._state = "closed"
        if exc is not None:
            self._abort_copy(exc)
        self._cm.__exit__(exc_type, exc, tb)  # commits when exc_type is None, else rolls back
        if exc_type is None:
            self._record = self._build_record()

    def _claim(self, conn: Connection, key: PublishKey, now: Any) -> None:
        """Record ``key`` → this dataset in this transaction, first thing: a second publish with the same key
        waits here for the first to commit or roll back (PostgreSQL: the unique index; SQLite: the write
        lock), then finds the key taken and raises :class:`AlreadyPublishedError` — never two datasets."""
        check_publish_key(conn, key)
        try:
            with conn.begin_nested():  # a savepoint: the transaction stays usable after a violation
                conn.execute(insert(publish_keys).values(user_uid=key.user_uid, key=key.key,
                                                         fingerprint=key.fingerprint, dataset_id=self._dataset_id,
                                                         created_at=now))
        except IntegrityError:  # taken since the check (PostgreSQL: after waiting for that transaction)
            check_publish_key(conn, key)
            raise

    # -- writing ---------------------------------------------------------------------------------
    def _open_conn(self) -> Connection:
        if self._state != "open" or self._conn is None:
            raise CatalogError("use the publisher inside its `with` block (it is one transaction)")
        return self._conn

    def _split(self, split: str) -> list[int]:
        state = self._splits.get(split)
        if state is None:
            check_name("split name", split)
            self._end_copy()  # the connection is busy while a COPY is open
            split_id = self._open_conn().execute(
                insert(splits).values(dataset_id=self._dataset_id, name=split, count=0).returning(splits.c.id)
            ).scalar_one()
            state = self._splits[split] = [split_id, 0]
            self._split_facets[split_id] = SplitFacets()
        return state

    def add(self, split: str, data: bytes | bytearray | memoryview) -> int:
        """Append one droplet (compact JSON bytes, no newline) to ``split``; returns its ordinal."""
        self._open_conn()
        state = self._split(split)
        ordinal = state[1]
        self._buffer.append((state[0], ordinal, _check_data(split, ordinal, data)))
        self._facts.append(None)
        state[1] = ordinal + 1
        if len(self._buffer) >= self._batch_size:
            self._flush()
        return ordinal

    def add_many(self, split: str, items: Iterable[bytes | bytearray | memoryview], *,
                 facts: Sequence[bytes] | None = None) -> int:
        """Append droplets to ``split`` in order; returns how many were added. An empty iterable still
        creates the split (with count 0). ``facts``: the droplets' facets, one a droplet, as
        :func:`~headwater.catalog.facet_facts.pack_facts` packs them where the droplets were decoded anyway (a
        publish's worker processes): stored as they are, the droplets are not decoded here again."""
        self._open_conn()
        state = self._split(split)
        split_id, first = state
        if facts is not None:
            items = items if type(items) is list else list(items)
            if len(facts) != len(items):
                raise CatalogError(f"split {split!r}: {len(items)} droplets but {len(facts)} facts")
        if type(items) is list and items and _all_good(items):  # the bulk path: no Python code per droplet
            self._add_rows(list(zip(repeat(split_id), range(first, first + len(items)), items)),
                           list(facts) if facts is not None else [None] * len(items))
            state[1] = first + len(items)
            return len(items)
        buffer, batch, check = self._buffer, self._batch_size, _check_data
        ordinal = first
        try:
            for i, data in enumerate(items):
                if type(data) is not bytes or not data or b"\n" in data:
                    data = check(split, ordinal, data)
                buffer.append((split_id, ordinal, data))
                self._facts.append(facts[i] if facts is not None else None)
                ordinal += 1
                if len(buffer) >= batch:
                    self._flush()
        finally:
            state[1] = ordinal
        return ordinal - first

    def _add_rows(self, rows: list[tuple[int, int, bytes]], facts: list[bytes | None]) -> None:
        """Buffer checked rows (and their facts, None: to compute), flushing every ``batch_size``."""
        buffer, batch = self._buffer, self._batch_size
        start = 0
        while start < len(rows):
            room = batch - len(buffer)
            buffer.extend(rows[start:start + room])
            self._facts.extend(facts[start:start + room])
            start += room
            if len(buffer) >= batch:
                self._flush()

    def tag(self, name: str) -> None:
        """Point tag ``name`` at this dataset when the transaction commits."""
        self._open_conn()
        check_name("tag", name)
        if name not in self._tags:
            self._tags.append(name)

    def _flush(self) -> None:
        rows = self._buffer  # cleared in place: add_many holds a reference to this list
        if not rows:
            return
        conn = self._open_conn()
        self._index(rows)
        if conn.dialect.name == "postgresql":
            copy = self._copy[2] if self._copy is not None else self._start_copy(conn)
            write = copy.write_row
            for row in rows:
                write(row)
            if len(self._uid_rows) + len(self._meta_rows) >= _FACET_ROWS:
                self._flush_facets()
        else:
            conn.exec_driver_sql(_SQLITE_INSERT, rows)
            self._flush_facets()
        rows.clear()
        self._facts.clear()

    def _index(self, rows: list[tuple[int, int, bytes]]) -> None:
        """Compute the facets of buffered rows (runs of one split at a time, as ``add`` may interleave splits),
        from their facts when every row of the run came with them, else from their bytes."""
        start = 0
        while start < len(rows):
            split_id, first = rows[start][0], rows[start][1]
            stop = start + 1
            while stop < len(rows) and rows[stop][0] == split_id:
                stop += 1
            facts = self._facts[start:stop]
            uid_rows, meta_rows = self._split_facets[split_id].add(
                split_id, first, [r[2] for r in rows[start:stop]],
                None if None in facts else cast("list[bytes]", facts))
            self._uid_rows += uid_rows
            self._meta_rows += meta_rows
            start = stop

    def _flush_facets(self) -> None:
        if self._uid_rows or self._meta_rows:
            self._end_copy()  # PostgreSQL: the connection is busy while the droplets' COPY is open
            write_facet_rows(self._open_conn(), self._uid_rows, self._meta_rows)

    def _start_copy(self, conn: Connection) -> Any:
        """Open the COPY that takes every batch until another statement needs the connection (a new split, the
        end): one COPY for the whole publish rather than one a batch, as the database's own bulk load does."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # None once closed
        context = cursor.copy(_PG_COPY)
        copy = context.__enter__()
        copy.set_types(["int4", "int8", "bytea"])
        self._copy = (cursor, context, copy)
        return copy

    def _abort_copy(self, error: BaseException) -> None:
        """End an open COPY after ``error``, before the rollback; a failure to end it is not the story (the
        transaction is rolled back either way), so it does not replace ``error``."""
        with contextlib.suppress(Exception):
            self._end_copy(error)

    def _end_copy(self, error: BaseException | None = None) -> None:
        """Finish the open COPY (``error``: abort it, so the server discards its rows)."""
        if self._copy is None:
            return
        cursor, context, _copy = self._copy
        self._copy = None
        try:
            if error is None:
                context.__exit__(None, None, None)
            else:
                context.__exit__(type(error), error, error.__traceback__)
        finally:
            cursor.close()

    def _finish(self) -> None:
        self._flush()
        self._end_copy()
        self._flush_facets()
        conn = self._open_conn()
        for split_id, facets in self._split_facets.items():
            write_split_facets(conn, split_id, facets)
        if self._splits:
            conn.execute(
                update(splits).where(splits.c.id == bindparam("b_id")).values(count=bindparam("b_count")),
                [{"b_id": sid, "b_count": count} for sid, count in self._splits.values()],
            )
        now = utcnow()
        for tag in self._tags:
            set_tag(conn, self._repo.id, tag, self._dataset_id, now)

    # -- result ----------------------------------------------------------------------------------
    def _build_record(self) -> DatasetRecord:
        db: Row[Any] = self._db
        return DatasetRecord(
            uid=self.uid,
            database=db.uid,
            namespace=self._namespace,
            name=self._name,
            template=msgspec.json.decode(self._template_text),
            splits={name: state[1] for name, state in self._splits.items()},
            pools=msgspec.json.decode(self._pools_text),
            created_at=self._created_at,
            database_name=db.name,
        )

    @property
    def record(self) -> DatasetRecord:
        """The published dataset; available once the ``with`` block has committed."""
        if self._record is None:
            raise CatalogError("the dataset is not published yet: the publisher's `with` block has not committed")
        return self._record

