"""A pool over any store URL, with the layout given as data.

Example:
    >>> import os, tempfile
    >>> from headwater.archive import pack_directory
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = open(os.path.join(src, "1234.png"), "wb").write(b"png")
    >>> _ = pack_directory(src, dst, layout="increment-id", silent=True)
    >>> pool = StorePool(dst, layout="increment-id")
    >>> [loc.tar_file for loc in pool._request_resource_by_id(1234)]
    ['images/0234.tar']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..storage import Store, open_store
from .indexed import IndexedPool
from .layouts import Layout, layout_from_name
from .planner import PlanPolicy

__all__ = ["StorePool", "open_pool"]


class StorePool(IndexedPool):
    """``StorePool("s3://bucket/pool", layout="increment-id")`` — any fsspec URL, any layout."""

    def __init__(
        self,
        url: str | Store,
        *,
        layout: str | Layout = "scan",
        base_level: int | Sequence[int] = 3,
        base_dir: str = "images",
        index_url: str | Store | None = None,
        plan: PlanPolicy | None = None,
        **store_kwargs: Any,
    ) -> None:
        store = url if isinstance(url, Store) else open_store(url, **store_kwargs)
        if isinstance(layout, str):
            layout = layout_from_name(layout, base_level=base_level, base_dir=base_dir)
        super().__init__(store, index_url, layout=layout, plan=plan)


def open_pool(url: str, **kwargs: Any) -> StorePool:
    """Open a pool from a URL (see :class:`StorePool`)."""
    return StorePool(url, **kwargs)
