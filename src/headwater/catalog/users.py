"""Users, API keys and database ownership: who may read and write what over HTTP.

Why keys are stored hashed: an API key is a long random secret (``hw_<key id>_<43 random chars>``, about
256 bits), so a single SHA-256 of it is as good as a slow password hash — nobody can guess a preimage —
and it lets :meth:`~UserCatalog.authenticate` find a key with one unique-index lookup. The secret is
returned once, by :meth:`~UserCatalog.create_api_key`; afterwards only its public ``key_id`` (listed, used
to revoke) is known. A key is ``read`` (read what its user can see) or ``write`` (also publish, move tags,
upload). Revoking keeps the row (``revoked_at``) so listings show what existed.

Databases may have an owner (a user) and a ``public`` flag: a private owned database is visible to its
owner only; a database without owner is shared by every authenticated user of the server; a public one
is readable by everyone. (The server applies these rules; see ``headwater.server.auth``.)

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> alice = cat.create_user("alice", email="alice@example.org")
    >>> key_id, secret = cat.create_api_key("alice", "write")
    >>> who = cat.authenticate(secret)
    >>> who.username, who.permission, who.can_write
    ('alice', 'write', True)
    >>> cat.revoke_api_key(key_id).revoked
    True
    >>> cat.authenticate(secret) is None
    True
    >>> cat.close()
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import CatalogError, ConflictError, NotFoundError
from .lookup import database_record, database_row, row_by_name_or_uid
from .models import api_keys, databases, users, utcnow
from .name_rules import check_name
from .records import DatabaseRecord

__all__ = [
    "Permission",
    "PERMISSIONS",
    "UserRecord",
    "ApiKeyRecord",
    "Principal",
    "UserCatalog",
    "hash_secret",
    "looks_like_secret",
    "user_row",
    "KEEP",
    "Keep",
]

Permission = Literal["read", "write"]
PERMISSIONS: tuple[str, ...] = ("read", "write")
_SECRET = re.compile(r"hw_([0-9a-f]{12})_[A-Za-z0-9_-]{20,}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def hash_secret(secret: str) -> str:
    """SHA-256 hex of an API key (what the catalog stores)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` has the shape of a headwater API key (``hw_<12 hex>_<random>``).

    >>> looks_like_secret("hw_0123456789ab_" + "x" * 43), looks_like_secret("aHdfMDEy")
    (True, False)
    """
    return _SECRET.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user of the server (``default_database`` is a database uid or None)."""

    uid: str
    username: str
    email: str
    default_database: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as listed: never the secret, only its public id."""

    key_id: str
    username: str
    permission: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        """Whether the key has been revoked (it authenticates nothing any more)."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the key's user and the key's permission."""

    uid: str
    username: str
    email: str
    permission: str
    key_id: str
    default_database: str | None = None

    @property
    def can_write(self) -> bool:
        """A ``write`` key (write implies read)."""
        return self.permission == "write"


class Keep:
    """Type of :data:`KEEP`."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()
"""Default of :meth:`UserCatalog.change_database_access`'s ``owner``: leave the owner as it is."""


def _check_permission(permission: str) -> str:
    if permission not in PERMISSIONS:
        raise CatalogError(f"unknown permission {permission!r}: use one of {', '.join(PERMISSIONS)}")
    return permission


def _user_record(row: Row[Any]) -> UserRecord:
    return UserRecord(uid=row.uid, username=row.username, email=row.email,
                      default_database=row.default_database_uid, created_at=row.created_at)


def user_row(conn: Connection, name_or_uid: str) -> Row[Any]:
    """The ``users`` row whose username (preferred) or uid is ``name_or_uid``."""
    return row_by_name_or_uid(conn, users, "username", "user", name_or_uid)


class UserCatalog:
    """The user/key/ownership methods of :class:`~headwater.catalog.Catalog` (mixed into it).

    Relies on the catalog's ``_read()`` / ``_write()`` connection context managers.
    """

    if TYPE_CHECKING:  # provided by Catalog
        def _read(self) -> AbstractContextManager[Connection]: ...

        def _write(self) -> AbstractContextManager[Connection]: ...

    # -- users -----------------------------------------------------------------------------------
    def create_user(self, username: str, *, email: str = "", default_database: str | None = None,
                    exist_ok: bool = False) -> UserRecord:
        """Create user ``username`` (a catalog name); ConflictError if it exists (unless ``exist_ok``)."""
        check_name("username", username)
        if email and not _EMAIL.fullmatch(email):
            raise CatalogError(f"invalid email {email!r}")
        with self._write() as conn:
            existing = conn.execute(select(users).where(users.c.username == username)).first()
            if existing is not None:
                if not exist_ok:
                    raise ConflictError(f"user {username!r} already exists")
                return _user_record(existing)
            default_uid = database_row(conn, default_database).uid if default_database else None
            try:
                with conn.begin_nested():
                    conn.execute(insert(users).values(uid=str(uuid.uuid4()), username=username, email=email,
                                                      default_database_uid=default_uid, created_at=utcnow()))
            except IntegrityError:
                raise ConflictError(f"user {username!r} already exists") from None
            return _user_record(user_row(conn, username))

    def user(self, name_or_uid: str) -> UserRecord:
        """The user with this username (or uid)."""
        with self._read() as conn:
            return _user_record(user_row(conn, name_or_uid))

    def users(self) -> list[UserRecord]:
        """All users, by username."""
        with self._read() as conn:
            return [_user_record(r) for r in conn.execute(select(users).order_by(users.c.username))]

    def choose_default_database(self, user: str, database: str | None) -> UserRecord:
        """Set (or clear, with None) the database a user's ``GET /user`` names as ``defaultDatabase``."""
        with self._write() as conn:
            row = user_row(conn, user)
            db_uid = database_row(conn, database).uid if database is not None else None
            conn.execute(update(users).where(users.c.id == row.id).values(default_database_uid=db_uid))
            return _user_record(user_row(conn, row.uid))

    # -- API keys --------------------------------------------------------------------------------
    def create_api_key(self, user: str, permission: str = "read") -> tuple[str, str]:
        """A new key for ``user`` (username or uid): ``(key_id, secret)``. The secret is not stored —
        only its SHA-256 — so this is the only time it can be shown."""
        _check_permission(permission)
        with self._write() as conn:
            row = user_row(conn, user)
            for _attempt in range(5):
                key_id = secrets.token_hex(6)
                secret = f"hw_{key_id}_{secrets.token_urlsafe(32)}"
                try:
                    with conn.begin_nested():
                        conn.execute(insert(api_keys).values(key_id=key_id, user_id=row.id,
                                                             key_hash=hash_secret(secret), permission=permission,
                                                             created_at=utcnow()))
                except IntegrityError:  # a 48-bit key id collided: draw again
                    continue
                return key_id, secret
        raise CatalogError("could not allocate a unique API key id")  # pragma: no cover

    @staticmethod
    def _key_rows() -> Any:
        return (select(api_keys.c.key_id, api_keys.c.permission, api_keys.c.created_at, api_keys.c.revoked_at,
                       users.c.username)
                .join(users, users.c.id == api_keys.c.user_id))

    def api_keys(self, user: str | None = None, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """Keys (of one user, or of all), oldest first; never the secrets."""
        with self._read() as conn:
            query = self._key_rows().order_by(api_keys.c.id)
            if user is not None:
                query = query.where(api_keys.c.user_id == user_row(conn, user).id)
            if not include_revoked:
                query = query.where(api_keys.c.revoked_at.is_(None))
            return [ApiKeyRecord(key_id=r.key_id, username=r.username, permission=r.permission,
                                 created_at=r.created_at, revoked_at=r.revoked_at) for r in conn.execute(query)]

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key by its public id (idempotent: revoking twice keeps the first time)."""
        with self._write() as conn:
            conn.execute(update(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=utcnow()))
            row = conn.execute(self._key_rows().where(api_keys.c.key_id == key_id)).first()
            if row is None:
                raise NotFoundError(f"API key {key_id!r} not found")
            return ApiKeyRecord(key_id=row.key_id, username=row.username, permission=row.permission,
                                created_at=row.created_at, revoked_at=row.revoked_at)

    def authenticate(self, secret: str) -> Principal | None:
        """The principal a secret stands for, or None (unknown, malformed or revoked key)."""
        if not isinstance(secret, str) or not looks_like_secret(secret):
            return None
        digest = hash_secret(secret)
        with self._read() as conn:
            row = conn.execute(
                select(api_keys.c.key_id, api_keys.c.key_hash, api_keys.c.permission, api_keys.c.revoked_at,
                       users.c.uid, users.c.username, users.c.email, users.c.default_database_uid)
                .join(users, users.c.id == api_keys.c.user_id)
                .where(api_keys.c.key_hash == digest)
            ).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return Principal(uid=row.uid, username=row.username, email=row.email, permission=row.permission,
                         key_id=row.key_id, default_database=row.default_database_uid)

    def key_principal(self, key_id: str) -> Principal | None:
        """The principal of the key with public id ``key_id``, or None when it is unknown or revoked.

        Why: a session (the viewer's sign-in cookie) names its key by id — never by the secret — and is
        checked against the key on every request, so revoking the key ends the session at once.
        """
        if not isinstance(key_id, str) or not re.fullmatch(r"[0-9a-f]{12}", key_id):
            return None
        with self._read() as conn:
            row = conn.execute(
                select(api_keys.c.key_id, api_keys.c.permission, api_keys.c.revoked_at,
                       users.c.uid, users.c.username, users.c.email, users.c.default_database_uid)
                .join(users, users.c.id == api_keys.c.user_id)
                .where(api_keys.c.key_id == key_id)
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        return Principal(uid=row.uid, username=row.username, email=row.email, permission=row.permission,
                         key_id=row.key_id, default_database=row.default_database_uid)

    # -- ownership -------------------------------------------------------------------------------
    def change_database_access(self, database: str, *, owner: str | Keep | None = KEEP,
                               public: bool | None = None) -> DatabaseRecord:
        """Give a database (name or uid) to ``owner`` (a username or uid; None: to nobody) and/or make it
        ``public`` (True) or private (False); arguments left out keep their value."""
        with self._write() as conn:
            db = database_row(conn, database)
            values: dict[str, Any] = {}
            if not isinstance(owner, Keep):
                values["owner_uid"] = user_row(conn, owner).uid if owner is not None else None
            if public is not None:
                values["public"] = bool(public)
            if values:
                conn.execute(update(databases).where(databases.c.id == db.id).values(**values))
            return database_record(database_row(conn, db.uid))

    def owned_databases(self, user: str) -> list[DatabaseRecord]:
        """The databases a user owns, by name."""
        with self._read() as conn:
            uid = user_row(conn, user).uid
            rows = conn.execute(select(databases).where(databases.c.owner_uid == uid).order_by(databases.c.name))
            return [database_record(r) for r in rows]
