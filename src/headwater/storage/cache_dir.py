"""Where headwater keeps what it fetched once per machine (remote pool manifests, streamed chunks).

``HEADWATER_CACHE`` overrides the location; otherwise ``$XDG_CACHE_HOME/headwater`` or
``~/.cache/headwater``. A cache is data that can be fetched again, hence the XDG *cache* dir (the catalog,
which is not, lives in the data dir: :func:`headwater.catalog.default_catalog_location`).

Example:
    >>> import os
    >>> os.environ["HEADWATER_CACHE"] = "/tmp/hw-cache-doc"
    >>> cache_dir("manifests")
    '/tmp/hw-cache-doc/manifests'
"""

from __future__ import annotations

import os

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> str:
    """The cache folder ``parts`` below the root (created if missing)."""
    base = os.environ.get("HEADWATER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "headwater"
    )
    path = os.path.join(base, *parts)
    os.makedirs(path, exist_ok=True)
    return path
