"""The datatap 0.3.0 read API under ``/api/``: user, databases, repositories, datasets, split streams.

Why it reads through :mod:`headwater.catalog.wire` and :mod:`headwater.catalog.streams`: the embedded
client and this server must return byte-for-byte the same JSON and the same droplets in the same order
for a ``(dataset, split, chunk, nchunks, shuffleSeed, truncate, offset)``, so both go through one
implementation (the catalog layer's wire builders and pass reader).

Routes (every error is ``{"error": message}``; ``/api//x`` works as ``/api/x``):

* ``GET  /api/user`` → ``{uid, username, email, defaultDatabase}`` (401 when anonymous)
* ``GET  /api/database`` → the databases the caller can read
* ``GET  /api/database/{uid}`` → one database (by uid, or by name)
* ``POST /api/database/query`` with ``{"name": …}`` → a list of zero or one database
* ``GET  /api/database/{db}/repository`` → ``[{namespace, name, tags}]``
* ``GET  /api/database/{db}/repository/{ns}/{name}`` → one repository
* ``GET  /api/database/{db}/repository/{ns}/{name}/{tag_or_uid}`` → the dataset
* ``GET  /api/database/{db}/repository/{ns}/{name}/{uid}/split/{split}/stream?chunk=&nchunks=`` → NDJSON,
  one droplet a line (``application/x-ndjson``)

The stream also takes headwater's ``shuffleSeed``, ``truncate`` and ``offset`` (the same meaning as
``Dataset.stream_split``; ``offset`` lets a client resume after an interrupted response) and answers
with ``X-Headwater-Items`` (how many droplets the body holds), so a client can tell a complete body
from a cut one. Blocking catalog reads run in the thread pool; a client that goes away mid-stream just
stops the pass.

Example:
    >>> import os, tempfile
    >>> from starlette.testclient import TestClient
    >>> from headwater.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "catalog.sqlite")))
    >>> db = app.state.catalog.create_database("main", public=True)
    >>> ds = app.state.catalog.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate"},
    ...                                splits={"train": [b'{"n":0}', b'{"n":1}', b'{"n":2}']})
    >>> client = TestClient(app)
    >>> [d["name"] for d in client.get("/api//database").json()]
    ['main']
    >>> client.get(f"/api/database/{db.uid}/repository/acme/cats/{ds.uid}/split/train/stream?chunk=1&nchunks=2").text
    '{"n":1}\\n{"n":2}\\n'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...catalog import (
    NotFoundError,
    Principal,
    check_chunk,
    database_json,
    dataset_json,
    pass_blocks,
    plan_pass,
    repositories_json,
    user_json,
)
from ..auth import readable_database, reader, require_read, visible_databases
from ..bodies import read_json
from ..limits import PacedStreamingResponse
from ..public_urls import public_pools
from ..state import catalog_of, dataset_of

__all__ = ["router", "STREAM_PAGE", "NDJSON"]

STREAM_PAGE = 1024
"""Droplets per block of a streamed response (one catalog page, one write to the socket)."""

NDJSON = "application/x-ndjson"

router = APIRouter(prefix="/api", tags=["datatap"])


def _default_database(request: Request, who: Principal) -> str | None:
    """The user's chosen default database if they can still read it, else the first one they own."""
    catalog = catalog_of(request)
    if who.default_database is not None:
        try:
            return readable_database(request, who, who.default_database).uid
        except NotFoundError:
            pass
    owned = catalog.owned_databases(who.uid)
    return owned[0].uid if owned else None


@router.get("/user", summary="The caller (the API key's user)")
def get_user(request: Request, who: Principal = Depends(require_read)) -> dict[str, Any]:
    return user_json(who.uid, who.username, who.email, _default_database(request, who))


@router.get("/database", summary="Databases the caller can read")
def list_databases(request: Request, who: Principal | None = Depends(reader)) -> list[dict[str, Any]]:
    return [database_json(db) for db in visible_databases(request, who)]


@router.post("/database/query", summary="Databases with this exact name (a list of zero or one)",
             openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
                 "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}},
                 "required": True}})
