"""Dataset writes over HTTP: publish a dataset from an NDJSON body, move tags, read tag history.

Routes (``{db}`` a database uid or name; writes need a ``write`` key whose user may write the database,
see :mod:`headwater.server.auth`: 401 without a key, 403 with a read-only or foreign key, 404 when the
database is invisible to the caller):

* ``POST /api/database/{db}/repository/{ns}/{name}/publish`` — body ``application/x-ndjson``:

  - line 1, the header: ``{"template": {…}|null, "tags": ["latest"], "pools": {name: URL},
    "strict": bool|null, "maxProblems": 100}`` (every key optional; ``template`` null → inferred from
    the droplets, as ``headwater publish`` does);
  - every further line, one droplet: ``{"split": "train", "droplet": {…datatap ImageAnnotation…},
    "where": "line 12"}`` (``split`` defaults to ``train``; ``where`` optionally names the item in the
    sender's own source, and problems then quote it instead of the body line number).

  Answers 201 with the new dataset's JSON (as ``GET …/{uid}``) plus ``tags``. Pools are URLs readers can
  reach; a URL of a pool this server serves (``{server}/datasets/{owner}/{repo}/resolve/main/{path}``, e.g.
  after uploading shards there) is stored as that pool's location and shown as such a URL again (see
  :mod:`headwater.server.public_urls`). Other pool and image URLs must use a scheme of
  ``ServerConfig.pool_url_schemes`` (default ``https``, ``s3``): readers' clients open them, so a publisher
  may not point them at a file or a loopback service. A line longer than ``ServerConfig.max_droplet_bytes``
  (plus 64 KiB for ``split``/``where``) is refused with 413 as it arrives. A refusal is 400
  ``{"error": summary, "problems": [{"where", "message"}], "total": n}`` naming *every* problem (up to
  ``maxProblems``) by line, and then nothing was written. Bodies over ``ServerConfig.max_upload_bytes``
  are refused with 413 (from ``Content-Length`` before a byte is read; counted for chunked bodies).
  With an ``Idempotency-Key: <1-255 visible ASCII characters>`` header (headwater's client sends a new one
  per logical publish and the same one on each retry), the publish commits at most once per key and user:
  the key is recorded with the dataset in its transaction, a request repeating a key that committed
  answers 201 with that same dataset (and ``Idempotent-Replayed: true``) without publishing again — also
  when it arrives while the first is still running (it waits for it) — and the same key with another body
  or another repository is refused with 422. So a client whose connection broke after sending may simply
  send again. (Tag moves and pool uploads need no key: repeating them changes nothing.)
* ``PUT /api/database/{db}/repository/{ns}/{name}/tag/{tag}`` with ``{"dataset": uid_or_tag}`` → the
  tag JSON (``{tag, dataset, updatedAt, splits}``) plus ``previous`` (the uid it pointed at, or null);
  the move is appended to the tag's history (moving to where it already points records nothing).
* ``GET /api/database/{db}/repository/{ns}/{name}/tags/history[?tag=]`` (read access) →
  ``[{tag, dataset, previous, movedAt}]``, oldest first (``movedAt`` in ms).

Why the body is spooled to a file first (in the server's spool, :mod:`headwater.server.spool`): validation
reads every droplet before anything is written (so the catalog's write transaction — on SQLite, the database's
write lock — is held only for the insert pass, never while a slow client uploads), and the publish machinery
reads its source twice (validate, then write) exactly as a local ``headwater publish`` does: one
implementation, the same rules, the same messages. Image paths must be URLs or ``pool://`` references to pools
named in the header: a droplet naming a local file would make the server read its own disk, so it is refused.
Every ``pool://`` reference must name a pool of the header and, for a pool this server serves, a member it
holds — the rule a local publish applies (:class:`~headwater.publish.pool_refs.PoolRefCheck`); pools
elsewhere are not opened (the server connects to no host a publisher names). Droplet uids must not repeat.

Example:
    >>> import os, tempfile, json
    >>> from starlette.testclient import TestClient
    >>> from headwater.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "catalog.sqlite")))
    >>> _ = app.state.catalog.create_database("main")
    >>> _ = app.state.catalog.create_user("alice")
    >>> _, key = app.state.catalog.create_api_key("alice", "write")
    >>> body = "\\n".join(json.dumps(x) for x in [
    ...     {"tags": ["latest"]},
    ...     {"split": "train", "droplet": {"kind": "ImageAnnotation", "image": {"paths": ["https://x/1.jpg"]},
    ...                                    "classes": {}}}]) + "\\n"
    >>> r = TestClient(app).post("/api/database/main/repository/acme/cats/publish", content=body,
    ...                          headers={"Authorization": f"Bearer {key}"})
    >>> r.status_code, r.json()["splitCounts"]
    (201, {'train': 1})
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...catalog import (
    AlreadyPublishedError,
    DatasetRecord,
    Principal,
    PublishKey,
    check_name,
    dataset_json,
    tag_event_json,
    tag_move_json,
)
from ...droplet import ImageRefError, parse_image_ref
from ...publish import PublishError, SourceItem
from ...publish import publish as publish_source
from ..auth import readable_database, reader, require_write, writable_database
from ..bodies import read_json
from ..errors import UnsafePathError, UnsafeUrlError
from ..public_urls import public_pools, served_pool_of, stored_pools, url_problem
from ..state import catalog_of, config_of, spool_of

__all__ = ["NDJSON", "PublishHeader", "router", "IDEMPOTENCY_KEY"]

NDJSON = "application/x-ndjson"

router = APIRouter(prefix="/api", tags=["writes"])

_REPO = "/database/{database}/repository/{namespace}/{name}"
IDEMPOTENCY_KEY = "Idempotency-Key"
"""The request header naming one logical publish (see the module docstring)."""
_WRITE_CHUNK = 1 << 20


class PublishHeader(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Line 1 of a publish body (every field optional)."""

    template: dict[str, Any] | None = None
    tags: list[str] = msgspec.field(default_factory=lambda: ["latest"])
    pools: dict[str, str] = msgspec.field(default_factory=dict)
    strict: bool | None = None
    max_problems: int = 100


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    droplet: dict[str, Any]
    split: str | None = None
    where: str | None = None


