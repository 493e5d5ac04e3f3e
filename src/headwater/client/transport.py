"""The seam between the client objects and where the data is: a :class:`Transport`.

The client API (:mod:`headwater.client.api`) speaks only the datatap wire format — the JSON dicts
the datatap 0.3.0 server returns, plus NDJSON blocks for split streams — through this protocol. The
embedded mode implements it over a local :class:`~headwater.catalog.Catalog`
(:class:`EmbeddedTransport`); the remote mode (issue 4) adds an HTTP transport that returns the same
dicts from the server's responses, and nothing above this seam changes.

Two small extensions of the datatap dataset JSON, ignored by datatap itself:
``"splitCounts": {split: count}`` and ``"pools": {pool name: pool URL}`` (where ``pool://`` image
references of the dataset's droplets point).

Stream blocks are ``bytes`` holding whole NDJSON lines, each ending with ``\\n`` — big blocks,
so a consumer pays per block (one write to the cache, one batch decode), not per droplet.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_database("main")
    >>> ds = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate", "classes": {}},
    ...                  splits={"train": [b'{"n":0}', b'{"n":1}', b'{"n":2}']})
    >>> t = EmbeddedTransport(cat)
    >>> db = t.current_user()["defaultDatabase"]
    >>> list(t.stream_lines(db, "acme", "cats", ds.uid, "train", 1, 2))
    [b'{"n":1}', b'{"n":2}']
"""

from __future__ import annotations

import getpass
import itertools
import os
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from ..catalog import Catalog, database_json, dataset_json, repository_json, user_json
from .sharding import ShardPlan

__all__ = ["Transport", "EmbeddedTransport", "iter_lines", "PAGE_SIZE"]

PAGE_SIZE = 8192
"""Droplets per block read from the catalog (one query and one join per block)."""


def iter_lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The droplets (one JSON document each, without the newline) of a stream of blocks."""
    for block in blocks:
        lines = block.split(b"\n")
        lines.pop()  # a block ends with "\n": the last piece is empty
        yield from lines


@runtime_checkable
class Transport(Protocol):
    """What the client needs from a catalog, in datatap wire JSON (see the module docstring)."""

    def current_user(self) -> dict[str, Any]:
        """``{uid, username, email, defaultDatabase}``."""
        ...

    def databases(self) -> list[dict[str, Any]]:
        """Every visible database: ``[{uid, name, connectionOptions}]``."""
        ...

    def database(self, uid: str) -> dict[str, Any]:
        """One database by uid."""
        ...

    def query_databases(self, name: str) -> list[dict[str, Any]]:
        """Databases with this exact name."""
        ...

    def repositories(self, database: str) -> list[dict[str, Any]]:
        """``[{namespace, name, tags: [...]}]`` of a database (by uid)."""
        ...

    def repository(self, database: str, namespace: str, name: str) -> dict[str, Any]:
        """One repository with its tags."""
        ...

    def dataset(self, database: str, namespace: str, name: str, tag_or_uid: str) -> dict[str, Any]:
        """``{uid, database, repository, template, splits, splitCounts, pools}``."""
        ...

    def split_count(self, database: str, namespace: str, name: str, uid: str, split: str) -> int:
        """How many droplets a split holds."""
        ...

    def stream_blocks(self, database: str, namespace: str, name: str, uid: str, split: str, chunk: int,
                      nchunks: int, *, shuffle_seed: int | None = None, offset: int = 0,
                      truncate: int | None = None) -> Iterator[bytes]:
        """Blocks of whole NDJSON lines of chunk ``chunk`` of ``nchunks`` (see
        :class:`~headwater.client.sharding.ShardPlan` for the order, ``truncate`` and ``offset``)."""
        ...

    def stream_lines(self, database: str, namespace: str, name: str, uid: str, split: str, chunk: int,
                     nchunks: int, *, shuffle_seed: int | None = None, offset: int = 0,
                     truncate: int | None = None) -> Iterator[bytes]:
        """The same pass as :meth:`stream_blocks`, one droplet (no newline) at a time."""
        ...


class EmbeddedTransport:
    """A :class:`Transport` over a local catalog (a path, a URL, or an open :class:`Catalog`).

    There are no users in embedded mode: :meth:`current_user` describes the local account, and its
    ``defaultDatabase`` is ``default_database`` (a name or uid) when given, else the catalog's only
    database, else the one named ``"default"``, else none. Picklable (DataLoader workers get a copy
    that re-opens the same catalog).
    """

    def __init__(self, catalog: Catalog | str | os.PathLike[str], *, default_database: str | None = None,
                 page_size: int = PAGE_SIZE) -> None:
        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
        self.default_database = default_database
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"EmbeddedTransport({self.catalog!r})"

    # -- metadata --------------------------------------------------------------------------------
    def current_user(self) -> dict[str, Any]:
        default: str | None = None
        if self.default_database is not None:
            default = self.catalog.database(self.default_database).uid
        else:
            dbs = self.catalog.databases()
            if len(dbs) == 1:
                default = dbs[0].uid
            else:
                default = next((d.uid for d in dbs if d.name == "default"), None)
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
        return [repository_json(r, self.catalog.tags(database, r.namespace, r.name))
                for r in self.catalog.repositories(database)]

    def repository(self, database: str, namespace: str, name: str) -> dict[str, Any]:
        repo = self.catalog.repository(database, namespace, name)
        return repository_json(repo, self.catalog.tags(database, namespace, name))

    def dataset(self, database: str, namespace: str, name: str, tag_or_uid: str) -> dict[str, Any]:
        return dataset_json(self.catalog.dataset(database, namespace, name, tag_or_uid))

    def split_count(self, database: str, namespace: str, name: str, uid: str, split: str) -> int:
        return self.catalog.split_count(uid, split)

    # -- streams ---------------------------------------------------------------------------------
    def stream_blocks(self, database: str, namespace: str, name: str, uid: str, split: str, chunk: int,
                      nchunks: int, *, shuffle_seed: int | None = None, offset: int = 0,
                      truncate: int | None = None) -> Iterator[bytes]:
        plan = ShardPlan(self.catalog.split_count(uid, split), chunk, nchunks, shuffle_seed=shuffle_seed,
                         salt=f"{uid}/{split}", truncate=truncate)
        if plan.contiguous:
            positions = plan.ordinal_range(offset)
            return self._range_blocks(uid, split, positions.start, positions.stop)
        return self._shuffled_blocks(uid, split, plan, offset)

    def _range_blocks(self, uid: str, split: str, start: int, stop: int) -> Iterator[bytes]:
        page = self.page_size
        rows = self.catalog.read_range(uid, split, start, stop, batch_size=page)
        while True:
            lines = list(itertools.islice(rows, page))
            if not lines:
                return
            lines.append(b"")
            yield b"\n".join(lines)

    def _shuffled_blocks(self, uid: str, split: str, plan: ShardPlan, offset: int) -> Iterator[bytes]:
        for ordinals in plan.ordinal_batches(offset, size=self.page_size):
            rows = self.catalog.read_ordinals(uid, split, ordinals)
            rows.append(b"")
            yield b"\n".join(rows)

    def stream_lines(self, database: str, namespace: str, name: str, uid: str, split: str, chunk: int,
                     nchunks: int, *, shuffle_seed: int | None = None, offset: int = 0,
                     truncate: int | None = None) -> Iterator[bytes]:
        return iter_lines(self.stream_blocks(database, namespace, name, uid, split, chunk, nchunks,
                                             shuffle_seed=shuffle_seed, offset=offset, truncate=truncate))

