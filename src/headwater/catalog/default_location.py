"""Where the catalog lives when nobody says: one rule shared by the CLI and the client.

``$HEADWATER_CATALOG`` (a path or a ``postgresql://`` URL) wins; otherwise the embedded SQLite file
``$XDG_DATA_HOME/headwater/catalog.sqlite`` (``~/.local/share/headwater/catalog.sqlite`` when
``XDG_DATA_HOME`` is unset). A catalog is data a user keeps, not a cache, hence the XDG *data* dir.

Example:
    >>> import os
    >>> os.environ["HEADWATER_CATALOG"] = "/srv/catalog.sqlite"
    >>> default_catalog_location()
    '/srv/catalog.sqlite'
    >>> del os.environ["HEADWATER_CATALOG"]
"""

from __future__ import annotations

import os

__all__ = ["default_catalog_location"]


def default_catalog_location() -> str:
    """``$HEADWATER_CATALOG``, else ``$XDG_DATA_HOME/headwater/catalog.sqlite``."""
    env = os.environ.get("HEADWATER_CATALOG")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "headwater", "catalog.sqlite")