async def query_databases(request: Request, who: Principal | None = Depends(reader)) -> list[dict[str, Any]]:
    body = await read_json(request, "database query")  # after `reader` authenticated the caller
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise HTTPException(400, "database query: expected {\"name\": \"…\"}")

    def find() -> list[dict[str, Any]]:
        try:
            db = readable_database(request, who, name)
            return [database_json(db)] if db.name == name else []
        except NotFoundError:
            return []

    return await run_in_threadpool(find)


@router.get("/database/{database}", summary="One database, by uid (or name)")
def get_database(database: str, request: Request, who: Principal | None = Depends(reader)) -> dict[str, Any]:
    return database_json(readable_database(request, who, database))


@router.get("/database/{database}/repository", summary="The repositories of a database, with their tags")
def list_repositories(database: str, request: Request,
                      who: Principal | None = Depends(reader)) -> list[dict[str, Any]]:
    db = readable_database(request, who, database)
    return repositories_json(catalog_of(request), db.uid)


@router.get("/database/{database}/repository/{namespace}/{name}", summary="One repository, with its tags")
def get_repository(database: str, namespace: str, name: str, request: Request,
                   who: Principal | None = Depends(reader)) -> dict[str, Any]:
    db = readable_database(request, who, database)
    return repositories_json(catalog_of(request), db.uid, namespace, name)[0]


@router.get("/database/{database}/repository/{namespace}/{name}/{tag_or_uid}",
            summary="A dataset, by tag or by uid")
def get_dataset(database: str, namespace: str, name: str, tag_or_uid: str, request: Request,
                who: Principal | None = Depends(reader)) -> dict[str, Any]:
    db = readable_database(request, who, database)
    body = dataset_json(catalog_of(request).dataset(db.uid, namespace, name, tag_or_uid))
    body["pools"] = public_pools(request, body["pools"])  # served pools as this server's URLs, not its disk paths
    return body


@router.get("/database/{database}/repository/{namespace}/{name}/{uid}/split/{split}/stream",
            summary="Chunk `chunk` of `nchunks` of a split, as NDJSON (one droplet a line)",
            response_class=StreamingResponse,
            responses={200: {"content": {NDJSON: {}}, "description": "one JSON droplet per line"}})
def stream_split(database: str, namespace: str, name: str, uid: str, split: str, request: Request,
                 chunk: int = Query(0, description="which chunk, 0 <= chunk < nchunks"),
                 nchunks: int = Query(1, description="how many chunks the split is cut into"),
                 shuffle_seed: int | None = Query(None, alias="shuffleSeed",
                                                  description="permute the split (seeded) before chunking"),
                 offset: int = Query(0, description="skip the first `offset` droplets of the chunk (resume)"),
                 truncate: int | None = Query(None, description="keep only the first `truncate` droplets "
                                                                "of the (shuffled) order before chunking"),
                 who: Principal | None = Depends(reader)) -> StreamingResponse:
    db = readable_database(request, who, database)
    ds = dataset_of(request, db.uid, namespace, name, uid)  # 404 unless the uid (or tag) is in this repository
    if split not in ds.splits:
        raise NotFoundError(f"split {split!r} not found in dataset {ds.uid!r} (splits: {list(ds.splits)})")
    check_chunk(chunk, nchunks)  # a ChunkError answers 400 with datatap's own message
    if truncate is not None and truncate < 0:
        raise HTTPException(400, f"truncate must be >= 0, got {truncate}")
    catalog = catalog_of(request)
    plan = plan_pass(catalog, ds.uid, split, chunk, nchunks, shuffle_seed=shuffle_seed, truncate=truncate)
    if not 0 <= offset <= len(plan):
        raise HTTPException(400, f"offset must be in [0, {len(plan)}] for chunk {chunk} of {nchunks}, got {offset}")
    blocks = pass_blocks(catalog, ds.uid, split, plan, offset=offset, page_size=STREAM_PAGE)
    return PacedStreamingResponse(_closing(blocks), media_type=NDJSON,  # a stalled reader pins one block
                                  headers={"X-Headwater-Items": str(len(plan) - offset),
                                           "X-Headwater-Dataset": ds.uid, "Cache-Control": "no-store"})


def _closing(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Pass blocks through (starlette iterates a sync iterator in the thread pool, one block per hop)."""
    try:
        yield from blocks
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
