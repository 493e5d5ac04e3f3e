"""What the app owns and hands to its routers: the open catalog, the served pools, the configuration.

Why one place: every router needs some of these for every request, and they belong to the app (made once
by :func:`~headwater.server.app.create_app`, closed with it), not to a router module — so no router
imports another to reach them, and two apps in one process never share state.

Example:
    >>> import os, tempfile
    >>> from starlette.testclient import TestClient
    >>> from headwater.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "c.sqlite"), pools={"acme/px": "/srv"}))
    >>> [p.repo_id for p in app.state.pools]
    ['acme/px']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from ..catalog import Catalog, DatasetRecord
from .snapshots import PoolRegistry

if TYPE_CHECKING:  # annotations only: both modules import this one
    from .app import ServerConfig
    from .pool_readers import PoolReaders
    from .spool import Spool

__all__ = ["catalog_of", "pools_of", "pool_readers_of", "config_of", "dataset_cache_of", "dataset_of", "spool_of"]


def catalog_of(request: Request) -> Catalog:
    """The app's open catalog."""
    catalog: Catalog = request.app.state.catalog
    return catalog


def pools_of(request: Request) -> PoolRegistry:
    """The app's served pools (``ServerConfig.pools`` as :class:`~headwater.server.snapshots.HubPool`\\ s)."""
    pools: PoolRegistry = request.app.state.pools
    return pools


def pool_readers_of(request: Request) -> PoolReaders:
    """Who may read and write each of the app's pools (:class:`~headwater.server.pool_readers.PoolReaders`)."""
    readers: PoolReaders = request.app.state.pool_readers
    return readers


def config_of(request: Request) -> ServerConfig:
    """The app's configuration."""
    config: ServerConfig = request.app.state.config
    return config


def dataset_cache_of(request: Request) -> dict[tuple[str, str, str, str], DatasetRecord]:
    """The app's datasets looked up by uid (immutable, so kept): ``(db, ns, name, uid)`` → record."""
    cache: dict[tuple[str, str, str, str], DatasetRecord] = request.app.state.datasets_by_uid
    return cache


def dataset_of(request: Request, db_uid: str, namespace: str, name: str, ref: str) -> DatasetRecord:
    """The dataset ``ref`` (uid or tag) of a repository; lookups by uid are remembered per app, because a
    published dataset never changes (a tag may move, so tags are looked up every time)."""
    cache = dataset_cache_of(request)
    key = (db_uid, namespace, name, ref)
    found = cache.get(key)
    if found is None:
        found = catalog_of(request).dataset(db_uid, namespace, name, ref)
        if found.uid == ref:
            if len(cache) >= 4096:
                cache.clear()
            cache[key] = found
    return found


def spool_of(request: Request) -> Spool:
    """Where the app receives request bodies before using them (:class:`~headwater.server.spool.Spool`)."""
    spool: Spool = request.app.state.spool
    return spool
