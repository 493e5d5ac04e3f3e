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

if TYPE_CHECKING:
    from .app import ServerConfig

__all__ = ["catalog_of", "pools_of", "config_of", "dataset_cache_of"]


def catalog_of(request: Request) -> Catalog:
    """The app's open catalog."""
    catalog: Catalog = request.app.state.catalog
    return catalog


def pools_of(request: Request) -> PoolRegistry:
    """The app's served pools (``ServerConfig.pools`` as :class:`~headwater.server.snapshots.HubPool`\\ s)."""
    pools: PoolRegistry = request.app.state.pools
    return pools


def config_of(request: Request) -> ServerConfig:
    """The app's configuration."""
    config: ServerConfig = request.app.state.config
    return config


def dataset_cache_of(request: Request) -> dict[tuple[str, str, str, str], DatasetRecord]:
    """The app's datasets looked up by uid (immutable, so kept): ``(db, ns, name, uid)`` → record."""
    cache: dict[tuple[str, str, str, str], DatasetRecord] = request.app.state.datasets_by_uid
    return cache
