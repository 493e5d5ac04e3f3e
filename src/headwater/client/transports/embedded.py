"""The embedded :class:`~headwater.client.transports.Transport`: a local catalog, no server.

Reads go through the catalog layer's own wire builders (:mod:`headwater.catalog.wire`) and pass reader
(:mod:`headwater.catalog.streams`) — the ones ``headwater serve`` uses — so the embedded and remote modes
return the same JSON and the same droplets in the same order. Writes go through the catalog and the
publish layer directly.

The catalog is opened (and SQLAlchemy imported) only when this transport is made, so importing the client
for remote use stays light.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_database("main")
    >>> t = EmbeddedTransport(cat)
    >>> [d["name"] for d in t.databases()], t.current_user()["defaultDatabase"] == cat.database("main").uid
    (['main'], True)
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...catalog import (
    database_json,
    dataset_json,
    repositories_json,
    tag_event_json,
    tag_move_json,
    user_json,
)

if TYPE_CHECKING:
    from ...catalog import Catalog

__all__ = ["EmbeddedTransport"]


class EmbeddedTransport:
    """A transport over a local catalog (a path, a URL, or an open :class:`~headwater.catalog.Catalog`).

    There are no users in embedded mode: :meth:`current_user` describes the local account, and its
    ``defaultDatabase`` is ``default_database`` (a name or uid) when given, else the catalog's only
    database, else the one named ``"default"``, else none. Picklable (DataLoader workers get a copy
    that re-opens the same catalog).
    """

    server_url: str | None = None

    def __init__(self, catalog: Catalog | str | os.PathLike[str], *, default_database: str | None = None,
                 page_size: int | None = None) -> None:
        from ...catalog import PAGE_SIZE, Catalog

        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
        self.default_database = default_database
        self.page_size = page_size or PAGE_SIZE
        url = self.catalog.url
        # an in-memory SQLite catalog is one connection shared by every thread: no reader thread beside the caller
        self.read_ahead = not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))
        """Whether a pass reads this catalog in a thread ahead of the caller (see :mod:`headwater.client.passes`)."""

    def __repr__(self) -> str:
        return f"EmbeddedTransport({self.catalog!r})"

    # -- reads -----------------------------------------------------------------------------------
    def current_user(self) -> dict[str, Any]:
        default: str | None = None
        if self.default_database is not None:
            default = self.catalog.database(self.default_database).uid
        else:
            dbs = self.catalog.databases()
            default = dbs[0].uid if len(dbs) == 1 else next((d.uid for d in dbs if d.name == "default"), None)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            user = "local"
        return user_json("local", user, "", default)

    def databases(self) -> list[dict[str, Any]]:
        return [database_json(d) for d in self.catalog.databases()]

    def database(self, uid: str) -> dict[str, Any]:
        return database_json(self.catalog.database(uid))

    def query_databases(self, name: str) -> list[dict[str, Any]]:
        return [database_json(d) for d in self.catalog.query_databases(name)]

    def repositories(self, database: str) -> list[dict[str, Any]]:
        return repositories_json(self.catalog, database)

    def repository(self, database: str, namespace: str, name: str) -> dict[str, Any]:
        return repositories_json(self.catalog, database, namespace, name)[0]

    def dataset(self, database: str, namespace: str, name: str, tag_or_uid: str) -> dict[str, Any]:
        return dataset_json(self.catalog.dataset(database, namespace, name, tag_or_uid))

    def split_count(self, database: str, namespace: str, name: str, uid: str, split: str) -> int:
        return self.catalog.split_count(uid, split)

    def stream_blocks(self, database: str, namespace: str, name: str, uid: str, split: str, chunk: int,
                      nchunks: int, *, shuffle_seed: int | None = None, offset: int = 0,
                      truncate: int | None = None) -> Iterator[bytes]:
        from ...catalog import pass_blocks, plan_pass

        plan = plan_pass(self.catalog, uid, split, chunk, nchunks, shuffle_seed=shuffle_seed, truncate=truncate)
        return pass_blocks(self.catalog, uid, split, plan, offset=offset, page_size=self.page_size)

    # -- writes ----------------------------------------------------------------------------------
    def publish_source(self, database: str, namespace: str, name: str, source: str | os.PathLike[str] | Any |
                       Sequence[Any], **options: Any) -> dict[str, Any]:
        """:func:`headwater.publish.publish` into this catalog; the new dataset's JSON."""
        from ...publish import publish

        return dataset_json(publish(self.catalog, database, namespace, name, source, **options))

    def move_tag(self, database: str, namespace: str, name: str, tag: str, dataset: str) -> dict[str, Any]:
        return tag_move_json(self.catalog.move_tag(database, namespace, name, tag, dataset))

    def tag_history(self, database: str, namespace: str, name: str, tag: str | None = None) -> list[dict[str, Any]]:
        return [tag_event_json(e) for e in self.catalog.tag_history(database, namespace, name, tag)]
