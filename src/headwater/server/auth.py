"""Who is asking, and may they see / change this database: FastAPI dependencies for every router.

Credentials come in ``Authorization: Bearer <token>``. The datatap 0.3.0 client sends
``base64(api_key)``; the Hugging Face clients (``HF_TOKEN``) send the key as it is. Both are accepted:
a headwater key (``hw_<12 hex>_<random>``) contains ``_``, which is not in the standard base64
alphabet, so a raw key is never mistaken for base64 and the two readings cannot collide. A token that
is present but matches no live key is refused with 401 — never silently downgraded to anonymous — so
a revoked or mistyped key gives a clear error.

Visibility (404 rather than 403, so the existence of a private database is not leaked):

* a **public** database is readable by every authenticated user, and anonymously when
  ``ServerConfig.anonymous_read`` is on;
* a private database **with an owner** is visible to its owner only;
* a private database **without owner** (e.g. created by ``headwater publish --create-database``) is
  shared by every authenticated user of the server.

Writing needs a ``write`` key whose user owns the database (or the database has no owner); a visible
database that the key may not change gives 403, an anonymous request 401.

Served pools follow the same rules, per pool (:mod:`headwater.server.pool_readers`): a **public** pool is
readable like a public database; otherwise its owner, the users it was granted to, and whoever may read
a database whose datasets use it may read it (so a private database's images are as private as it is);
anyone else gets 404, exactly as for a pool that does not exist. Writing to a pool (uploads, deletes)
needs a ``write`` key of its owner or of a user granted ``write``; a pool without owner takes no writes.

Dependencies: :func:`principal` (the caller or None; 401 for a bad key), :func:`reader` (same, but 401
for anonymous callers when anonymous reads are off), :func:`require_read` (any key), :func:`require_write`
(a write key), :func:`principal_ignoring_foreign_tokens` (for Hub routes: a foreign ``hf_…`` token counts
as anonymous). Then check the database itself::

    @router.post("/api/database/{db}/thing")
    def write_thing(db: str, request: Request, who: Principal = Depends(require_write)):
        record = writable_database(request, who, db)   # 404 invisible, 403 not yours / read-only

Example:
    >>> import os, tempfile, base64
    >>> from fastapi import Depends, FastAPI
    >>> from starlette.testclient import TestClient
    >>> from headwater.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "catalog.sqlite")))
    >>> _ = app.state.catalog.create_user("alice")
    >>> _, secret = app.state.catalog.create_api_key("alice", "read")
    >>> @app.get("/whoami")
    ... def whoami(who: Principal = Depends(require_read)) -> dict:
    ...     return {"user": who.username}
    >>> client = TestClient(app)
    >>> client.get("/whoami", headers={"Authorization": "Bearer " + base64.b64encode(secret.encode()).decode()}).json()
    {'user': 'alice'}
    >>> client.get("/whoami", headers={"Authorization": "Bearer " + secret}).json()
    {'user': 'alice'}
    >>> client.get("/whoami").status_code
    401
"""

from __future__ import annotations

import base64
import binascii
from typing import cast

from fastapi import Depends, HTTPException, Request

from ..catalog import DatabaseRecord, NotFoundError, Principal
from ..catalog.users import looks_like_secret
from .errors import RepoNotFound
from .pool_readers import PoolRights
from .snapshots import HubPool
from .state import catalog_of, config_of, pool_readers_of, pools_of

__all__ = [
    "Principal",
    "bearer_token",
    "principal",
    "principal_ignoring_foreign_tokens",
    "reader",
    "require_read",
    "require_write",
    "can_read",
    "can_write",
    "readable_database",
    "writable_database",
    "visible_databases",
    "can_read_pool",
    "can_write_pool",
    "pool_for_reading",
    "pool_for_writing",
    "visible_pools",
]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="headwater"'}


def _anonymous_read(request: Request) -> bool:
    return config_of(request).anonymous_read


def bearer_token(request: Request) -> str | None:
    """The key in ``Authorization: Bearer …`` (base64-decoded when it was sent that way), or None.

    Raises 401 on a malformed header (another scheme, or ``Bearer`` with nothing after it).
    """
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "malformed Authorization header: expected 'Bearer <api key>'", headers=_CHALLENGE)
    if looks_like_secret(token):
        return token
    try:
        decoded = base64.b64decode(token, validate=True).decode("ascii").strip()
    except (binascii.Error, ValueError):
        return token  # not base64: let authentication refuse it as an unknown key
    return decoded


def principal(request: Request) -> Principal | None:
    """FastAPI dependency: the caller (None when anonymous). 401 if a key is given but not valid.

    The result is memoised on the request, so several dependencies cost one catalog lookup.
    """
    if hasattr(request.state, "principal"):
        return cast("Principal | None", request.state.principal)  # memoised below
    token = bearer_token(request)
    who = None
    if token is not None:
        who = catalog_of(request).authenticate(token)
        if who is None:
            raise HTTPException(401, "invalid or revoked API key", headers=_CHALLENGE)
    request.state.principal = who
    return who


def principal_ignoring_foreign_tokens(request: Request) -> Principal | None:
    """Like :func:`principal`, but a token that is not shaped like a headwater key (e.g. a real ``hf_…``
    Hugging Face token that ``huggingface_hub`` sends whenever one is configured on the machine) counts as
    anonymous instead of 401. A headwater-shaped key that is unknown or revoked is still refused."""
    if hasattr(request.state, "principal"):
        return cast("Principal | None", request.state.principal)  # memoised below
    try:
        token = bearer_token(request)
    except HTTPException:
        token = None
    if token is None or not looks_like_secret(token):
        request.state.principal = None
        return None
    return principal(request)


