"""The server's routers, one module per contract: mounted by :func:`~headwater.server.app.create_app`.

* :mod:`.datatap` — the datatap 0.3.0 read API under ``/api/`` (databases, repositories, datasets, streams);
* :mod:`.dataset_writes` — publish a dataset, move tags, tag history;
* :mod:`.hub` — pools as Hugging Face dataset repos (``resolve`` with ``Range``, repo info, tree, paths-info);
* :mod:`.pool_uploads` — shards uploaded into served pools;
* :mod:`.viewer` — the web viewer under ``/view/`` (HTML pages, thumbnails, sign-in).

Each reads what it needs from the app (:mod:`headwater.server.state`); none imports another.

Example:
    >>> sorted(ROUTERS)
    ['dataset_writes', 'datatap', 'hub', 'pool_uploads', 'viewer']
"""

from __future__ import annotations

from fastapi import APIRouter

from . import dataset_writes, datatap, hub, pool_uploads, viewer

__all__ = ["ROUTERS"]

ROUTERS: dict[str, APIRouter] = {
    "datatap": datatap.router,
    "dataset_writes": dataset_writes.router,
    "hub": hub.router,
    "pool_uploads": pool_uploads.router,
    "viewer": viewer.router,
}
"""Every router of the app, by module name (mounted in this order)."""
