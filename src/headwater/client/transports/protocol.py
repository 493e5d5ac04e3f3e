"""The :class:`Transport` interface: what the client objects need from a catalog, in datatap wire JSON.

See :mod:`headwater.client.transports` for the backends and the shapes they return.
"""


from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Transport", "Writer"]


@runtime_checkable
class Transport(Protocol):
    """What the client needs from a catalog, in datatap wire JSON (see the module docstring)."""

    server_url: str | None
    """The server's base URL (None: a local catalog). Data from a server is someone else's: see
    :meth:`headwater.client.Dataset.image_fetcher`."""

    read_ahead: bool
    """Whether a pass may read :meth:`stream_blocks` in a thread ahead of the caller's decoding: True where
    the reading rarely needs the GIL (a local catalog hands over a page in one call); False over HTTP,
    where every socket read would wait for the GIL behind the decoder (see :mod:`headwater.client.read_ahead`)."""

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
        :class:`~headwater.catalog.sharding.ShardPlan` for the order, ``truncate`` and ``offset``)."""
        ...


@runtime_checkable
class Writer(Protocol):
    """The writes a transport may also offer (an embedded catalog and a headwater server do; a datatap
    server does not). Each returns the same wire JSON in both modes."""

    def publish_source(self, database: str, namespace: str, name: str,
                       source: str | os.PathLike[str] | Any | Sequence[Any], **options: Any) -> dict[str, Any]:
        """Publish a source (see :func:`headwater.publish.publish`) as a new dataset; its JSON."""
        ...

    def move_tag(self, database: str, namespace: str, name: str, tag: str, dataset: str) -> dict[str, Any]:
        """Point ``tag`` at ``dataset`` (a uid, or another tag): the tag JSON plus ``previous``."""
        ...

    def tag_history(self, database: str, namespace: str, name: str, tag: str | None = None) -> list[dict[str, Any]]:
        """Every move of the repository's tags (or of ``tag``), oldest first:
        ``[{tag, dataset, previous, movedAt}]``."""
        ...