_HEADER = msgspec.json.Decoder(PublishHeader)
_LINE = msgspec.json.Decoder(_Line)


def _image_problem(droplet: Mapping[str, Any], url_problem: Callable[[str], str | None]) -> str | None:
    """Why a droplet's image paths cannot be published over HTTP (None: they can). ``pool://`` references
    are checked by the publish itself (:class:`~headwater.publish.pool_refs.PoolRefCheck`), as for a local
    publish."""
    image = droplet.get("image")
    paths = image.get("paths") if isinstance(image, Mapping) else None
    if not isinstance(paths, list):
        return None  # the droplet validation names what is wrong with it
    for path in paths:
        if not isinstance(path, str):
            continue
        try:
            ref = parse_image_ref(path)
        except ImageRefError as err:
            return str(err)
        if ref.kind == "file":
            return (f"image {path!r} is a local file path; over HTTP an image must be a URL or a pool:// "
                    "reference to a pool named in the header's 'pools' (upload the images into a pool first)")
        if ref.kind == "url":
            problem = url_problem(path)
            if problem is not None:
                return f"image {problem}"
    return None


class _BodySource:
    """The spooled body as a :class:`~headwater.publish.Source` (re-iterable: read from the file)."""

    images_root = None
    template = None

    def __init__(self, path: str, url_problem: Callable[[str], str | None]) -> None:
        self.path = path
        self.name = "request body"
        self.url_problem = url_problem

    def items(self) -> Iterator[SourceItem]:
        with open(self.path, "rb") as f:
            f.readline()  # the header
            for number, raw in enumerate(f, 2):
                if not raw.strip():
                    continue
                where = f"line {number}"
                try:
                    line = _LINE.decode(raw)
                except msgspec.DecodeError as err:
                    yield SourceItem(where, None, problems=(f"invalid JSON: {err}",))
                    continue
                except RecursionError:
                    yield SourceItem(where, None, problems=("JSON nested too deeply",))
                    continue
                except msgspec.ValidationError as err:
                    yield SourceItem(where, None, problems=(f"expected {{\"split\", \"droplet\", \"where\"}}: {err}",))
                    continue
                if line.where:
                    where = line.where
                problem = _image_problem(line.droplet, self.url_problem)
                if problem is not None:
                    yield SourceItem(where, None, problems=(problem,))
                    continue
                yield SourceItem(where, line.droplet, split=line.split)


_LINE_SLACK = 64 << 10
"""Room for a line's ``split`` and ``where`` beside its droplet (``ServerConfig.max_droplet_bytes``)."""


async def _spool(request: Request) -> str:
    """Receive the body into the app's spool (413 past the upload limit or for a line past the droplet
    limit, 507 when the spool is full); returns the file's path."""
    config = config_of(request)
    spool = spool_of(request)
    path, received = await spool.receive(request, config.max_upload_bytes,
                                         max_line=config.max_droplet_bytes + _LINE_SLACK, suffix=".ndjson")
    if received == 0:
        spool.discard(path)
        raise HTTPException(400, "empty body: expected a header line and one droplet a line (NDJSON)")
    return path


def _read_header(path: str) -> PublishHeader:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        header = _HEADER.decode(first)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise HTTPException(400, f"line 1 must be the publish header {{template, tags, pools, strict, "
                                 f"maxProblems}}: {err}") from None
    except RecursionError:
        raise HTTPException(400, "line 1 (the publish header): JSON nested too deeply") from None
    if not 1 <= header.max_problems <= 10_000:
        raise HTTPException(400, f"maxProblems must be in [1, 10000], got {header.max_problems}")
    return header


