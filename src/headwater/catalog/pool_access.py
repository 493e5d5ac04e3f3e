"""Who may read and write a served pool: an owner, a public flag and grants, recorded per pool.

Why in the catalog: a server's pools (``headwater serve --pool OWNER/REPO=URL``) hold the images of its
datasets, so their access must follow the same users and keys as the databases, and every server process
must agree on it. A pool the catalog has no record of has no owner and is private: nobody may write to
it, and it is readable only by those who may read a database whose datasets use it (the server decides
that, see :mod:`headwater.server.auth`). ``headwater pool set OWNER/REPO --owner USER --public`` records
one; ``headwater pool grant`` lets another user read or also write.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_user("alice"); _ = cat.create_user("bob")
    >>> cat.pool_access("acme/images").owner is None
    True
    >>> p = cat.change_pool_access("acme/images", owner="alice", public=False)
    >>> p = cat.grant_pool_access("acme/images", "bob", "write")
    >>> p.owner == cat.user("alice").uid, p.grants == {cat.user("bob").uid: "write"}
    (True, True)
    >>> cat.close()
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import InvalidNameError, NotFoundError
from .models import databases, datasets, pool_grants, pools, repositories, utcnow
from .name_rules import check_name
from .users import KEEP, PERMISSIONS, Keep, user_row

__all__ = ["PoolAccess", "PoolAccessCatalog", "check_pool_repo"]


@dataclass(frozen=True, slots=True)
class PoolAccess:
    """A pool's access settings: its owner's uid (None: nobody), whether it is public, and grants
    (user uid → ``"read"`` or ``"write"``). ``recorded`` is False for a pool the catalog has no row for."""

    repo_id: str
    owner: str | None = None
    public: bool = False
    grants: dict[str, str] = field(default_factory=dict)
    recorded: bool = False


def check_pool_repo(repo_id: str) -> str:
    """``repo_id`` if it is ``OWNER/NAME`` with two valid names, else :class:`InvalidNameError`.

    >>> check_pool_repo("acme/images")
    'acme/images'
    """
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2:
        raise InvalidNameError(f"invalid pool {repo_id!r}: expected OWNER/NAME")
    check_name("pool owner", parts[0])
    check_name("pool name", parts[1])
    return repo_id


class PoolAccessCatalog:
    """The pool-access methods of :class:`~headwater.catalog.Catalog` (mixed into it)."""

    if TYPE_CHECKING:  # provided by Catalog
        def _read(self) -> AbstractContextManager[Connection]: ...

        def _write(self) -> AbstractContextManager[Connection]: ...

    def pool_access(self, repo_id: str) -> PoolAccess:
        """The access settings of pool ``repo_id`` (``OWNER/NAME``); defaults when none are recorded."""
        check_pool_repo(repo_id)
        with self._read() as conn:
            return _access(conn, repo_id)

    def pool_accesses(self) -> list[PoolAccess]:
        """Every recorded pool's settings, by repo id."""
        with self._read() as conn:
            ids = conn.execute(select(pools.c.repo_id).order_by(pools.c.repo_id)).scalars().all()
            return [_access(conn, repo_id) for repo_id in ids]

    def change_pool_access(self, repo_id: str, *, owner: str | Keep | None = KEEP,
                        public: bool | None = None) -> PoolAccess:
        """Give pool ``repo_id`` to ``owner`` (a username or uid; None: to nobody) and/or make it ``public``;
        arguments left out keep their value (a new record starts without owner, private)."""
        check_pool_repo(repo_id)
        with self._write() as conn:
            row = _ensure(conn, repo_id)
            values: dict[str, Any] = {"updated_at": utcnow()}
            if not isinstance(owner, Keep):
                values["owner_uid"] = user_row(conn, owner).uid if owner is not None else None
            if public is not None:
                values["public"] = bool(public)
            conn.execute(update(pools).where(pools.c.id == row.id).values(**values))
            return _access(conn, repo_id)

    def grant_pool_access(self, repo_id: str, user: str, permission: str = "read") -> PoolAccess:
        """Let ``user`` read (``"read"``) or also write (``"write"``) pool ``repo_id``."""
        check_pool_repo(repo_id)
        if permission not in PERMISSIONS:
            raise InvalidNameError(f"unknown permission {permission!r}: use one of {', '.join(PERMISSIONS)}")
        with self._write() as conn:
            row = _ensure(conn, repo_id)
            uid = user_row(conn, user).uid
            conn.execute(delete(pool_grants).where(pool_grants.c.pool_id == row.id, pool_grants.c.user_uid == uid))
            conn.execute(insert(pool_grants).values(pool_id=row.id, user_uid=uid, permission=permission,
                                                    granted_at=utcnow()))
            return _access(conn, repo_id)

    def revoke_pool_access(self, repo_id: str, user: str) -> PoolAccess:
        """Take back what :meth:`grant_pool_access` gave ``user`` on pool ``repo_id``."""
        check_pool_repo(repo_id)
        with self._write() as conn:
            uid = user_row(conn, user).uid
            row = conn.execute(select(pools.c.id).where(pools.c.repo_id == repo_id)).first()
            deleted = 0
            if row is not None:
                deleted = conn.execute(delete(pool_grants).where(pool_grants.c.pool_id == row.id,
                                                                 pool_grants.c.user_uid == uid)).rowcount
            if not deleted:
                raise NotFoundError(f"user {user!r} has no grant on pool {repo_id!r}")
            return _access(conn, repo_id)

    def dataset_pool_locations(self) -> list[tuple[str, list[str]]]:
        """``(database uid, [pool locations its datasets name])`` for every database with datasets: what a
        server matches against its served pools to know which databases use which pool."""
        with self._read() as conn:
            rows = conn.execute(
                select(databases.c.uid, datasets.c.pools)
                .select_from(datasets)
                .join(repositories, repositories.c.id == datasets.c.repository_id)
                .join(databases, databases.c.id == repositories.c.database_id)
            ).all()
        found: dict[str, set[str]] = {}
        for db_uid, pools_text in rows:
            locations = msgspec.json.decode(pools_text)
            if isinstance(locations, dict):
                found.setdefault(db_uid, set()).update(str(v) for v in locations.values())
        return [(db_uid, sorted(locations)) for db_uid, locations in sorted(found.items())]


def _ensure(conn: Connection, repo_id: str) -> Row[Any]:
    query = select(pools).where(pools.c.repo_id == repo_id)
    row = conn.execute(query).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(pools).values(repo_id=repo_id, owner_uid=None, public=False, updated_at=utcnow()))
        except IntegrityError:  # recorded concurrently by another writer
            pass
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"pool {repo_id!r} vanished while it was being recorded")
    return row


def _access(conn: Connection, repo_id: str) -> PoolAccess:
    row = conn.execute(select(pools).where(pools.c.repo_id == repo_id)).first()
    if row is None:
        return PoolAccess(repo_id)
    grants = {uid: permission for uid, permission in conn.execute(
        select(pool_grants.c.user_uid, pool_grants.c.permission).where(pool_grants.c.pool_id == row.id))}
    return PoolAccess(repo_id, row.owner_uid, bool(row.public), grants, recorded=True)
