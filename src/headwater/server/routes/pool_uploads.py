"""Uploads to served pools over HTTP: shards (indexed by the server) and their index JSON (verified).

Routes (a ``write`` key required; ``{repo}`` is ``owner/name``, a key of ``ServerConfig.pools``):

* ``PUT /api/pools/{repo}/files/{path}.tar[?replace=true]`` — body: the tar. Received to a temp file
  (beside the target for a local pool, so publishing is one rename), indexed in one streaming pass (a body
  that is not a tar, or holds a member named ``/abs``, ``../x``, …, is refused with 400; more than
  ``ServerConfig.max_shard_members`` members, 413), then published: the shard, then the index JSON the
  server built from it, then the shard's rows in the pool manifest. A shard already at that path with
  other bytes is replaced only with ``?replace=true`` (else 409: its members would silently change under
  its readers); the same bytes again are accepted as they are (a retried upload), and their manifest rows
  written again, so a retry repairs a manifest its first attempt left behind. Answers 201
  ``{path, size, oid, sha256, files, index, commit}`` — ``commit`` is the pool's new commit id.
* ``PUT /api/pools/{repo}/files/{path}.json`` — an index for a shard already uploaded (hfutils' upload
  order: tar, then json). It is checked against the shard's actual bytes (re-indexed); a mismatch is 422
  naming the first difference. The index kept is always the server's, so an index never disagrees with
  its tar. Answers 200 ``{path, verified: true, commit}``.
* ``DELETE /api/pools/{repo}/files/{path}.tar`` — removes the shard and its index and their manifest rows.

Who: a write key of the pool's owner, or of a user granted ``write`` on it (``headwater pool set|grant``,
:mod:`headwater.catalog.pool_access`); 401 without a key, 404 for a pool the caller may not even read
(as for one not served here), 403 for one it may read but not write. A pool without owner takes no
writes.

Refused: any other file type (400), unsafe paths (``..``, absolute, backslash, NUL, ``%``, hidden parts;
400), bodies over ``ServerConfig.max_upload_bytes`` (413 — from ``Content-Length`` before a byte is read,
and counted while streaming for chunked bodies), pools on plain HTTP (405, read-only). Uploads to one
pool publish one at a time within a process (a lock around rename + index + manifest); across server
processes the manifest's own guard keeps every upload (a ``flock`` on a local pool, a conditional PUT on
S3: :func:`~headwater.archive.update_manifest`), so after two processes upload at once it lists both.

Example:
    >>> import io, os, tarfile, tempfile
    >>> from starlette.testclient import TestClient
    >>> from headwater.server.app import ServerConfig, create_app
    >>> pool = tempfile.mkdtemp()
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "c.sqlite"), pools={"acme/px": pool}))
    >>> _ = app.state.catalog.create_user("alice")
    >>> _, key = app.state.catalog.create_api_key("alice", "write")
    >>> _ = app.state.catalog.change_pool_access("acme/px", owner="alice")
    >>> raw = io.BytesIO()
    >>> with tarfile.open(fileobj=raw, mode="w") as tar:
    ...     info = tarfile.TarInfo("7.txt"); info.size = 5
    ...     tar.addfile(info, io.BytesIO(b"seven"))
    >>> r = TestClient(app).put("/api/pools/acme/px/files/images/0007.tar", content=raw.getvalue(),
    ...                         headers={"Authorization": f"Bearer {key}"})
    >>> r.status_code, r.json()["files"], sorted(os.listdir(os.path.join(pool, "images")))
    (201, 1, ['0007.json', '0007.tar'])
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...archive import (
    IndexFormatError,
    ManifestError,
    TarFormatError,
    TarIndex,
    TooManyMembersError,
    UnsafeMemberError,
    check_member_name,
    decode_index,
    encode_index,
    index_path_for,
    index_stream,
    update_manifest,
)
from ...catalog import Principal
from ...storage import StorageError, Store, StoreNotFoundError
from ..auth import pool_for_writing, require_write
from ..errors import HubError
from ..snapshots import HubPool, check_repo_path
from ..state import config_of

__all__ = ["router", "MAX_INDEX_BYTES"]

router = APIRouter(tags=["pools"])

MAX_INDEX_BYTES = 256 << 20
"""Largest index JSON accepted (also bounded by ``ServerConfig.max_upload_bytes``)."""

_WRITE_CHUNK = 1 << 20


def _writable_pool(request: Request, owner: str, name: str, path: str, who: Principal) -> tuple[HubPool, str]:
    """The pool if ``who`` may write to it, and the checked path (reads the catalog: call it in a thread)."""
    try:
        pool = pool_for_writing(request, who, f"{owner}/{name}")
        path = check_repo_path(path)
    except HubError as err:
        raise HTTPException(err.status, str(err)) from None
    if any(part.startswith(".") for part in path.split("/")):
        raise HTTPException(400, f"unsafe path {path!r}: hidden names (starting with '.') are reserved")
    if not path.endswith((".tar", ".json")):
        raise HTTPException(400, f"cannot upload {path!r}: only .tar shards and their .json indexes are accepted")
    if not pool.writable:
        raise HTTPException(405, f"pool {pool.repo_id} is served read-only (from plain HTTP or the Hub)")
    return pool, path


def _declared_length(request: Request, limit: int) -> int | None:
    header = request.headers.get("content-length")
    if header is None:
        return None
    try:
        length = int(header)
    except ValueError:
        raise HTTPException(400, f"bad Content-Length {header!r}") from None
    if length < 0:
        raise HTTPException(400, f"bad Content-Length {header!r}")
    if length > limit:
        raise HTTPException(413, f"upload of {length} bytes exceeds the server's limit of {limit} bytes")
    return length


async def _receive(request: Request, fileobj: Any, limit: int) -> int:
    """Copy the request body into ``fileobj`` (writes in the thread pool), refusing more than ``limit`` bytes."""
    total, buf = 0, bytearray()
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HTTPException(413, f"upload exceeds the server's limit of {limit} bytes")
        buf += chunk
        if len(buf) >= _WRITE_CHUNK:
            await run_in_threadpool(fileobj.write, bytes(buf))
            buf.clear()
    if buf:
        await run_in_threadpool(fileobj.write, bytes(buf))
    return total


def _check_members(index: TarIndex, path: str) -> None:
    for name in index.files:
        try:
            check_member_name(name)
        except UnsafeMemberError as err:
            raise HTTPException(400, f"{path}: {err}") from None


def _stored_sha256(pool: HubPool, path: str) -> str | None:
    """The sha256 of the shard at ``path`` in the pool (None: no shard there), from its index when it has
    one (the server wrote it: it matches the bytes), else by reading the shard."""
    store = pool.store
    if not store.exists(path):
        return None
    try:
        return decode_index(store.read_bytes(index_path_for(path)), source=path).hash_lfs
    except (StoreNotFoundError, IndexFormatError):
        with store.open(path) as f:
            return index_stream(f, store.size(path), with_hash=False).hash_lfs


def _publish_tar(pool: HubPool, path: str, tmp: str, index: TarIndex, replace: bool) -> str:
    """Move the received shard into place, write its index, update the manifest; the new commit id.
    409 when another shard is at ``path`` and ``replace`` is off (checked under the pool's write lock)."""
    store = pool.store
    with pool.write_lock:
        current = _stored_sha256(pool, path)
        if current is not None and current != index.hash_lfs and not replace:
            raise HTTPException(409, f"{path!r} in {pool.repo_id} already holds another shard (sha256 {current}); "
                                     "replacing it changes what its members' ids return: send ?replace=true "
                                     "(headwater upload --replace) to replace it, or upload under another path")
        if current != index.hash_lfs:
            if store.is_local:
                os.replace(tmp, store.full_path(path))
            else:
                store.put_file(path, tmp)
            store.put_bytes(index_path_for(path), encode_index(index))
        # also for the same bytes again: a retried upload repairs a manifest its first attempt left behind
        _record_in_manifest(store, path, put={path: index})
    pool.invalidate()
    return pool.head().commit


def _record_in_manifest(store: Store, path: str, *, put: dict[str, TarIndex] | None = None,
                        remove: tuple[str, ...] = ()) -> None:
    """Update the pool manifest; 503 (try again) when other writers kept changing it (S3)."""
    try:
        update_manifest(store, put=put, remove=remove)
    except ManifestError as err:
        raise HTTPException(503, f"{path} is stored, but the pool's manifest could not be updated ({err}); send "
                                 "the upload again", headers={"Retry-After": "1"}) from None


def _index_upload(tmp: str, path: str, max_members: int) -> TarIndex:
    """Index the received shard; errors name the shard's path in the pool, never the server's temp file."""
    with open(tmp, "rb", buffering=0) as f:
        try:
            return index_stream(f, os.fstat(f.fileno()).st_size, max_members=max_members)
        except TooManyMembersError:
            raise HTTPException(413, f"{path} has more than {max_members} members; this server takes at most "
                                     f"{max_members} per shard: split it into smaller shards") from None
        except (TarFormatError, IndexFormatError) as err:
            raise HTTPException(400, f"{path} is not a valid tar archive: {err}") from None


def _difference(uploaded: TarIndex, truth: TarIndex) -> str | None:
    for key in ("filesize", "hash", "hash_lfs"):
        if getattr(uploaded, key) != getattr(truth, key):
            return f"{key} is {getattr(uploaded, key)!r}, the shard's is {getattr(truth, key)!r}"
    missing = sorted(set(truth.files) - set(uploaded.files))
    extra = sorted(set(uploaded.files) - set(truth.files))
    if missing:
        return f"member {missing[0]!r} of the shard is not in the index ({len(missing)} missing)"
    if extra:
        return f"member {extra[0]!r} is not in the shard ({len(extra)} extra)"
    for name in sorted(truth.files):
        a, b = uploaded.files[name], truth.files[name]
        if (a.offset, a.size) != (b.offset, b.size):
            return f"member {name!r}: offset/size {a.offset}/{a.size}, the shard's {b.offset}/{b.size}"
        if a.sha256 is not None and a.sha256 != b.sha256:
            return f"member {name!r}: sha256 {a.sha256}, the shard's {b.sha256}"
    return None


def _verify_index(pool: HubPool, path: str, data: bytes) -> dict[str, Any]:
    store = pool.store
    tar = path[:-5] + ".tar"
    try:
        uploaded = decode_index(data, source=path)
    except IndexFormatError as err:
        raise HTTPException(400, str(err)) from None
    try:
        size = store.size(tar)
    except StoreNotFoundError:
        raise HTTPException(409, f"upload the shard {tar!r} first: an index is checked against its shard") from None
    with store.open(tar) as f:
        try:
            truth = index_stream(f, size)
        except (TarFormatError, IndexFormatError) as err:
            raise HTTPException(409, f"the shard {tar!r} in the pool cannot be indexed: {err}") from None
    problem = _difference(uploaded, truth)
    if problem:
        raise HTTPException(422, f"{path} does not match {tar}: {problem}")
    canonical = encode_index(truth)
    with pool.write_lock:
        try:
            current = store.read_bytes(path)
        except StoreNotFoundError:
            current = None
        if current != canonical:
            store.put_bytes(path, canonical)
            _record_in_manifest(store, path, put={tar: truth})
    pool.invalidate()
    return {"path": path, "verified": True, "commit": pool.head().commit}


@router.put("/api/pools/{owner}/{name}/files/{path:path}", status_code=201,
            summary="Upload a shard (indexed by the server) or check an index against its shard")
async def upload_file(owner: str, name: str, path: str, request: Request,
                      replace: bool = Query(False, description="replace a shard already at this path with other bytes"),
                      who: Principal = Depends(require_write)) -> JSONResponse:
    pool, path = await run_in_threadpool(_writable_pool, request, owner, name, path, who)
    limit = config_of(request).max_upload_bytes
    if path.endswith(".json"):
        limit = min(limit, MAX_INDEX_BYTES)
    declared = _declared_length(request, limit)
    if declared == 0:
        raise HTTPException(400, f"empty upload for {path!r}")
    if path.endswith(".json"):
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, f"upload exceeds the server's limit of {limit} bytes")
        result = await run_in_threadpool(_verify_index, pool, path, bytes(body))
        return JSONResponse(result, status_code=200)

    store = pool.store
    if store.is_local:
        folder = os.path.dirname(store.full_path(path))
        await run_in_threadpool(os.makedirs, folder, exist_ok=True)
    else:
        folder = None
    fd, tmp = tempfile.mkstemp(prefix=f".{posixpath.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            size = await _receive(request, f, limit)
        if size == 0:
            raise HTTPException(400, f"empty upload for {path!r}")
        if declared is not None and size != declared:
            raise HTTPException(400, f"received {size} bytes but Content-Length said {declared}")
        index = await run_in_threadpool(_index_upload, tmp, path, config_of(request).max_shard_members)
        _check_members(index, path)
        commit = await run_in_threadpool(_publish_tar, pool, path, tmp, index, replace)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return JSONResponse({"path": path, "size": size, "oid": index.hash, "sha256": index.hash_lfs,
                         "files": len(index.files), "index": index_path_for(path), "commit": commit},
                        status_code=201)


def _delete(pool: HubPool, path: str) -> str:
    store = pool.store
    with pool.write_lock:
        if not store.exists(path):
            raise HTTPException(404, f"{path!r} not found in {pool.repo_id}")
        for target in (index_path_for(path), path):
            full = store.full_path(target)
            try:
                store.fs.rm_file(full)
            except FileNotFoundError:
                pass
            except (OSError, StorageError) as err:
                raise HTTPException(500, f"cannot delete {target!r}: {type(err).__name__}") from None
        _record_in_manifest(store, path, remove=(path,))
    pool.invalidate()
    return pool.head().commit


@router.delete("/api/pools/{owner}/{name}/files/{path:path}", summary="Delete a shard and its index")
async def delete_file(owner: str, name: str, path: str, request: Request,
                      who: Principal = Depends(require_write)) -> dict[str, Any]:
    pool, path = await run_in_threadpool(_writable_pool, request, owner, name, path, who)
    if not path.endswith(".tar"):
        raise HTTPException(400, f"cannot delete {path!r}: delete the shard (.tar); its index goes with it")
    commit = await run_in_threadpool(_delete, pool, path)
    return {"path": path, "deleted": True, "commit": commit}

