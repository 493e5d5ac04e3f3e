"""Who may read and write each served pool, known in memory and refreshed every few seconds.

A pool's access follows its catalog record (owner, public flag, grants; :mod:`headwater.catalog.pool_access`)
and the databases whose datasets use it (a dataset's pool locations inside the pool's root), so that the
images of a private database are as private as the database. Finding those databases reads every
dataset's pool map, so the answer is kept for :data:`REFRESH_SECONDS` per process: a change of owner, a
grant or a newly published dataset is seen by every server process within that time (a revoked *key* is
refused at once: keys are checked on every request).

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "c.sqlite"))
    >>> readers = PoolReaders(cat, {"acme/px": "/srv/px"})
    >>> readers.get("acme/px").access.public, readers.get("acme/px").databases
    (False, set())
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..catalog import Catalog, DatabaseRecord, PoolAccess
from .public_urls import served_pool_of

__all__ = ["REFRESH_SECONDS", "PoolReaders", "PoolRights"]

REFRESH_SECONDS = 2.0
"""How long this process trusts what it last read about pool access."""


@dataclass(frozen=True)
class PoolRights:
    """What decides who may use one pool: its access record and the databases that use it."""

    access: PoolAccess
    databases: set[str] = field(default_factory=set)  # uids of databases whose datasets use the pool


class PoolReaders:
    """The :class:`PoolRights` of every served pool (see the module docstring)."""

    def __init__(self, catalog: Catalog, served: Mapping[str, str], *,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.catalog = catalog
        self.served = dict(served)
        self.refresh_seconds = refresh_seconds
        self._rights: dict[str, PoolRights] = {}
        self._databases: dict[str, DatabaseRecord] = {}
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    @property
    def fresh(self) -> bool:
        """True when :meth:`get` needs no catalog read now (an async route may then call it on the event loop)."""
        return time.monotonic() - self._loaded < self.refresh_seconds

    def get(self, repo_id: str) -> PoolRights:
        """The rights of pool ``repo_id`` (reads the catalog when what is known is stale)."""
        if not self.fresh:
            self._load()
        return self._rights.get(repo_id) or PoolRights(PoolAccess(repo_id))

    def database(self, uid: str) -> DatabaseRecord | None:
        """A database as last read (for deciding whether a caller may read it)."""
        if not self.fresh:
            self._load()
        return self._databases.get(uid)

    def invalidate(self) -> None:
        """Read the catalog again at the next :meth:`get` (after a change made through this process)."""
        self._loaded = float("-inf")

    def _load(self) -> None:
        with self._lock:
            if self.fresh:
                return
            accesses = {a.repo_id: a for a in self.catalog.pool_accesses()}
            users: dict[str, set[str]] = {repo: set() for repo in self.served}
            for db_uid, locations in self.catalog.dataset_pool_locations():
                for location in locations:
                    found = served_pool_of(location, self.served)
                    if found is not None:
                        users[found[0]].add(db_uid)
            self._rights = {repo: PoolRights(accesses.get(repo) or PoolAccess(repo), users[repo])
                            for repo in self.served}
            self._databases = {db.uid: db for db in self.catalog.databases()}
            self._loaded = time.monotonic()
