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
from .state import catalog_of, config_of

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
