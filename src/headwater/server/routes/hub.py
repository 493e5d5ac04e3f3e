"""Pools served as Hugging Face dataset repos, so ``huggingface_hub``, ``hfutils`` and ``cheesechaser`` work
unchanged with ``HF_ENDPOINT=http://host:port``.

Routes (``{repo}`` is ``owner/name``, a key of ``ServerConfig.pools``; ``{rev}`` is ``main`` or a commit id,
see :mod:`headwater.server.snapshots` for the commit model):

* ``HEAD|GET /datasets/{repo}/resolve/{rev}/{path}`` — the file. One ``Range`` (``bytes=a-b``, ``a-``,
  ``-n``) → 206 + ``Content-Range``; out of range → 416 + ``Content-Range: bytes */size``; several ranges
  (GET) → 206 ``multipart/byteranges`` (one part per range, coalesced when they overlap; more than
  ``MAX_RANGES`` → 200 with the whole file; HEAD → 200); malformed → 400. Headers: ``Accept-Ranges: bytes``,
  ``Content-Length``, ``ETag`` (quoted; the sha256 for LFS-style files such as shards, else the git blob sha1),
  ``X-Linked-Etag`` (LFS files) and ``X-Linked-Size``, ``X-Repo-Commit``. No redirect: the bytes come
  straight from the pool's store, streamed in chunks.
* ``GET /api/datasets/{repo}`` and ``GET /api/datasets/{repo}/revision/{rev}`` — repo info (``id``, ``sha``,
  ``siblings`` with ``size``/``blobId``/``lfs`` when ``?blobs=true``, ``private``, ``lastModified``, …).
* ``GET /api/datasets/{repo}/tree/{rev}[/{path}]`` — ``[{type, oid, size, path, lfs?, lastCommit?}]``,
  ``?recursive=``, ``?expand=``, paginated by ``?cursor=`` with a ``Link: <…>; rel="next"`` header whose
  URL names the commit id, so every page lists the same snapshot.
* ``POST /api/datasets/{repo}/paths-info/{rev}`` — form (or JSON) ``paths`` → the entries that exist.
* ``GET /api/datasets/{repo}/refs`` — ``main`` → current commit; ``GET /api/datasets/{repo}/commits/{rev}``.
* ``GET /api/datasets`` — the pools this caller may read.
* Uploads: see :mod:`headwater.server.routes.pool_uploads`.

Errors are ``{"error": message}`` plus the ``X-Error-Code`` header huggingface_hub maps to its exceptions
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and ``X-Error-Message``.

Access (:func:`headwater.server.auth.pool_for_reading`): a pool is readable by its owner and grantees, by
whoever may read a database whose datasets use it, and — if it is public — by every key holder and, when
``ServerConfig.anonymous_read`` is on, anonymously; to anyone else it is ``RepoNotFound``, as if it were
not served. Keys come as ``Authorization: Bearer <key>``, raw as the HF clients send them, or base64 as
datatap does. A token that is not shaped like a headwater key — a real ``hf_…`` token the client machine
has configured — counts as anonymous rather than failing.

Example:
    >>> import os, tempfile
    >>> from starlette.testclient import TestClient
    >>> from headwater.archive import pack_directory
    >>> from headwater.server.app import ServerConfig, create_app
    >>> src, pool = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = open(os.path.join(src, "7.txt"), "w").write("seven")
    >>> _ = pack_directory(src, pool, silent=True)
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "c.sqlite"), pools={"acme/px": pool}))
    >>> _ = app.state.catalog.change_pool_access("acme/px", public=True)  # else only its databases' readers
    >>> client = TestClient(app)
    >>> index = client.get("/datasets/acme/px/resolve/main/shard-00000.json").json()
    >>> offset = index["files"]["7.txt"]["offset"]
    >>> r = client.get("/datasets/acme/px/resolve/main/shard-00000.tar",
    ...                headers={"Range": f"bytes={offset}-{offset + 4}"})
    >>> r.status_code, r.content, r.headers["content-range"].endswith(f"/{index['filesize']}")
    (206, b'seven', True)
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...catalog import Principal
from ...storage import ShortReadError, StoreAuthError, TruncatedFileError
from ..auth import pool_for_reading, principal_ignoring_foreign_tokens, visible_pools
from ..bodies import PATHS_INFO_BODY, decode_json, read_body
from ..errors import HubError, MalformedRange, RangeNotSatisfiable, RepoNotFound
from ..public_urls import public_base_url
from ..range_responses import (
    SMALL_BODY,
    BodyResponse,
    Multipart,
    iter_file,
    iter_multipart,
    parse_range,
    parse_ranges,
    read_multipart,
    read_small,
)
from ..snapshots import HubPool, PoolFile, Snapshot, check_repo_path
from ..state import config_of, pool_readers_of

__all__ = ["router", "hub_reader", "hub_error", "PAGE_LIMIT", "EXPAND_PAGE_LIMIT"]

router = APIRouter(tags=["hub"])
log = logging.getLogger(__name__)

PAGE_LIMIT = 1000
"""Tree entries per page (the Hub's own limit)."""
EXPAND_PAGE_LIMIT = 50
"""Tree entries per page with ``expand=true`` (the Hub's limit)."""

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="headwater"'}


async def hub_reader(request: Request) -> Principal | None:
    """FastAPI dependency: the caller of a Hub read route (None: anonymous, allowed if the server says so).

    Async, and the key lookup goes to a worker thread only when a token was sent: an anonymous range
    read costs no thread hop here (these routes are the hot path of a download).
    """
    who = None
    if request.headers.get("authorization"):
        who = await run_in_threadpool(principal_ignoring_foreign_tokens, request)
    if who is None and not config_of(request).anonymous_read:
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <api key>'",
                            headers=_CHALLENGE | {"X-Error-Message": "authentication required"})
    return who