def reader(request: Request, who: Principal | None = Depends(principal)) -> Principal | None:
    """FastAPI dependency for read routes: the caller, or None for an anonymous caller when the server
    allows anonymous reads (``ServerConfig.anonymous_read``); 401 for an anonymous caller otherwise."""
    if who is None and not _anonymous_read(request):
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <api key>'",
                            headers=_CHALLENGE)
    return who


async def require_read(who: Principal | None = Depends(principal)) -> Principal:
    """FastAPI dependency: an authenticated caller (any key)."""
    if who is None:
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <api key>'",
                            headers=_CHALLENGE)
    return who


async def require_write(who: Principal = Depends(require_read)) -> Principal:
    """FastAPI dependency: an authenticated caller holding a ``write`` key."""
    if not who.can_write:
        raise HTTPException(403, f"API key {who.key_id} is read-only; this request needs a write key")
    return who


def can_read(request: Request, who: Principal | None, db: DatabaseRecord) -> bool:
    """Whether ``who`` (None: anonymous) may read database ``db`` (see the module docstring)."""
    if db.public and (who is not None or _anonymous_read(request)):
        return True
    if who is None:
        return False
    return db.owner is None or db.owner == who.uid


def can_write(who: Principal | None, db: DatabaseRecord) -> bool:
    """Whether ``who`` may change database ``db``: a write key of its owner (any write key if unowned)."""
    return who is not None and who.can_write and (db.owner is None or db.owner == who.uid)


def readable_database(request: Request, who: Principal | None, name_or_uid: str) -> DatabaseRecord:
    """The database (by name or uid) if ``who`` may read it; else 404 exactly as if it did not exist."""
    catalog = catalog_of(request)
    try:
        db = catalog.database(name_or_uid)
    except NotFoundError:
        db = None
    if db is None or not can_read(request, who, db):
        if who is None and not _anonymous_read(request):
            raise HTTPException(401, "authentication required: send 'Authorization: Bearer <api key>'",
                                headers=_CHALLENGE)
        raise NotFoundError(f"database {name_or_uid!r} not found")
    return db


def writable_database(request: Request, who: Principal | None, name_or_uid: str) -> DatabaseRecord:
    """The database if ``who`` may write to it: 401 anonymous, 404 invisible, 403 visible but not writable."""
    if who is None:
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <api key>'",
                            headers=_CHALLENGE)
    db = readable_database(request, who, name_or_uid)
    if not can_write(who, db):
        if not who.can_write:
            raise HTTPException(403, f"API key {who.key_id} is read-only; this request needs a write key")
        raise HTTPException(403, f"user {who.username!r} may not write to database {db.name!r}")
    return db


def visible_databases(request: Request, who: Principal | None) -> list[DatabaseRecord]:
    """Every database ``who`` may read, by name."""
    return [db for db in catalog_of(request).databases() if can_read(request, who, db)]


def can_read_pool(request: Request, who: Principal | None, rights: PoolRights) -> bool:
    """Whether ``who`` (None: anonymous) may read a served pool (see the module docstring)."""
    access = rights.access
    if access.public and (who is not None or _anonymous_read(request)):
        return True
    if who is not None and (who.uid == access.owner or who.uid in access.grants):
        return True
    readers = pool_readers_of(request)
    return any(db is not None and can_read(request, who, db) for db in map(readers.database, rights.databases))


def can_write_pool(who: Principal | None, rights: PoolRights) -> bool:
    """Whether ``who`` may change a served pool: a write key of its owner or of a user granted ``write``."""
    if who is None or not who.can_write:
        return False
    return who.uid == rights.access.owner or rights.access.grants.get(who.uid) == "write"


def pool_for_reading(request: Request, who: Principal | None, repo_id: str) -> HubPool:
    """The served pool ``repo_id`` if ``who`` may read it; else :class:`RepoNotFound`, exactly as when the
    server does not serve it. May read the catalog: call it off the event loop unless the access is fresh."""
    pool = pools_of(request).get(repo_id)
    if not can_read_pool(request, who, pool_readers_of(request).get(repo_id)):
        raise RepoNotFound(f"dataset repo {repo_id!r} not found")
    return pool


def pool_for_writing(request: Request, who: Principal | None, repo_id: str) -> HubPool:
    """The served pool ``repo_id`` if ``who`` may write to it: 401 anonymous, 404 invisible, 403 visible but
    not writable (read-only key, not the owner, no grant, or a pool without owner)."""
    if who is None:
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <api key>'",
                            headers=_CHALLENGE)
    pool = pool_for_reading(request, who, repo_id)
    rights = pool_readers_of(request).get(repo_id)
    if not can_write_pool(who, rights):
        if not who.can_write:
            raise HTTPException(403, f"API key {who.key_id} is read-only; this request needs a write key")
        if rights.access.owner is None:
            raise HTTPException(403, f"pool {repo_id} has no owner, so it takes no writes; its administrator can "
                                     f"give it one: headwater pool set {repo_id} --owner USER")
        raise HTTPException(403, f"user {who.username!r} may not write to pool {repo_id}")
    return pool


def visible_pools(request: Request, who: Principal | None) -> list[HubPool]:
    """Every served pool ``who`` may read, by repo id."""
    readers = pool_readers_of(request)
    return [pool for pool in pools_of(request) if can_read_pool(request, who, readers.get(pool.repo_id))]
