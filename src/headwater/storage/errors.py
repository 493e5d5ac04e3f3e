"""Storage errors, classified so that callers can tell "absent" from "refused" from "flaky".

:func:`~headwater.storage.retry.classify` sorts what a backend raised into these kinds; the HTTP range
reader raises :class:`HttpStatusError`, :class:`ShortReadError` and :class:`MalformedMultipart` itself so
that the same classification applies to it.

Example:
    >>> err = HttpStatusError("http://x/a.tar", 503, "Service Unavailable", {"Retry-After": "2"})
    >>> str(err), err.status, isinstance(err, StorageError)
    ('503 Service Unavailable: http://x/a.tar', 503, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import Message

from ..errors import UNAVAILABLE, HeadwaterError

__all__ = [
    "StorageError",
    "StoreNotFoundError",
    "StoreAuthError",
    "StoreUnavailableError",
    "ReadOnlyStoreError",
    "ShortReadError",
    "HttpStatusError",
    "MalformedMultipart",
]


class StorageError(HeadwaterError, OSError):
    """A store could not complete an operation."""


class StoreNotFoundError(StorageError, FileNotFoundError):
    """The path does not exist in the store (HTTP 404, missing file or object)."""


class StoreAuthError(StorageError, PermissionError):
    """The store refused the credentials (HTTP 401/403, S3 AccessDenied): retrying will not help."""

    exit_code = UNAVAILABLE


class StoreUnavailableError(StorageError):
    """Transient failures (429, 5xx, resets, time-outs) persisted past every retry."""

    exit_code = UNAVAILABLE


class ReadOnlyStoreError(StorageError):
    """The store's protocol cannot write (plain HTTP)."""


class ShortReadError(StorageError, ConnectionError):
    """A range read returned fewer bytes than asked for (a cut connection); retried like a reset."""


class HttpStatusError(StorageError):
    """An HTTP error status; ``status`` and ``headers`` let the retry policy classify it (401/403: auth,
    429/5xx: retried, honouring ``Retry-After``)."""

    def __init__(self, url: str, status: int, reason: str, headers: Mapping[str, str] | Message) -> None:
        super().__init__(f"{status} {reason}: {url}")
        self.status = status
        self.headers = headers  # http.client's HTTPMessage: case-insensitive get('Retry-After')


class MalformedMultipart(StorageError, ConnectionError):
    """A multipart/byteranges body that cannot be split (a cut or garbled answer): retried like a reset."""