def _header_safe(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\r", " ").replace("\n", " ")


def hub_error(err: HubError) -> HTTPException:
    """An HTTP error the Hub clients understand (``X-Error-Code``) with our ``{"error"}`` body."""
    message = str(err)
    headers = {"X-Error-Code": err.code, "X-Error-Message": _header_safe(message)}
    if err.commit:
        headers["X-Repo-Commit"] = err.commit
    return HTTPException(err.status, message, headers=headers)


def _pool(request: Request, owner: str, name: str, who: Principal | None) -> HubPool:
    """The pool if the caller may read it, else the Hub's RepoNotFound (as for a pool not served here)."""
    try:
        return pool_for_reading(request, who, f"{owner}/{name}")
    except RepoNotFound as err:
        raise hub_error(err) from None


async def _pool_async(request: Request, owner: str, name: str, who: Principal | None) -> HubPool:
    """:func:`_pool` for async routes: on the event loop when the access rules are fresh in memory."""
    if pool_readers_of(request).fresh:
        return _pool(request, owner, name, who)
    return await run_in_threadpool(_pool, request, owner, name, who)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _pointer_size(f: PoolFile) -> int:
    return len(f"version https://git-lfs.github.com/spec/v1\noid sha256:{f.sha256}\nsize {f.size}\n")


def _last_commit(snap: Snapshot) -> dict[str, str]:
    return {"id": snap.commit, "title": "headwater pool snapshot", "date": _iso(snap.created)}


def _file_entry(f: PoolFile, snap: Snapshot, expand: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
    if f.lfs and f.sha256:
        entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": _pointer_size(f)}
    if expand:
        entry["lastCommit"] = _last_commit(snap)
    return entry


def _folder_entry(path: str, snap: Snapshot, expand: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "directory", "oid": snap.tree_oid(path), "size": 0, "path": path}
    if expand:
        entry["lastCommit"] = _last_commit(snap)
    return entry


def _entry(path: str, snap: Snapshot, expand: bool) -> dict[str, Any]:
    f = snap.files.get(path)
    return _file_entry(f, snap, expand) if f is not None else _folder_entry(path, snap, expand)


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


# -- files -------------------------------------------------------------------------------------------
@router.get("/datasets/{owner}/{name}/resolve/{revision}/{path:path}", operation_id="resolve_file",
            summary="Download a pool file (Hub resolve URL; Range: one range, or several as multipart/byteranges)")
@router.head("/datasets/{owner}/{name}/resolve/{revision}/{path:path}", operation_id="resolve_file_head",
             summary="Headers of a pool file (size, ETag, X-Repo-Commit)")
async def resolve_file(owner: str, name: str, revision: str, path: str, request: Request,
                       who: Principal | None = Depends(hub_reader)) -> Response:
    pool = await _pool_async(request, owner, name, who)
    try:
        if pool.without_io(revision):  # the common case: answered from memory, no thread hop
            snap, f = pool.resolve(revision, path)
        else:
            snap, f = await run_in_threadpool(pool.resolve, revision, path)
    except HubError as err:
        raise hub_error(err) from None
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{f.etag}"',
        "X-Repo-Commit": snap.commit,
        "X-Linked-Size": str(f.size),
        "Content-Type": mimetypes.guess_type(f.path)[0] or "application/octet-stream",
        "Cache-Control": "no-cache" if revision != snap.commit else "max-age=31536000, immutable",
    }
    if f.lfs and f.sha256:
        headers["X-Linked-Etag"] = f'"{f.sha256}"'
    if not config_of(request).anonymous_read:
        headers["Cache-Control"] = "private, " + headers["Cache-Control"]
    try:
        wanted = _wanted_ranges(request, f.size)
    except RangeNotSatisfiable as err:
        return JSONResponse({"error": str(err)}, status_code=416,
                            headers={"Content-Range": f"bytes */{err.size}", "X-Repo-Commit": snap.commit,
                                     "Accept-Ranges": "bytes", "ETag": headers["ETag"]})
    except MalformedRange as err:
        return JSONResponse({"error": str(err)}, status_code=400, headers={"X-Repo-Commit": snap.commit})
    if wanted is not None and len(wanted) > 1:
        return await _multipart_response(pool, f.path, Multipart.of(wanted, f.size, headers["Content-Type"]), headers)
    status, start, end = 200, 0, f.size
    if wanted is not None:
        status, start, end = 206, wanted[0][0], wanted[0][1] + 1
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    with _store_errors(pool, f.path):
        if end - start <= SMALL_BODY:  # one read in one worker thread, one send
            return Response(await run_in_threadpool(read_small, pool.store, f.path, start, end),
                            status_code=status, headers=headers)
        body = await run_in_threadpool(iter_file, pool.store, f.path, start, end)
    return BodyResponse(body, status_code=status, headers=headers)


def _wanted_ranges(request: Request, size: int) -> list[tuple[int, int]] | None:
    """The inclusive ranges to send (None: the whole file). HEAD keeps answering several ranges with the
    whole file's headers: range handling is defined for GET only (RFC 9110 §14.2)."""
    header = request.headers.get("range")
    if request.method == "GET":
        return parse_ranges(header, size)
    one = parse_range(header, size)
    return None if one is None else [one]


async def _multipart_response(pool: HubPool, path: str, mp: Multipart, headers: dict[str, str]) -> Response:
    """206 multipart/byteranges: small payloads read at once, larger ones streamed part by part."""
    headers = {**headers, "Content-Type": mp.content_type, "Content-Length": str(mp.length)}
    with _store_errors(pool, path):
        if mp.payload <= SMALL_BODY:
            return Response(await run_in_threadpool(read_multipart, pool.store, path, mp),
                            status_code=206, headers=headers)
        body = await run_in_threadpool(iter_multipart, pool.store, path, mp)
    return BodyResponse(body, status_code=206, headers=headers)


@contextmanager
def _store_errors(pool: HubPool, path: str) -> Iterator[None]:
    """Store failures before the first byte is sent, as HTTP errors."""
    try:
        yield
    except StoreAuthError as err:  # the server's own credentials for the store: not the client's fault
        log.warning("pool %s: the store refused the server: %s", pool.repo_id, err)
        raise HTTPException(502, f"the store of {pool.repo_id} refused the server's credentials") from None
    except (FileNotFoundError, PermissionError, ShortReadError, TruncatedFileError):  # changed since the snapshot
        pool.invalidate()
        raise HTTPException(404, f"{path!r} is no longer in {pool.repo_id}; retry",
                            headers={"X-Error-Code": "EntryNotFound"}) from None
    except OSError as err:  # StoreUnavailableError after retries, local I/O errors
        log.warning("pool %s: the store is unavailable: %s", pool.repo_id, err)  # names paths: the log only
        raise HTTPException(503, f"the store of {pool.repo_id} is unavailable ({type(err).__name__}); retry",
                            headers={"Retry-After": "1"}) from None


# -- repo info ---------------------------------------------------------------------------------------
def _private(request: Request, repo_id: str) -> bool:
    """Whether the Hub clients should see the pool as private: not readable by everyone."""
    return not (pool_readers_of(request).get(repo_id).access.public and config_of(request).anonymous_read)


def _repo_json(pool: HubPool, snap: Snapshot, request: Request, blobs: bool) -> dict[str, Any]:
    siblings = []
    for path in sorted(snap.files):
        f = snap.files[path]
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling |= {"size": f.size, "blobId": f.oid}
            if f.lfs and f.sha256:
                sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": _pointer_size(f)}
        siblings.append(sibling)
    owner = pool.repo_id.split("/", 1)[0]
    return {
        "_id": hashlib.sha1(pool.repo_id.encode()).hexdigest()[:24],
        "id": pool.repo_id,
        "author": owner,
        "sha": snap.commit,
        "lastModified": _iso(snap.created),
        "createdAt": _iso(snap.created),
        "private": _private(request, pool.repo_id),
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": snap.total_size,
    }


@router.get("/api/datasets/{owner}/{name}", summary="Dataset repo info at main")
def repo_info(owner: str, name: str, request: Request, blobs: str | None = Query(None),
              who: Principal | None = Depends(hub_reader)) -> dict[str, Any]:
    return repo_info_at(owner, name, "main", request, blobs, who)


@router.get("/api/datasets/{owner}/{name}/revision/{revision:path}", summary="Dataset repo info at a revision")
def repo_info_at(owner: str, name: str, revision: str, request: Request, blobs: str | None = Query(None),
                 who: Principal | None = Depends(hub_reader)) -> dict[str, Any]:
    pool = _pool(request, owner, name, who)
    try:
        snap = pool.snapshot(revision)
    except HubError as err:
        raise hub_error(err) from None
    return _repo_json(pool, snap, request, _flag(blobs))


@router.get("/api/datasets", summary="The pools this caller may read")
def list_repos(request: Request, who: Principal | None = Depends(hub_reader)) -> list[dict[str, Any]]:
    return [{"_id": hashlib.sha1(p.repo_id.encode()).hexdigest()[:24], "id": p.repo_id,
             "author": p.repo_id.split("/", 1)[0], "private": _private(request, p.repo_id),
             "tags": []} for p in visible_pools(request, who)]


@router.get("/api/datasets/{owner}/{name}/refs", summary="Branches of a pool (main only)")
def refs(owner: str, name: str, request: Request, who: Principal | None = Depends(hub_reader)) -> dict[str, Any]:
    pool = _pool(request, owner, name, who)
    try:
        snap = pool.head()
    except HubError as err:
        raise hub_error(err) from None
    return {"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": snap.commit}],
            "converts": [], "tags": [], "pullRequests": []}


