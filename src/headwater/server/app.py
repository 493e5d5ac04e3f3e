"""The ASGI app factory: one :class:`ServerConfig` in, a FastAPI app out (no globals, no state outside it).

The app owns what its routers share — the open :class:`~headwater.catalog.Catalog`, the served pools
(:class:`~headwater.server.snapshots.PoolRegistry`), the configuration — and hands it to them through
:mod:`headwater.server.state`. Routers live in :mod:`headwater.server.routes`, one module per contract.
Every error leaves as ``{"error": message}`` with a 4xx/5xx status — the datatap client reads that key.
Double slashes in paths are collapsed before routing (datatap sends ``/api//database``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from ..catalog import (
    Catalog,
    CatalogBusyError,
    CatalogError,
    CatalogUnavailableError,
    ChunkError,
    ConflictError,
    InvalidNameError,
    NotFoundError,
    OutOfRangeError,
)
from .bodies import BodyLimits
from .errors import ServerConfigError
from .limits import BodyTimeout, Limits
from .pool_readers import PoolReaders
from .rate_limits import RateLimit, RateLimits
from .routes import ROUTERS
from .snapshots import PoolRegistry
from .spool import Spool, default_spool_dir, remove_stale_uploads
from .viewer.headers import ViewerHeaders
from .viewer.state import ViewerState

__all__ = ["ServerConfig", "create_app"]

_SLASHES = re.compile(r"/{2,}")


@dataclass(frozen=True)
class ServerConfig:
    """What one server process serves.

    ``catalog``: a SQLite path or a ``postgresql://`` URL. ``pools``: Hub-style repo id
    (``owner/repo``) → pool URL (a local dir, ``s3://…``, ``http(s)://…``). ``max_upload_bytes``: the
    largest request body a write may send. ``anonymous_read``: serve public databases and pools without
    a key.

    What is exposed and to whom: ``public_url`` is the URL clients reach the server at (used in the pool
    URLs and ``Link`` headers the server writes; never taken from a request's ``Host``). ``docs`` serves
    ``/docs`` and ``/openapi.json`` (None: only when anonymous reads are on). ``pool_url_schemes``: the
    schemes a publisher may name a dataset's pool with, besides the pools this server serves (a reader's
    client opens them). ``max_droplet_bytes`` caps one droplet of a published body, ``max_shard_members``
    the members of one uploaded shard. ``spool_dir`` is where publish bodies wait to be validated (default:
    ``.headwater-spool`` beside a SQLite catalog, else in the temp dir; emptied on start),
    ``spool_budget_bytes`` the disk they may take together. ``rate_limit``: requests per API key and per
    anonymous client address, as ``"50/s,burst=100"`` (:class:`~headwater.server.rate_limits.RateLimit`;
    None or ``"off"``: no limit, the default of the factory — ``headwater serve`` turns one on when it
    listens beyond loopback; :mod:`headwater.server.rate_limits`). ``catalog_busy_timeout``: seconds a write
    waits for a SQLite catalog's write lock (another process publishing) before it is answered 503 with
    ``Retry-After``.

    The viewer (:mod:`headwater.server.viewer`): ``thumbnail_workers`` render thumbnails at once per process
    (0: one per CPU), ``thumbnail_cache_bytes`` of rendered thumbnails are kept per process (LRU);
    ``session_secret_file`` holds the key that signs sign-in cookies (default: beside a SQLite catalog, else
    in the user's config folder; created once), ``session_max_age`` is a session's life in seconds.

    Connection limits (:mod:`headwater.server.limits` says what each bounds and why these defaults; all
    per server process): ``timeout_header`` (10 s to send a request head), ``timeout_keep_alive`` (5 s
    idle between requests), ``timeout_body`` (60 s pause inside a request body → 408), ``timeout_send``
    (60 s without the client reading any of a response → connection cut), ``limit_concurrency`` (1024
    connections open or requests running, then 503), ``max_header_size`` (16 KiB request head, then 431).
    :attr:`limits` gives them as one :class:`~headwater.server.limits.Limits` (and checks them).
    """

    catalog: str
    pools: dict[str, str] = field(default_factory=dict)
    max_upload_bytes: int = 2 << 30
    anonymous_read: bool = True
    public_url: str | None = None
    docs: bool | None = None
    pool_url_schemes: tuple[str, ...] = ("https", "s3")
    max_droplet_bytes: int = 4 << 20
    max_shard_members: int = 200_000
    spool_dir: str | None = None
    spool_budget_bytes: int = 8 << 30

    # -- connection limits: flat fields (the config travels to worker processes as JSON), see `limits` ----
    timeout_header: float = Limits.timeout_header
    timeout_keep_alive: float = Limits.timeout_keep_alive
    timeout_body: float = Limits.timeout_body
    timeout_send: float = Limits.timeout_send
    limit_concurrency: int = Limits.limit_concurrency
    max_header_size: int = Limits.max_header_size
    rate_limit: str | None = None
    catalog_busy_timeout: float = 60.0

    # -- the viewer (/view/): headwater.server.viewer ----------------------------------------------
    thumbnail_workers: int = 0
    thumbnail_cache_bytes: int = 256 << 20
    session_secret_file: str | None = None
    session_max_age: int = 7 * 24 * 3600

    def __post_init__(self) -> None:
        # a config read back from JSON has lists where tuples were
        object.__setattr__(self, "pool_url_schemes", tuple(s.lower() for s in self.pool_url_schemes))
        if self.public_url is not None:
            url = urlsplit(self.public_url)
            if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
                raise ServerConfigError(f"public URL {self.public_url!r} must be http(s)://HOST[:PORT][/PATH]")
            object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        if self.thumbnail_workers < 0 or self.thumbnail_cache_bytes < 0:
            raise ServerConfigError("thumbnail_workers and thumbnail_cache_bytes must be >= 0, got "
                                    f"{self.thumbnail_workers} and {self.thumbnail_cache_bytes}")
        if not self.catalog_busy_timeout > 0:
            raise ServerConfigError(f"catalog_busy_timeout must be > 0 seconds, got {self.catalog_busy_timeout}")
        for name in ("max_upload_bytes", "max_droplet_bytes", "max_shard_members", "spool_budget_bytes",
                     "session_max_age"):
            if getattr(self, name) < 1:
                raise ServerConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        try:
            _ = self.limits
        except ValueError as err:
            raise ServerConfigError(str(err)) from None
        if self.rate_limit is not None:
            RateLimit.parse(self.rate_limit)  # ServerConfigError naming what is wrong

    @property
    def limits(self) -> Limits:
        """The connection limits as one object (raises ValueError if one is not positive)."""
        return Limits(timeout_header=self.timeout_header, timeout_keep_alive=self.timeout_keep_alive,
                      timeout_body=self.timeout_body, timeout_send=self.timeout_send,
                      limit_concurrency=self.limit_concurrency, max_header_size=self.max_header_size)


class _CollapseSlashes:
    """``/api//database`` → ``/api/database`` before routing (datatap joins ``/api/`` + ``/database``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
            scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(config: ServerConfig) -> FastAPI:
    """Build the app for ``config`` (opens the catalog, applying migrations)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.viewer.close()
        app.state.catalog.close()

    docs = config.anonymous_read if config.docs is None else config.docs
    app = FastAPI(title="headwater", description="datatap-compatible dataset API and Hub-compatible pool serving",
                  version="0.1.0", lifespan=lifespan, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None)
    app.state.config = config
    app.state.catalog = Catalog(config.catalog, busy_timeout_ms=max(1, round(config.catalog_busy_timeout * 1000)))
    app.state.pools = PoolRegistry(config.pools)
    app.state.pool_readers = PoolReaders(app.state.catalog, config.pools)
    app.state.spool = Spool(config.spool_dir or default_spool_dir(config.catalog), config.spool_budget_bytes)
    app.state.spool.clear_stale()  # bodies of server processes killed mid-request
    remove_stale_uploads(config.pools)
    app.state.datasets_by_uid = {}
    app.state.viewer = ViewerState(config, app.state.catalog)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))  # e.g. WWW-Authenticate

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"bad request: {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, str(exc.args[0]) if exc.args else "not found")

    @app.exception_handler(InvalidNameError)
    async def _bad_name(_: Request, exc: InvalidNameError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(ChunkError)
    async def _bad_chunk(_: Request, exc: ChunkError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(CatalogBusyError)
    async def _busy(_: Request, exc: CatalogBusyError) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(CatalogUnavailableError)
    async def _unavailable(_: Request, exc: CatalogUnavailableError) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": "2"})  # e.g. PostgreSQL restarting: back in seconds

    @app.exception_handler(OutOfRangeError)
    async def _out_of_range(_: Request, exc: OutOfRangeError) -> JSONResponse:
        return _error(416, str(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(CatalogError)
    async def _catalog_error(_: Request, exc: CatalogError) -> JSONResponse:
        return _error(500, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_: Request, exc: ClientDisconnect) -> JSONResponse:  # nobody reads it; no traceback
        return _error(400, "the client disconnected before its request body ended; the request was not carried out")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # a bug: still JSON (uvicorn logs it)
        return _error(500, f"internal server error ({type(exc).__name__})")

    @app.get("/healthz", include_in_schema=False)
    async def _health() -> dict[str, bool]:
        return {"ok": True}

    for router in ROUTERS.values():
        app.include_router(router)
    app.add_middleware(ViewerHeaders)  # security headers on every /view/ response, errors too
    app.add_middleware(BodyLimits, upload_limit=config.max_upload_bytes)
    app.add_middleware(_CollapseSlashes)  # every later layer sees /api/x for /api//x
    app.add_middleware(BodyTimeout, timeout_body=config.limits.timeout_body)  # every route
    limit = RateLimit.parse(config.rate_limit) if config.rate_limit is not None else None
    app.add_middleware(RateLimits, limit=limit)  # outermost of ours: a refused request costs nothing else
    return app

