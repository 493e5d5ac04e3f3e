"""Errors of the server layer: what a request named that is not there (answered with the Hub's error codes)
and ``Range`` headers that cannot be served.

Catalog, pool and publish errors raised while answering are mapped to HTTP statuses by the app
(:mod:`headwater.server.app`); these are the server's own.

Example:
    >>> err = RevisionNotFound("revision 'v9' not found in acme/images")
    >>> err.status, err.code
    (404, 'RevisionNotFound')
"""

from __future__ import annotations

from ..errors import HeadwaterError

__all__ = [
    "ServerError",
    "HubError",
    "RepoNotFound",
    "RevisionNotFound",
    "EntryNotFound",
    "UnsafePathError",
    "UnsafeUrlError",
    "RangeNotSatisfiable",
    "MalformedRange",
    "AddressInUseError",
    "ServerConfigError",
    "RenderPoolBusy",
]


class ServerError(HeadwaterError):
    """Anything the server refused on its own account."""


class HubError(ServerError):
    """A request names something a served pool does not have; ``code`` is the Hub's ``X-Error-Code`` (what
    ``huggingface_hub`` maps to its exceptions), ``status`` the HTTP status, ``commit`` the commit the
    answer is about (sent as ``X-Repo-Commit``)."""

    code = "EntryNotFound"
    status = 404

    def __init__(self, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.commit = commit


class RepoNotFound(HubError):
    """No pool is served under that ``owner/name``."""

    code = "RepoNotFound"


class RevisionNotFound(HubError):
    """The revision is neither a branch nor a commit this server recorded."""

    code = "RevisionNotFound"


class EntryNotFound(HubError):
    """The path is not a file (or folder) of the pool at that revision."""

    code = "EntryNotFound"


class UnsafePathError(HubError):
    """A path that is not a plain relative path inside the pool (``..``, absolute, NUL, backslash, ``%``)."""

    code = "BadRequest"
    status = 400


class UnsafeUrlError(ServerError, ValueError):
    """A URL a publisher names (a pool, an image) that readers' clients must not be sent to (400)."""


class RangeNotSatisfiable(ServerError):
    """No byte of the requested range exists (416)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class MalformedRange(ServerError, ValueError):
    """The ``Range`` header cannot be parsed (400)."""


class AddressInUseError(ServerError):
    """The address to serve on cannot be bound (another process listens there)."""


class ServerConfigError(ServerError, ValueError):
    """Server settings that cannot work as given (e.g. a wildcard address without ``--public-url``)."""


class RenderPoolBusy(ServerError):
    """The viewer's render pool has too many thumbnails queued already (answered 503 with ``Retry-After``)."""
