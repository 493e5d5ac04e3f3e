"""Local cache directory for things fetched once per machine (remote pool manifests).

``HEADWATER_CACHE`` overrides the location; otherwise ``$XDG_CACHE_HOME/headwater`` or
``~/.cache/headwater``.

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
    base = os.environ.get("HEADWATER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "headwater"
    )
    path = os.path.join(base, *parts)
    os.makedirs(path, exist_ok=True)
    return path
