"""What catalog queries return: small frozen records, detached from any database session.

``database`` fields hold the database *uid* (what the datatap wire format calls ``database``);
``database_name`` carries its human name alongside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["DatabaseRecord", "RepositoryRecord", "TagRecord", "TagEvent", "DatasetRecord", "to_ms"]


def to_ms(when: datetime) -> int:
    """Milliseconds since the Unix epoch (the wire's ``updatedAt``) of an aware datetime."""
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class DatabaseRecord:
    """A named top-level container of repositories.

    ``owner`` is the owning user's uid (None: no owner); ``public`` databases are readable by everyone
    (anonymously too, when the server allows anonymous reads).
    """

    uid: str
    name: str
    public: bool
    created_at: datetime
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class RepositoryRecord:
    """``namespace/name`` inside one database."""

    database: str
    namespace: str
    name: str
    database_name: str = ""

    @property
    def slug(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class TagRecord:
    """A movable pointer from a tag name to a dataset, with the dataset's split counts.

    ``previous`` is set on the record :meth:`Catalog.move_tag <headwater.catalog.Catalog.move_tag>` returns:
    the dataset the tag pointed at before the call (None for a new tag); listed tags leave it None.
    """

    tag: str
    dataset: str
    updated_at_ms: int
    splits: dict[str, int]
    updated_at: datetime
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class TagEvent:
    """One move of a tag (``previous`` is None when the tag was created)."""

    tag: str
    dataset: str
    previous: str | None
    moved_at: datetime

    @property
    def moved_at_ms(self) -> int:
        """``moved_at`` in milliseconds since the Unix epoch."""
        return to_ms(self.moved_at)


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """An immutable published dataset: template, splits with droplet counts, pool name → URL."""

    uid: str
    database: str
    namespace: str
    name: str
    template: dict[str, Any]
    splits: dict[str, int]
    pools: dict[str, str]
    created_at: datetime
    database_name: str = field(default="")

    @property
    def slug(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"
