"""The viewer under ``/view/``: server-rendered pages to look at datasets, thumbnails, raw images, sign-in.

Pages (HTML; every user string escaped; the Content-Security-Policy of
:mod:`headwater.server.viewer.headers` forbids inline scripts and styles):

* ``GET /view/`` — the databases the caller may read;
* ``GET /view/{db}`` — its repositories; ``GET /view/{db}/{ns}/{name}`` — tags, tag history, datasets (splits
  with counts, template classes);
* ``GET /view/{db}/{ns}/{name}/{tag_or_uid}/{split}`` — a page of thumbnails; filters are URL query parameters
  (:meth:`headwater.catalog.SplitFilter.from_query`), ``page`` picks the page;
* ``GET …/{split}/{ordinal}`` — one sample: image, overlay drawn in the browser from the droplet, toggles,
  zoom, droplet JSON, metadata, the raw image (and the Hub ``resolve`` URL of its shard with the byte range,
  when the pool is served: members have no URL of their own there), previous/next within the filter (``i`` is
  the sample's index among the matches);
* ``GET …/{split}/stats`` — class, instances-per-image and box-size histograms as SVG;
* ``GET|POST /view/signin``, ``POST /view/signout`` — the session cookie (:mod:`headwater.server.viewer.sessions`).

Images: ``GET /view/thumb/{dataset_uid}/{split}/{ordinal}.jpg`` (render options as query parameters:
``size``, ``show`` (repeatable: classes to draw), ``min_confidence``, ``boxes``, ``masks``, ``keypoints``,
``labels``, ``attributes`` as 0/1) and ``GET /view/image/{dataset_uid}/{split}/{ordinal}`` (the image's own
bytes). Both are addressed by the immutable dataset uid, so they carry an ``ETag`` and ``Cache-Control:
…, max-age=31536000, immutable`` (``private`` unless anyone may read the database) and answer 304 to
``If-None-Match``. A thumbnail whose image could not be read is a placeholder tile naming the problem, sent
with ``no-cache`` (the image may come back) and not kept.

Access is the API's (:mod:`headwater.server.auth`) for the caller that
:func:`~headwater.server.viewer.access.viewer_principal` finds (Bearer header or session): an invisible
database is 404 as if absent; with ``--no-anonymous`` an anonymous page request is redirected to the sign-in
form (images: 401).

Example:
    >>> import os, tempfile
    >>> from starlette.testclient import TestClient
    >>> from headwater.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "c.sqlite")))
    >>> _ = app.state.catalog.create_database("open", public=True)
    >>> _ = app.state.catalog.create_database("secret")
    >>> page = TestClient(app).get("/view/")
    >>> "open" in page.text, "secret" in page.text, "script-src 'self'" in page.headers["content-security-policy"]
    (True, False, True)
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from ...catalog import (
    CatalogError,
    DatabaseRecord,
    DatasetRecord,
    InvalidNameError,
    NotFoundError,
    OutOfRangeError,
    Principal,
    SplitFilter,
    SplitStats,
    repositories_json,
)
from ...droplet import DropletError, ImageAnnotation, decode_droplet
from ...render import RenderOptions, class_colour_hex
from ..auth import readable_database, visible_databases
from ..errors import HubError, RenderPoolBusy
from ..public_urls import public_base_url, public_pool_url, served_pool_of
from ..state import catalog_of, config_of, dataset_of
from ..viewer.access import SignInRequired, viewer_principal, viewer_reader
from ..viewer.charts import bar_chart, column_chart
from ..viewer.pages import STATIC, local_next, page, path_of, with_query
from ..viewer.samples import Thumbnail
from ..viewer.sessions import COOKIE_NAME
from ..viewer.state import viewer_of

__all__ = ["router", "ViewerRoute", "PAGE_SIZE", "THUMB_SIZE", "MAX_THUMB_SIZE", "KINDS", "render_options_from_query"]

PAGE_SIZE = 60
"""Thumbnails per grid page."""
THUMB_SIZE = 256
"""Default longest side of a thumbnail, in pixels."""
MAX_THUMB_SIZE = 1024
"""Largest ``size`` a thumbnail may be asked for."""
KINDS = ("box", "mask", "keypoints", "label")
"""Kinds of overlay on the sample page, each with its own toggle."""

_IMMUTABLE = "max-age=31536000, immutable"
_THUMB_VERSION = "1"  # part of every thumbnail ETag: bump when rendering changes what a thumbnail looks like
_IMAGE_CSP = "default-src 'none'; sandbox"  # a raw image opened on its own can run nothing, whatever its bytes
_NOT_PAGE_PARAMS = ("page", "i")  # the viewer's own query parameters, not filters


class ViewerRoute(APIRoute):
    """Answers the viewer's errors as HTML pages (the rest of the server answers JSON): an invisible or
    missing thing is a 404 page, a refused anonymous caller is sent to the sign-in form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired as signal:
                return RedirectResponse(with_query(path_of("signin"), [("next", signal.next_url)]), status_code=303)
            except (NotFoundError, OutOfRangeError, InvalidNameError) as err:
                return _error_page(request, 404, "Not found", _message(err))
            except HubError as err:
                return _error_page(request, err.status, "Not found", _message(err))
            except RenderPoolBusy as err:
                return _error_page(request, 503, "Busy", str(err), {"Retry-After": "1"})
            except HTTPException as err:
                heading = {401: "Sign-in needed", 403: "Forbidden"}.get(err.status_code, "Refused")
                return _error_page(request, err.status_code, heading, str(err.detail), err.headers)

        return handler