@router.get("/api/datasets/{owner}/{name}/commits/{revision:path}",
            summary="The commit a revision names (pools keep no history chain)")
def commits(owner: str, name: str, revision: str, request: Request,
            who: Principal | None = Depends(hub_reader)) -> list[dict[str, Any]]:
    pool = _pool(request, owner, name, who)
    try:
        found = pool.commits(revision)
    except HubError as err:
        raise hub_error(err) from None
    return [{"id": s.commit, "authors": [], "date": _iso(s.created), "title": "headwater pool snapshot",
             "message": f"{len(s.files)} files, {s.total_size} bytes"} for s in found]


# -- tree and paths-info -------------------------------------------------------------------------------
def _tree(owner: str, name: str, revision: str, path: str, request: Request, recursive: bool, expand: bool,
          cursor: str | None, limit: int | None, who: Principal | None) -> Response:
    pool = _pool(request, owner, name, who)
    path = path.strip("/")
    try:
        if path:
            check_repo_path(path)
        snap = pool.snapshot(revision)
    except HubError as err:
        raise hub_error(err) from None
    folders = snap.folders()
    if path not in folders:
        code = "EntryNotFound"
        message = (f"{path!r} is a file, not a folder, in {pool.repo_id}@{snap.commit}" if path in snap.files
                   else f"folder {path!r} not found in {pool.repo_id}@{snap.commit}")
        raise HTTPException(404, message, headers={"X-Error-Code": code, "X-Error-Message": _header_safe(message),
                                                   "X-Repo-Commit": snap.commit})
    if recursive:
        prefix = path + "/" if path else ""
        paths = sorted([p for p in folders if p and p.startswith(prefix)] +
                       [p for p in snap.files if p.startswith(prefix)])
    else:
        paths = folders[path]
    cap = EXPAND_PAGE_LIMIT if expand else PAGE_LIMIT
    size = max(1, min(limit or cap, cap))
    try:
        start = int(cursor) if cursor else 0
    except ValueError:
        raise HTTPException(400, f"bad cursor {cursor!r}") from None
    if start < 0:
        raise HTTPException(400, f"bad cursor {cursor!r}")
    page = [_entry(p, snap, expand) for p in paths[start:start + size]]
    headers = {"X-Repo-Commit": snap.commit}
    if start + size < len(paths):
        encoded = "/" + quote(path, safe="/") if path else ""
        query = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}&cursor={start + size}&limit={size}"
        url = public_base_url(request) + f"/api/datasets/{pool.repo_id}/tree/{snap.commit}{encoded}?{query}"
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(page, headers=headers)


