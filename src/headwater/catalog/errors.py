"""Catalog errors: one root, and classes that also match the builtin a caller would naturally catch.

``NotFoundError`` is a ``KeyError`` (a lookup missed) and ``InvalidNameError`` a ``ValueError`` (bad
input), so generic code keeps working; every message names what is missing or wrong and where.
"""

from __future__ import annotations

from ..errors import UNAVAILABLE, HeadwaterError

__all__ = ["CatalogError", "NotFoundError", "ConflictError", "InvalidNameError", "OutOfRangeError", "ChunkError",
           "FilterError", "CatalogBusyError", "AlreadyPublishedError", "CatalogUnavailableError"]


class CatalogError(HeadwaterError):
    """Anything the catalog refused on purpose."""


class NotFoundError(CatalogError, KeyError):
    """A database, repository, tag, dataset or split does not exist."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else "not found"


class ConflictError(CatalogError):
    """The thing being created already exists (e.g. a database with the same name)."""


class AlreadyPublishedError(ConflictError):
    """A publish's idempotency key was already used by this user: ``dataset_uid`` is the dataset it made, and
    ``same_request`` says whether that publish asked for exactly the same (a retry: answer with that dataset)
    or for something else (a mistake: refuse)."""

    def __init__(self, message: str, *, key: str, dataset_uid: str, same_request: bool) -> None:
        super().__init__(message)
        self.key = key
        self.dataset_uid = dataset_uid
        self.same_request = same_request


class InvalidNameError(CatalogError, ValueError):
    """A database, namespace, repository, tag, split or pool name breaks the naming rules."""


class OutOfRangeError(CatalogError, IndexError):
    """An ordinal or range lies outside ``0..count`` of a split."""


class ChunkError(CatalogError, ValueError):
    """A pass is asked for with impossible arguments (a chunk outside ``[0, nchunks)``, a negative offset …)."""


class FilterError(CatalogError, ValueError):
    """A split filter that cannot be parsed (a bad URL query parameter) or asked for (``min > max``, a negative
    page): the message names the parameter and what it should look like."""


class CatalogBusyError(CatalogError):
    """The catalog stayed locked by another writer for the whole busy timeout (SQLite): try again later."""

    exit_code = UNAVAILABLE


class CatalogUnavailableError(CatalogError):
    """The catalog's database cannot be reached, or dropped the connection mid-request (PostgreSQL restarted,
    network gone); whatever the request was writing was rolled back. Try again shortly."""

    exit_code = UNAVAILABLE
