"""Row writes shared by the catalog and the publisher, inside the caller's transaction: create a database
or a repository when missing, move a tag and record the move.

Why inside the caller's transaction: a publish that creates its database (``--create-database``) and its
repository must leave neither behind when it is refused or fails, so both are created by the same
transaction that writes the droplets.

Why a history table: a tag (``latest``, ``v2``) is a movable pointer; training runs that recorded
"``latest`` on 3 March" must be able to find which dataset that was, so every move is appended to
``tag_events`` with its time and the dataset it left, and nothing there is ever updated.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import ConflictError, NotFoundError
from .models import databases, repositories, tag_events, tags
from .name_rules import check_name

__all__ = ["ensure_database", "ensure_repository", "set_tag"]


def ensure_database(conn: Connection, name: str, *, exist_ok: bool, now: datetime, public: bool = False,
                    owner_uid: str | None = None) -> Row[Any]:
    """Return database ``name``, creating it (``public``, owned by user uid ``owner_uid``) if missing;
    ConflictError if it exists and not ``exist_ok`` (an existing one is returned unchanged)."""
    check_name("database name", name)
    return _get_or_create(conn, databases, (databases.c.name == name),
                          {"uid": str(uuid.uuid4()), "name": name, "public": bool(public), "created_at": now,
                           "owner_uid": owner_uid}, exist_ok=exist_ok, what=f"database {name!r}")


def ensure_repository(conn: Connection, db: Row[Any], namespace: str, name: str, *, exist_ok: bool,
                      now: datetime) -> Row[Any]:
    """Return repository ``namespace/name`` of ``db``, creating it; ConflictError if it exists and not
    ``exist_ok``."""
    check_name("namespace", namespace)
    check_name("repository name", name)
    where = (repositories.c.database_id == db.id, repositories.c.namespace == namespace,
             repositories.c.name == name)
    return _get_or_create(conn, repositories, where,
                          {"database_id": db.id, "namespace": namespace, "name": name, "created_at": now},
                          exist_ok=exist_ok, what=f"repository '{namespace}/{name}'",
                          place=f" in database {db.name!r}")


def _get_or_create(conn: Connection, table: Table, where: Any, values: dict[str, Any], *, exist_ok: bool,
                   what: str, place: str = "") -> Row[Any]:
    """The row of ``table`` matching ``where``, inserted from ``values`` when there is none (also when
    another writer inserts it at the same moment: PostgreSQL's unique constraint, then a re-read);
    ConflictError when it existed and not ``exist_ok``."""
    query = select(table).where(*(where if isinstance(where, tuple) else (where,)))
    row = conn.execute(query).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(**values))
            created = True
        except IntegrityError:  # created concurrently by another writer
            created = False
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"{what} vanished{place} while it was being created")
        if created:
            return row
    if not exist_ok:
        raise ConflictError(f"{what} already exists{place}")
    return row


def set_tag(conn: Connection, repository_id: int, tag: str, dataset_id: int, now: datetime) -> bool:
    """Point ``tag`` at ``dataset_id`` and append the move to the history.

    Returns False (and records nothing) when the tag already points there: that is not a move.
    """
    check_name("tag", tag)
    current = conn.execute(
        select(tags.c.id, tags.c.dataset_id).where(tags.c.repository_id == repository_id, tags.c.name == tag)
    ).first()
    if current is not None and current.dataset_id == dataset_id:
        return False
    if current is None:
        conn.execute(insert(tags).values(repository_id=repository_id, name=tag, dataset_id=dataset_id,
                                         updated_at=now))
        previous = None
    else:
        conn.execute(update(tags).where(tags.c.id == current.id).values(dataset_id=dataset_id, updated_at=now))
        previous = current.dataset_id
    conn.execute(insert(tag_events).values(repository_id=repository_id, tag=tag, dataset_id=dataset_id,
                                           previous_dataset_id=previous, moved_at=now))
    return True