def _message(err: BaseException) -> str:
    return str(err.args[0]) if err.args else type(err).__name__


def _error_page(request: Request, status: int, heading: str, message: str,
                headers: Mapping[str, str] | None = None) -> Response:
    who = getattr(request.state, "principal", None)
    return page(request, "error.html", who, status=status, headers=headers, heading=heading, message=message,
                crumbs=[], status_code=status)


router = APIRouter(prefix="/view", route_class=ViewerRoute, include_in_schema=False)


def _colour(name: str) -> str:
    return class_colour_hex(name)


# -- sign-in -----------------------------------------------------------------------------------------------------
def _https(request: Request) -> bool:
    return public_base_url(request).startswith("https://") or request.url.scheme == "https"


@router.get("/signin")
def signin_form(request: Request, next: str = "/view/") -> Response:  # noqa: A002 - the query parameter's name
    who = viewer_principal(request)
    return page(request, "signin.html", who, next=local_next(next), problem=None, crumbs=[("sign in", None)],
                hours=config_of(request).session_max_age // 3600)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check the key of the form and answer with a session cookie naming it by id (303 to ``next``)."""
    body = await request.body()
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        form = {}
    secret = form.get("key", "").strip()
    target = local_next(form.get("next"))
    who = await run_in_threadpool(catalog_of(request).authenticate, secret) if secret else None
    if who is None:
        return page(request, "signin.html", None, status=401, next=target, crumbs=[("sign in", None)],
                    problem="That is not a valid API key (unknown, mistyped or revoked).",
                    hours=config_of(request).session_max_age // 3600)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE_NAME, viewer_of(request).signer.sign(who.key_id),
                        max_age=config_of(request).session_max_age, path="/view", httponly=True,
                        samesite="strict", secure=_https(request))
    return response


@router.post("/signout")
def signout(request: Request) -> Response:
    """End the session (SameSite=Strict: another site cannot make a browser post this)."""
    response = RedirectResponse(path_of(""), status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/view", httponly=True, samesite="strict", secure=_https(request))
    return response


# -- static files --------------------------------------------------------------------------------------------------
@router.get("/static/{name}")
def static_file(name: str, request: Request) -> Response:
    found = STATIC.get(name)
    if found is None:
        raise NotFoundError(f"no static file {name!r}")
    etag = f'"{found.etag}"'
    versioned = request.query_params.get("v") == found.etag
    headers = {"ETag": etag, "Cache-Control": f"public, {_IMMUTABLE}" if versioned else "no-cache"}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.media_type, headers=headers)


def _etag_matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match")
    return given is not None and (given.strip() == "*" or etag in (t.strip() for t in given.split(",")))


# -- thumbnails and images -------------------------------------------------------------------------------------------
def _flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise HTTPException(400, f"{name} must be 0 or 1, got {value!r}")


def render_options_from_query(items: Iterable[tuple[str, str]]) -> tuple[RenderOptions, int]:
    """The render options and the size a thumbnail URL's query asks for (HTTPException 400 on bad values).

    >>> options, size = render_options_from_query([("show", "cat"), ("masks", "0"), ("size", "128")])
    >>> sorted(options.classes), options.masks, size
    (['cat'], False, 128)
    """
    items = list(items)
    params = dict(items)
    shown = [v for k, v in items if k == "show"]
    try:
        size = int(params.get("size", THUMB_SIZE))
        min_conf = float(params["min_confidence"]) if params.get("min_confidence") else None
    except ValueError:
        raise HTTPException(400, "size must be an integer and min_confidence a number") from None
    if not 16 <= size <= MAX_THUMB_SIZE:
        raise HTTPException(400, f"size must be in [16, {MAX_THUMB_SIZE}], got {size}")
    if min_conf is not None and not (0 <= min_conf <= 1):
        raise HTTPException(400, f"min_confidence must be in [0, 1], got {min_conf}")
    options = RenderOptions(classes=frozenset(shown) if shown else None, min_confidence=min_conf,
                            boxes=_flag(params, "boxes", True), masks=_flag(params, "masks", True),
                            keypoints=_flag(params, "keypoints", True), labels=_flag(params, "labels", True),
                            attributes=_flag(params, "attributes", False))
    return options, size


def _readable_dataset(request: Request, who: Principal | None, uid: str) -> tuple[DatasetRecord, DatabaseRecord]:
    """The dataset ``uid`` if ``who`` may read its database (else 404 as if absent)."""
    try:
        record = viewer_of(request).dataset(uid)
    except NotFoundError:
        raise NotFoundError(f"dataset {uid!r} not found") from None
    return record, readable_database(request, who, record.database)


def _image_caller(request: Request) -> Principal | None:
    who = viewer_principal(request)
    if who is None and not config_of(request).anonymous_read:
        raise HTTPException(401, "authentication required: sign in at /view/signin or send a Bearer key",
                            headers={"WWW-Authenticate": 'Bearer realm="headwater"'})
    return who


def _cache_control(request: Request, db: DatabaseRecord) -> str:
    shared = db.public and config_of(request).anonymous_read
    return f"{'public' if shared else 'private'}, {_IMMUTABLE}"


def _ordinal(text: str, suffix: str = "") -> int:
    if suffix:
        if not text.endswith(suffix):
            raise NotFoundError(f"not a thumbnail: {text!r} (expected ORDINAL{suffix})")
        text = text[:-len(suffix)]
    if not text.isdigit() or len(text) > 18:
        raise NotFoundError(f"not a sample number: {text!r}")
    return int(text)


@router.get("/thumb/{uid}/{split}/{file}")
async def thumbnail(uid: str, split: str, file: str, request: Request) -> Response:
    """A rendered thumbnail (see the module docstring); renders run in the app's bounded pool."""
    ordinal = _ordinal(file, ".jpg")
    options, size = render_options_from_query(request.query_params.multi_items())
    viewer = viewer_of(request)

    def check() -> tuple[DatasetRecord, DatabaseRecord]:
        return _readable_dataset(request, _image_caller(request), uid)

    record, db = await run_in_threadpool(check)
    if split not in record.splits:
        raise NotFoundError(f"split {split!r} not found in dataset {uid!r}")
    if not 0 <= ordinal < record.splits[split]:
        raise NotFoundError(f"sample {ordinal} not found in split {split!r} ({record.splits[split]} samples)")
    key = (uid, split, ordinal, options.key(), size)
    etag = '"' + hashlib.sha256(repr((_THUMB_VERSION, *key)).encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": _cache_control(request, db)}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    data = viewer.thumbnails.get(key)
    if data is None:
        future = viewer.render_pool.submit(key, lambda: viewer.samples.thumbnail(record, split, ordinal, options, size))
        drawn: Thumbnail = await asyncio.wrap_future(future)
        if drawn.problem is not None:
            return Response(drawn.data, media_type="image/jpeg",
                            headers={"Cache-Control": "no-cache", "X-Headwater-Problem": _header_safe(drawn.problem)})
        viewer.thumbnails.put(key, drawn.data)
        data = drawn.data
    return Response(data, media_type="image/jpeg", headers=headers)


def _header_safe(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\r", " ").replace("\n", " ")[:300]


def _image_type(data: bytes) -> str | None:
    """The MIME type of an image Pillow recognises in ``data`` (header only), else None."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return Image.MIME.get(img.format or "")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


@router.get("/image/{uid}/{split}/{ordinal}")
def raw_image(uid: str, split: str, ordinal: str, request: Request) -> Response:
    """The sample's image as stored (only if it is an image Pillow recognises: sent with its own type,
    ``nosniff`` and a sandboxing CSP, so a hostile file in a pool cannot become a page of this site)."""
    number = _ordinal(ordinal)
    record, db = _readable_dataset(request, _image_caller(request), uid)
    samples = viewer_of(request).samples
    droplet = samples.droplet(record, split, number)
    data = samples.image(record, droplet)
    if isinstance(data, BaseException):
        raise NotFoundError(f"the image of sample {number} cannot be read: {data}")
    media = _image_type(data)
    if media is None:
        raise NotFoundError(f"the file of sample {number} is not an image this server recognises")
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": _cache_control(request, db), "Content-Security-Policy": _IMAGE_CSP}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media, headers=headers)


# -- pages ----------------------------------------------------------------------------------------------------------
@router.get("")
def view_root() -> Response:
    return RedirectResponse(path_of(""), status_code=308)


@router.get("/")
def databases_page(request: Request, who: Principal | None = Depends(viewer_reader)) -> Response:
    return page(request, "databases.html", who, databases=visible_databases(request, who), crumbs=[])


@router.get("/{database}")
def repositories_page(database: str, request: Request, who: Principal | None = Depends(viewer_reader)) -> Response:
    db = readable_database(request, who, database)
    repositories = repositories_json(catalog_of(request), db.uid)
    return page(request, "repositories.html", who, db=db, repositories=repositories, crumbs=[(db.name, None)])


@dataclass(frozen=True)
class _TemplateClass:
    name: str
    fields: str


def _template_classes(template: Mapping[str, Any]) -> list[_TemplateClass]:
    classes = template.get("classes") if isinstance(template, Mapping) else None
    out = []
    for name, spec in (classes or {}).items():
        parts = []
        for kind in ("instances", "multiInstances"):
            fields = spec.get(kind) if isinstance(spec, Mapping) else None
            if isinstance(fields, Mapping):
                shown = [k for k, v in fields.items() if v]
                parts.append(f"{kind}: {', '.join(shown) or 'no fields'}")
        out.append(_TemplateClass(str(name), "; ".join(parts)))
    return out


@router.get("/{database}/{namespace}/{name}")
def repository_page(database: str, namespace: str, name: str, request: Request,
                    who: Principal | None = Depends(viewer_reader)) -> Response:
    db = readable_database(request, who, database)
    catalog = catalog_of(request)
    catalog.repository(db.uid, namespace, name)  # 404 for a repository that is not there
    tags = catalog.tags(db.uid, namespace, name)
    tags_of: dict[str, list[str]] = {}
    for tag in tags:
        tags_of.setdefault(tag.dataset, []).append(tag.tag)
    datasets = sorted(catalog.datasets(db.uid, namespace, name), key=lambda d: d.created_at, reverse=True)
    history = sorted(catalog.tag_history(db.uid, namespace, name), key=lambda e: e.moved_at, reverse=True)
    return page(request, "repository.html", who, db=db, namespace=namespace, name=name, tags=tags,
                history=history, datasets=datasets, tags_of=tags_of, template_classes=_template_classes,
                colour=_colour, crumbs=[(db.name, path_of(db.name)), (f"{namespace}/{name}", None)])


@router.get("/{database}/{namespace}/{name}/{ref}")
def dataset_page(database: str, namespace: str, name: str, ref: str, request: Request,
                 who: Principal | None = Depends(viewer_reader)) -> Response:
    db = readable_database(request, who, database)
    ds = dataset_of(request, db.uid, namespace, name, ref)
    return RedirectResponse(path_of(db.name, namespace, name) + f"#dataset-{ds.uid}", status_code=303)


@dataclass(frozen=True)
class _Split:
    db: DatabaseRecord
    dataset: DatasetRecord
    namespace: str
    name: str
    ref: str
    split: str

    def crumbs(self, *more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
        base = [(self.db.name, path_of(self.db.name)),
                (f"{self.namespace}/{self.name}", path_of(self.db.name, self.namespace, self.name)),
                (self.ref, path_of(self.db.name, self.namespace, self.name) + f"#dataset-{self.dataset.uid}")]
        return base + list(more)

    def path(self, *more: str | int) -> str:
        """A page of this split, addressed by the dataset's uid (immutable), whatever ``ref`` was."""
        return path_of(self.db.name, self.namespace, self.name, self.dataset.uid, self.split, *more)

    @property
    def count(self) -> int:
        return self.dataset.splits[self.split]


def _split_of(request: Request, who: Principal | None, database: str, namespace: str, name: str, ref: str,
              split: str) -> _Split:
    db = readable_database(request, who, database)
    ds = dataset_of(request, db.uid, namespace, name, ref)
    if split not in ds.splits:
        raise NotFoundError(f"split {split!r} not found in dataset {ds.uid!r} (splits: {', '.join(ds.splits)})")
    return _Split(db, ds, namespace, name, ref, split)


def _filter_params(request: Request) -> list[tuple[str, str]]:
    """The query's filter parameters (without the viewer's own, without empty form fields)."""
    return [(k, v) for k, v in request.query_params.multi_items() if k not in _NOT_PAGE_PARAMS and v != ""]


def _parse_filter(params: list[tuple[str, str]]) -> tuple[SplitFilter, str | None]:
    try:
        return SplitFilter.from_query(params), None
    except (CatalogError, ValueError) as err:
        return SplitFilter(), _message(err)


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return max(0, int(text))
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number, got {text!r}") from None


def _form_values(params: list[tuple[str, str]]) -> dict[str, str]:
    """What the filter form's text inputs show, by field (see :data:`FILTER_FIELDS`): the parameters as
    given, repeated ones joined by spaces."""
    given: dict[str, str] = {}
    for key, value in params:
        given[key] = f"{given[key]} {value}" if key in given else value
    return {field: given.get(param, "") for field, param in vars(FILTER_FIELDS).items()}


@router.get("/{database}/{namespace}/{name}/{ref}/{split}")
def grid_page(database: str, namespace: str, name: str, ref: str, split: str, request: Request,
              who: Principal | None = Depends(viewer_reader)) -> Response:
    sp = _split_of(request, who, database, namespace, name, ref, split)
    catalog = catalog_of(request)
    params = _filter_params(request)
    flt, problem = _parse_filter(params)
    page_no = _int_param(request, "page", 0)
    found = catalog.filter_split(sp.dataset.uid, split, flt, offset=page_no * PAGE_SIZE, limit=PAGE_SIZE)
    query = flt.to_query()
    droplets = catalog.read_ordinals(sp.dataset.uid, split, found.ordinals) if found.ordinals else []
    cells = [_cell(sp, query, page_no * PAGE_SIZE + i, ordinal, raw)
             for i, (ordinal, raw) in enumerate(zip(found.ordinals, droplets, strict=True))]
    pages = max(1, math.ceil(found.total / PAGE_SIZE))
    prev_page = with_query(sp.path(), [*query, ("page", str(page_no - 1))]) if page_no > 0 else None
    next_page = with_query(sp.path(), [*query, ("page", str(page_no + 1))]) if page_no + 1 < pages else None
    stats = catalog.split_stats(sp.dataset.uid, split)
    classes = sorted(set(stats.instances) | {c.name for c in _template_classes(sp.dataset.template)})
    return page(request, "grid.html", who, db=sp.db, dataset=sp.dataset, namespace=namespace, name=name, ref=ref,
                split=split, total=sp.count, matches=found.total, cells=cells, page=page_no, pages=pages,
                prev_page=prev_page, next_page=next_page, flt=flt, problem=problem, classes=classes,
                fields=FILTER_FIELDS, form=_form_values(params), colour=_colour,
                here_path=request.url.path, crumbs=sp.crumbs((split, None)))


@dataclass(frozen=True)
class _FilterFields:
    """Names of the filter form's inputs: the query parameters of :meth:`SplitFilter.from_query`."""

    present: str = "class"
    count: str = "count"
    count_example: str = "cat:1-3"
    confidence: str = "conf"
    confidence_example: str = "0.5-0.9"
    uid: str = "uid"
    metadata: str = "meta"
    sample: str = "sample"
    seed: str = "seed"


FILTER_FIELDS = _FilterFields()


@dataclass(frozen=True)
class _Cell:
    ordinal: int
    href: str
    src: str
    alt: str
    caption: str
    title: str


def _cell(sp: _Split, query: list[tuple[str, str]], index: int, ordinal: int, raw: bytes) -> _Cell:
    try:
        droplet: ImageAnnotation | None = decode_droplet(raw)
    except DropletError:
        droplet = None
    uid = (droplet.uid if droplet is not None else None) or f"#{ordinal}"
    counts = _class_counts(droplet) if droplet is not None else {}
    summary = ", ".join(f"{n} {c}" for c, n in counts.items())
    return _Cell(ordinal=ordinal, href=with_query(sp.path(ordinal), [*query, ("i", str(index))]),
                 src=path_of("thumb", sp.dataset.uid, sp.split, f"{ordinal}.jpg"), alt=f"sample {uid}",
                 caption=uid, title=f"{uid}: {summary or 'no annotation'}")


def _class_counts(droplet: ImageAnnotation) -> dict[str, int]:
    return {name: len(cls.instances) + sum((m.count or 1) for m in cls.multi_instances)
            for name, cls in droplet.classes.items()}


@router.get("/{database}/{namespace}/{name}/{ref}/{split}/stats")
def stats_page(database: str, namespace: str, name: str, ref: str, split: str, request: Request,
               who: Principal | None = Depends(viewer_reader)) -> Response:
    sp = _split_of(request, who, database, namespace, name, ref, split)
    stats: SplitStats = catalog_of(request).split_stats(sp.dataset.uid, split)
    by_count = sorted(stats.instances.items(), key=lambda kv: (-kv[1], kv[0]))
    images = sorted(stats.images.items(), key=lambda kv: (-kv[1], kv[0]))
    per_image = _dense(stats.instances_per_image)
    total_sizes = [sum(col) for col in zip(*stats.box_sizes.values(), strict=True)] if stats.box_sizes else [0] * 20
    bins = [f"{i / len(total_sizes):.2f}" for i in range(len(total_sizes))]
    top = [c for c, _ in by_count if c in stats.box_sizes][:12]
    return page(request, "stats.html", who, db=sp.db, dataset=sp.dataset, namespace=namespace, name=name,
                split=split, stats=stats, grid_url=sp.path(),
                crumbs=sp.crumbs((split, sp.path()), ("statistics", None)),
                class_chart=bar_chart(by_count, title="Instances per class", colour=_colour),
                image_chart=bar_chart(images, title="Samples containing each class", colour=_colour),
                instances_chart=column_chart([k for k, _ in per_image], [v for _, v in per_image],
                                             title="Samples by number of instances", x_label="instances in a sample"),
                box_size_chart=column_chart(bins, total_sizes, title="Box sizes (all classes)",
                                            x_label="√(box width × height), as a fraction of the image"),
                confidence_chart=(column_chart(bins[:len(stats.confidence)], stats.confidence,
                                               title="Box confidences", x_label="confidence")
                                  if stats.confidence else None),
                class_box_charts=[(c, column_chart(bins, stats.box_sizes[c], title=f"Box sizes: {c}", height=140))
                                  for c in top])


def _dense(histogram: Mapping[int, int], most: int = 40) -> list[tuple[str, int]]:
    """``n → count`` as one column per n from 0, the tail past ``most`` summed into one ``≥most`` column."""
    if not histogram:
        return []
    high = max(histogram)
    out = [(str(n), histogram.get(n, 0)) for n in range(min(high, most - 1) + 1)]
    if high >= most:
        out.append((f"≥{most}", sum(v for n, v in histogram.items() if n >= most)))
    return out


@dataclass(frozen=True)
class _ClassRow:
    name: str
    colour: str
    summary: str


def _class_rows(droplet: ImageAnnotation) -> list[_ClassRow]:
    rows = []
    for name, cls in droplet.classes.items():
        parts = []
        boxes = sum(1 for i in cls.instances if i.bounding_box is not None)
        masks = sum(1 for i in cls.instances if i.segmentation is not None)
        points = sum(1 for i in cls.instances if i.keypoints)
        for n, what in ((len(cls.instances), "instances"), (boxes, "boxes"), (masks, "masks"),
                        (points, "keypoint sets"), (len(cls.multi_instances), "groups")):
            if n:
                parts.append(f"{n} {what}")
        rows.append(_ClassRow(name, _colour(name), ", ".join(parts)))
    return rows


def _neighbours(request: Request, sp: _Split, ordinal: int,
                query: list[tuple[str, str]], flt: SplitFilter | None) -> tuple[str | None, str | None]:
    """Links to the previous and next sample: within the filter's matches when the sample page was reached
    from a filtered grid (``i`` = its index there, checked), else the neighbouring ordinals."""
    index = request.query_params.get("i")
    if flt is not None and index is not None and index.isdigit():
        i = int(index)
        start = max(0, i - 1)
        window = catalog_of(request).filter_split(sp.dataset.uid, sp.split, flt, offset=start, limit=3).ordinals
        at = i - start
        if at < len(window) and window[at] == ordinal:
            def link(position: int) -> str | None:
                if not 0 <= position < len(window):
                    return None
                return with_query(sp.path(window[position]), [*query, ("i", str(start + position))])

            return link(at - 1), link(at + 1)
    prev_link = with_query(sp.path(ordinal - 1), query) if ordinal > 0 else None
    next_link = with_query(sp.path(ordinal + 1), query) if ordinal + 1 < sp.count else None
    return prev_link, next_link


@dataclass(frozen=True)
class _ShardRange:
    """Where a pool member lies as the Hub contract serves it: a shard's ``resolve`` URL and a byte range."""

    url: str
    first: int
    last: int


def _shard_range(request: Request, record: DatasetRecord, droplet: ImageAnnotation) -> _ShardRange | None:
    """The image's bytes as a range of a shard this server serves (pool members have no URL of their own on
    the Hub contract, shards do), or None when the image is not in a served pool."""
    found = viewer_of(request).samples.member(record, droplet)
    if found is None:
        return None
    pool, member = found
    location = record.pools.get(pool)
    served = config_of(request).pools
    if location is None or served_pool_of(location, served) is None:
        return None
    base = public_pool_url(location, served, public_base_url(request))
    if base is None or member.size < 1:
        return None
    return _ShardRange(f"{base}/{quote(member.location.tar_file)}", member.offset, member.end - 1)


@router.get("/{database}/{namespace}/{name}/{ref}/{split}/{ordinal}")
def sample_page(database: str, namespace: str, name: str, ref: str, split: str, ordinal: str, request: Request,
                who: Principal | None = Depends(viewer_reader)) -> Response:
    number = _ordinal(ordinal)
    sp = _split_of(request, who, database, namespace, name, ref, split)
    samples = viewer_of(request).samples
    raw = samples.raw(sp.dataset, split, number)
    problem = None
    try:
        droplet: ImageAnnotation | None = decode_droplet(raw)
    except DropletError as err:
        droplet, problem = None, f"this droplet cannot be read as an ImageAnnotation: {err}"
    try:
        pretty = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = raw.decode("utf-8", "replace")
    params = _filter_params(request)
    flt, _ = _parse_filter(params) if params else (None, None)
    query = flt.to_query() if flt is not None else []
    prev_link, next_link = _neighbours(request, sp, number, query, flt)
    metadata = [(str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                for k, v in ((droplet.metadata or {}) if droplet is not None else {}).items()]
    image = path_of("image", sp.dataset.uid, split, number)
    in_shard = _shard_range(request, sp.dataset, droplet) if droplet is not None else None
    return page(request, "sample.html", who, db=sp.db, dataset=sp.dataset, namespace=namespace, name=name,
                split=split, ordinal=number, droplet_json=pretty, problem=problem,
                classes=_class_rows(droplet) if droplet is not None else [], kinds=KINDS,
                image_url=image, raw_url=image, image_paths=list(droplet.image.paths) if droplet is not None else [],
                metadata=metadata, prev_sample=prev_link, next_sample=next_link, in_shard=in_shard,
                grid_url=with_query(sp.path(), query),
                crumbs=sp.crumbs((split, with_query(sp.path(), query)), (f"#{number}", None)))