@router.get("/api/datasets/{owner}/{name}/tree/{revision}", summary="List the pool's root folder")
def tree_root(owner: str, name: str, revision: str, request: Request, recursive: str | None = Query(None),
              expand: str | None = Query(None), cursor: str | None = Query(None), limit: int | None = Query(None),
              who: Principal | None = Depends(hub_reader)) -> Response:
    return _tree(owner, name, revision, "", request, _flag(recursive), _flag(expand), cursor, limit, who)


@router.get("/api/datasets/{owner}/{name}/tree/{revision}/{path:path}", summary="List a folder of the pool")
def tree_path(owner: str, name: str, revision: str, path: str, request: Request, recursive: str | None = Query(None),
              expand: str | None = Query(None), cursor: str | None = Query(None), limit: int | None = Query(None),
              who: Principal | None = Depends(hub_reader)) -> Response:
    return _tree(owner, name, revision, path, request, _flag(recursive), _flag(expand), cursor, limit, who)


@router.post("/api/datasets/{owner}/{name}/paths-info/{revision:path}", summary="Info about given paths")
async def paths_info(owner: str, name: str, revision: str, request: Request,
                     who: Principal | None = Depends(hub_reader)) -> Response:
    content_type = request.headers.get("content-type", "")
    body = await read_body(request, PATHS_INFO_BODY)  # after `hub_reader` let the caller in
    if content_type.startswith("application/json"):
        doc = decode_json(body, "paths-info")
        paths = doc.get("paths", []) if isinstance(doc, dict) else []
        expand = _flag(str(doc.get("expand"))) if isinstance(doc, dict) else False
    else:  # application/x-www-form-urlencoded, what huggingface_hub sends (paths=a&paths=b&expand=False)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        paths = form.get("paths", [])
        expand = _flag((form.get("expand") or [""])[0])
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list):
        raise HTTPException(400, "paths-info: 'paths' must be a list of paths")
    pool = await _pool_async(request, owner, name, who)
    try:
        snap = await run_in_threadpool(pool.snapshot, revision)
    except HubError as err:
        raise hub_error(err) from None
    folders = snap.folders()
    out = []
    for raw in paths:
        p = str(raw).strip("/")
        if p and (p in snap.files or p in folders):
            out.append(_entry(p, snap, expand))
    return JSONResponse(out, headers={"X-Repo-Commit": snap.commit})

