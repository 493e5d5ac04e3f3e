"""Row lookups by name shared by :class:`~headwater.catalog.Catalog` and the publisher.

Each function takes an open connection (so it joins the caller's transaction) and raises
:class:`NotFoundError` with a message naming exactly what is missing and where.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from sqlalchemy import Connection, Row, Table, or_, select

from .errors import CatalogError, NotFoundError
from .models import databases, datasets, repositories, splits
from .name_rules import check_name
from .records import DatabaseRecord, DatasetRecord, RepositoryRecord

__all__ = [
    "row_by_name_or_uid",
    "database_row",
    "repository_row",
    "dataset_row_by_uid",
    "dataset_rows_by_id",
    "dataset_record",
    "database_record",
    "repository_record",
    "json_object_text",
    "split_counts",
]

_DATASET_COLUMNS = (
    datasets.c.id,
    datasets.c.uid,
    datasets.c.template,
    datasets.c.pools,
    datasets.c.created_at,
    repositories.c.namespace,
    repositories.c.name,
    databases.c.uid.label("database_uid"),
    databases.c.name.label("database_name"),
)


def row_by_name_or_uid(conn: Connection, table: Table, name_column: str, kind: str, name_or_uid: str) -> Row[Any]:
    """The row of ``table`` whose ``name_column`` (preferred) or ``uid`` is ``name_or_uid``.

    Why a name wins: names are what people type, and a name that happens to equal another row's uid
    must still find its own row."""
    if not isinstance(name_or_uid, str) or not name_or_uid:
        raise NotFoundError(f"{kind} {name_or_uid!r} not found")
    name = table.c[name_column]
    rows = conn.execute(select(table).where(or_(name == name_or_uid, table.c.uid == name_or_uid))).all()
    for row in rows:
        if getattr(row, name_column) == name_or_uid:
            return row
    if rows:
        return rows[0]
    raise NotFoundError(f"{kind} {name_or_uid!r} not found")


def database_row(conn: Connection, name_or_uid: str) -> Row[Any]:
    """The ``databases`` row whose name (preferred) or uid is ``name_or_uid``."""
    return row_by_name_or_uid(conn, databases, "name", "database", name_or_uid)


def repository_row(conn: Connection, db: Row[Any], namespace: str, name: str) -> Row[Any]:
    """The ``repositories`` row ``namespace/name`` of database row ``db``."""
    check_name("namespace", namespace)
    check_name("repository name", name)
    row = conn.execute(
        select(repositories).where(
            repositories.c.database_id == db.id,
            repositories.c.namespace == namespace,
            repositories.c.name == name,
        )
    ).first()
    if row is None:
        raise NotFoundError(f"repository '{namespace}/{name}' not found in database {db.name!r}")
    return row


def _dataset_select() -> Any:
    return (
        select(*_DATASET_COLUMNS)
        .select_from(datasets)
        .join(repositories, repositories.c.id == datasets.c.repository_id)
        .join(databases, databases.c.id == repositories.c.database_id)
    )


def dataset_row_by_uid(conn: Connection, uid: str, *, repository_id: int | None = None) -> Row[Any] | None:
    """The dataset row (joined with its repository and database) with this uid, or None."""
    query = _dataset_select().where(datasets.c.uid == uid)
    if repository_id is not None:
        query = query.where(datasets.c.repository_id == repository_id)
    return conn.execute(query).first()


def dataset_rows_by_id(conn: Connection, ids: Iterable[int]) -> list[Row[Any]]:
    """Dataset rows (joined) for these primary keys."""
    return list(conn.execute(_dataset_select().where(datasets.c.id.in_(list(ids)))).all())


def split_counts(conn: Connection, dataset_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """dataset id → {split name: count}, splits in creation order."""
    ids = list(dataset_ids)
    out: dict[int, dict[str, int]] = {i: {} for i in ids}
    if not ids:
        return out
    query = (
        select(splits.c.dataset_id, splits.c.name, splits.c.count)
        .where(splits.c.dataset_id.in_(ids))
        .order_by(splits.c.id)
    )
    for dataset_id, name, count in conn.execute(query):
        out[dataset_id][name] = int(count)
    return out


def dataset_record(row: Row[Any], counts: dict[str, int]) -> DatasetRecord:
    """Build a :class:`DatasetRecord` from a joined dataset row and its split counts."""
    return DatasetRecord(
        uid=row.uid,
        database=row.database_uid,
        namespace=row.namespace,
        name=row.name,
        template=msgspec.json.decode(row.template),
        splits=dict(counts),
        pools=msgspec.json.decode(row.pools),
        created_at=row.created_at,
        database_name=row.database_name,
    )


def database_record(row: Row[Any]) -> DatabaseRecord:
    """Build a :class:`DatabaseRecord` from a ``databases`` row."""
    return DatabaseRecord(uid=row.uid, name=row.name, public=bool(row.public), created_at=row.created_at,
                          owner=row.owner_uid)


def repository_record(db: Row[Any], repo: Row[Any]) -> RepositoryRecord:
    """Build a :class:`RepositoryRecord` from a database row and a repository row."""
    return RepositoryRecord(database=db.uid, namespace=repo.namespace, name=repo.name, database_name=db.name)


def json_object_text(what: str, value: Mapping[str, Any] | str | bytes) -> str:
    """JSON text of an object given as a mapping or as JSON text (kept exactly as given)."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CatalogError(f"{what} is not UTF-8 JSON: {exc}") from None
    if isinstance(value, str):
        try:
            parsed = msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise CatalogError(f"{what} is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise CatalogError(f"{what} must be a JSON object, got {type(parsed).__name__}")
        return value
    if not isinstance(value, Mapping):
        raise CatalogError(f"{what} must be a mapping or JSON text, got {type(value).__name__}")
    try:
        return msgspec.json.encode(dict(value)).decode("utf-8")
    except (TypeError, msgspec.EncodeError) as exc:
        raise CatalogError(f"{what} cannot be stored as JSON: {exc}") from None
