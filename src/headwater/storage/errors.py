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
    "TruncatedFileError",
    "DiskFullError",
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


class TruncatedFileError(StorageError):
    """The file itself ends before the range asked for: a local file shorter than that, or a server whose
    ``Content-Range`` (or 416) names a size below the range's end. Not a failure on the way there, so it is
    not retried — reading again gives the same bytes. ``data`` holds the bytes that exist from ``start``
    (callers deliver what lies wholly inside them); ``size`` is the file's length when known."""

    def __init__(self, what: str, start: int, end: int, data: bytes, size: int | None = None) -> None:
        ends = f"ends at byte {size}" if size is not None else "is shorter than that"
        super().__init__(f"{what} {ends}: asked bytes [{start}:{end}), got {len(data)} of {end - start} "
                         "(the file is truncated or was replaced)")
        self.what, self.start, self.end, self.data, self.size = what, start, end, data, size

    def __reduce__(self) -> tuple[type, tuple[str, int, int, bytes, int | None]]:
        return (type(self), (self.what, self.start, self.end, self.data, self.size))


class DiskFullError(StorageError):
    """A local write hit a full disk, a quota or a file-size limit (ENOSPC, EDQUOT, EFBIG): the command
    stops, since every further write would fail too. The message names the file; it was being written
    under a temp name, which is removed, so no partial file is left under its final name."""

    exit_code = UNAVAILABLE

    def __init__(self, path: str, cause: OSError) -> None:
        super().__init__(f"cannot write {path}: {cause.strerror or cause}; free space (or lift the limit) and "
                         "run again: files already complete are kept")
        self.path = path
        self.cause = cause
        self.errno = cause.errno

    def __reduce__(self) -> tuple[type, tuple[str, OSError]]:
        return (type(self), (self.path, self.cause))


class HttpStatusError(StorageError):
    """An HTTP error status; ``status`` and ``headers`` let the retry policy classify it (401/403: auth,
    429/5xx: retried, honouring ``Retry-After``)."""

    def __init__(self, url: str, status: int, reason: str, headers: Mapping[str, str] | Message) -> None:
        super().__init__(f"{status} {reason}: {url}")
        self.status = status
        self.headers = headers  # http.client's HTTPMessage: case-insensitive get('Retry-After')


class MalformedMultipart(StorageError, ConnectionError):
    """A multipart/byteranges body that cannot be split (a cut or garbled answer): retried like a reset."""