def _problems_response(err: PublishError) -> JSONResponse:
    return JSONResponse({"error": err.summary,
                         "problems": [{"where": p.where, "message": p.message} for p in err.problems],
                         "total": err.total}, status_code=400)


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get(IDEMPOTENCY_KEY)
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise HTTPException(400, f"{IDEMPOTENCY_KEY} must be 1-255 visible ASCII characters (e.g. a UUID), got "
                                 f"{value[:64]!r}")
    return value


def _fingerprint(path: str, database: str, namespace: str, name: str) -> str:
    """What a publish asked for: the repository and the body's bytes (a retry sends the same)."""
    digest = hashlib.sha256(f"{database}\0{namespace}\0{name}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _published(request: Request, record: DatasetRecord, tags: list[str], *, replayed: bool) -> JSONResponse:
    body = dataset_json(record)
    body["pools"] = public_pools(request, body["pools"])
    return JSONResponse({**body, "tags": tags}, status_code=201,
                        headers={"Idempotent-Replayed": "true"} if replayed else None)


def _replay(request: Request, err: AlreadyPublishedError) -> DatasetRecord:
    """The dataset an earlier publish with the same key made (422 when that publish asked for other things)."""
    if not err.same_request:
        raise HTTPException(422, str(err))
    return catalog_of(request).dataset_by_uid(err.dataset_uid)


@router.post(_REPO + "/publish", status_code=201, summary="Publish a new dataset from NDJSON droplets",
             openapi_extra={"requestBody": {"content": {NDJSON: {"schema": {"type": "string"}}}, "required": True}})
async def publish_dataset(database: str, namespace: str, name: str, request: Request,
                          who: Principal = Depends(require_write)) -> Any:
    """Validate every droplet of the body, then write the dataset, its splits and tags in one transaction."""
    check_name("namespace", namespace)
    check_name("repository name", name)
    key_text = _idempotency_key(request)
    db = await run_in_threadpool(writable_database, request, who, database)
    path = await _spool(request)
    try:
        header = await run_in_threadpool(_read_header, path)
        key = None
        if key_text is not None:
            fingerprint = await run_in_threadpool(_fingerprint, path, db.uid, namespace, name)
            key = PublishKey(who.uid, key_text, fingerprint)
            try:  # a retry of a publish that committed: answer at once, without validating the body again
                await run_in_threadpool(catalog_of(request).check_publish_key, key)
            except AlreadyPublishedError as err:
                record = await run_in_threadpool(_replay, request, err)
                return _published(request, record, header.tags, replayed=True)
        try:
            pools = stored_pools(request, header.pools)
        except (UnsafePathError, UnsafeUrlError) as err:
            raise HTTPException(400, f"pools: {err}") from None
        source = _BodySource(path, functools.partial(url_problem, request))
        served = config_of(request).pools
        try:
            record = await run_in_threadpool(
                publish_source, catalog_of(request), db.uid, namespace, name, source,
                pools=pools, pool_name=next(iter(pools), "images"), template=header.template,
                strict=header.strict, tags=header.tags, max_problems=header.max_problems, silent=True, key=key,
                check_members=lambda location: served_pool_of(location, served) is not None)
        except PublishError as err:
            return _problems_response(err)
        except AlreadyPublishedError as err:  # the same key committed while this one was validating
            record = await run_in_threadpool(_replay, request, err)
            return _published(request, record, header.tags, replayed=True)
    finally:
        spool_of(request).discard(path)
    return _published(request, record, header.tags, replayed=False)


@router.put(_REPO + "/tag/{tag}", summary="Point a tag at a dataset (by uid, or where another tag points)",
            openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": {"dataset": {"type": "string", "description": "a uid, or another tag"}},
                "required": ["dataset"]}}}, "required": True}})
async def move_tag(database: str, namespace: str, name: str, tag: str, request: Request,
                   who: Principal = Depends(require_write)) -> dict[str, Any]:
    body = await read_json(request, "tag move")  # after `require_write` authenticated the caller
    dataset = body.get("dataset") if isinstance(body, dict) else None
    if not isinstance(dataset, str) or not dataset:
        raise HTTPException(400, "tag move: expected {\"dataset\": \"a dataset uid, or another tag\"}")
    check_name("tag", tag)

    def move() -> dict[str, Any]:
        db = writable_database(request, who, database)
        return tag_move_json(catalog_of(request).move_tag(db.uid, namespace, name, tag, dataset))

    return await run_in_threadpool(move)


@router.get(_REPO + "/tags/history", summary="Every move of the repository's tags (or of one), oldest first")
def tag_history(database: str, namespace: str, name: str, request: Request,
                tag: str | None = Query(None, description="only this tag"),
                who: Principal | None = Depends(reader)) -> list[dict[str, Any]]:
    db = readable_database(request, who, database)
    return [tag_event_json(e) for e in catalog_of(request).tag_history(db.uid, namespace, name, tag)]
