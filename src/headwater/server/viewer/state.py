"""What the viewer owns per app: the session signer, the render pool, the thumbnail LRU, the sample reader,
and datasets looked up by uid (immutable, so kept).

Made by :func:`headwater.server.app.create_app` from its :class:`~headwater.server.app.ServerConfig`
(``thumbnail_workers``, ``thumbnail_cache_bytes``, ``session_secret_file``, ``session_max_age``) and reached
by the viewer's routes through :func:`viewer_of`; closed with the app.

Example:
    >>> import os, tempfile
    >>> from headwater.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "c.sqlite"),
    ...                               thumbnail_cache_bytes=1 << 20, thumbnail_workers=2))
    >>> viewer = app.state.viewer
    >>> viewer.thumbnails.budget, viewer.render_pool.workers
    (1048576, 2)
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, cast

from fastapi import Request

from ...catalog import Catalog, DatasetRecord
from .samples import Samples
from .sessions import SessionSigner, default_session_secret_file, load_session_secret
from .thumbnails import RenderPool, ThumbnailCache

if TYPE_CHECKING:
    from ..app import ServerConfig

__all__ = ["ViewerState", "viewer_of", "MAX_DATASETS"]

MAX_DATASETS = 4096
"""Datasets kept by uid (then the memory is emptied and refilled)."""


class ViewerState:
    """The viewer's parts of one app (see the module docstring)."""

    def __init__(self, config: ServerConfig, catalog: Catalog) -> None:
        self.session_secret_file = config.session_secret_file or default_session_secret_file(config.catalog)
        self.session_max_age = config.session_max_age
        self._signer: SessionSigner | None = None
        self.render_pool = RenderPool(config.thumbnail_workers or os.cpu_count() or 1)
        self.thumbnails = ThumbnailCache(config.thumbnail_cache_bytes)
        self.samples = Samples(catalog, allowed_schemes=config.pool_url_schemes)
        self.catalog = catalog
        self._datasets: dict[str, DatasetRecord] = {}
        self._lock = threading.Lock()

    @property
    def signer(self) -> SessionSigner:
        """The session signer; its secret file is read (or made) at first use, so an app that never sees a
        sign-in writes nothing (``headwater serve`` reads it before starting, to name a bad file at once)."""
        if self._signer is None:
            with self._lock:
                if self._signer is None:
                    secret = load_session_secret(self.session_secret_file)
                    self._signer = SessionSigner(secret, max_age=self.session_max_age)
        return self._signer

    def dataset(self, uid: str) -> DatasetRecord:
        """The dataset with this uid (NotFoundError if there is none); remembered."""
        found = self._datasets.get(uid)
        if found is None:
            found = self.catalog.dataset_by_uid(uid)
            with self._lock:
                if len(self._datasets) >= MAX_DATASETS:
                    self._datasets.clear()
                self._datasets[uid] = found
        return found

    def known_dataset(self, uid: str) -> DatasetRecord | None:
        """The dataset if it is already remembered (no catalog read: safe on the event loop)."""
        return self._datasets.get(uid)

    def close(self) -> None:
        """Stop the render workers."""
        self.render_pool.close()


def viewer_of(request: Request) -> ViewerState:
    """The app's :class:`ViewerState`."""
    return cast("ViewerState", request.app.state.viewer)
