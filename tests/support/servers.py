"""Live headwater servers for tests: a real uvicorn on 127.0.0.1, a free port, a background thread.

Stable API (other test modules rely on it)::

    from .servers import live_server, make_user, bearer

    with live_server(ServerConfig(catalog=path)) as base_url:          # "http://127.0.0.1:PORT"
        httpx.get(base_url + "/api/database", headers=bearer(secret))

    with live_server(config, handle=True) as server:                   # a BackgroundServer
        server.url, server.app.state.catalog

    with live_server(config, public_pools=True, pool_owner="alice"):   # every served pool public, alice's

``make_user(catalog, "alice", permission="write")`` creates a user (if missing) and a key and returns
the secret; ``share_pools(catalog, repos, owner=…, public=…)`` records pools' access settings;
``bearer(secret)`` gives datatap-style headers (base64 of the key), ``bearer(secret,
raw=True)`` Hugging-Face-style headers (the key as it is).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from headwater.catalog import Catalog
from headwater.server.app import ServerConfig
from headwater.server.runner import BackgroundServer

__all__ = ["live_server", "make_user", "bearer", "share_pools", "BackgroundServer"]


@contextmanager
def live_server(config: ServerConfig | Any, *, handle: bool = False, public_pools: bool = False,
                pool_owner: str | None = None) -> Iterator[Any]:
    """Run a server for ``config`` (a :class:`ServerConfig` or a FastAPI app) for the ``with`` block.

    Yields the base URL (``http://127.0.0.1:PORT``), or the :class:`BackgroundServer` when ``handle``.
    ``public_pools`` / ``pool_owner``: record every served pool as public / owned by that user (created if
    missing) before the server starts — a pool without a record is private and takes no uploads.
    """
    server = BackgroundServer(config)
    if public_pools or pool_owner is not None:
        state = server.app.state
        share_pools(state.catalog, list(state.config.pools), owner=pool_owner, public=public_pools)
    server.start()
    try:
        yield server if handle else server.url
    finally:
        server.stop()


def make_user(catalog: Catalog | str, username: str, *, permission: str = "read", email: str = "") -> str:
    """A new API key (its secret) for ``username``, creating the user first if needed."""
    cat = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
    try:
        cat.create_user(username, email=email or f"{username}@example.org", exist_ok=True)
        return cat.create_api_key(username, permission)[1]
    finally:
        if cat is not catalog:
            cat.close()


def bearer(secret: str | None, *, raw: bool = False) -> dict[str, str]:
    """``{"Authorization": "Bearer …"}`` as datatap sends it (base64 of the key) or raw (HF clients)."""
    if secret is None:
        return {}
    token = secret if raw else base64.b64encode(secret.encode("ascii")).decode("ascii")
    return {"Authorization": f"Bearer {token}"}


def share_pools(catalog: Catalog, repos: list[str], *, owner: str | None = None, public: bool = True) -> None:
    """Record ``repos`` as owned by ``owner`` (created if missing; None: no owner) and public or not."""
    if owner is not None:
        catalog.create_user(owner, email=f"{owner}@example.org", exist_ok=True)
    for repo in repos:
        catalog.change_pool_access(repo, owner=owner, public=public)
