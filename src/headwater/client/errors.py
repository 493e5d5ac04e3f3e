"""Errors of the client layer.

Lookups that miss raise the catalog's :class:`~headwater.catalog.NotFoundError` (a ``KeyError``)
unchanged in embedded mode; in remote mode a 404 raises :class:`RemoteNotFoundError`, a subclass of
it, so code that catches ``NotFoundError`` (or ``KeyError``) works the same in both modes. The other
``Remote*`` classes carry the HTTP ``status`` and the server's ``{"error": …}`` message.

Example:
    >>> from headwater.catalog import NotFoundError
    >>> err = RemoteNotFoundError("dataset 'x' not found", status=404)
    >>> isinstance(err, NotFoundError), isinstance(err, KeyError), str(err)
    (True, True, "dataset 'x' not found")
    >>> isinstance(RemoteUnavailableError("down"), ConnectionError)
    True
"""

from __future__ import annotations

from typing import Any

from ..catalog.errors import NotFoundError
from ..errors import UNAVAILABLE, HeadwaterError

__all__ = [
    "CacheError",
    "ClientError",
    "RemoteAuthError",
    "RemoteError",
    "RemoteNotFoundError",
    "RemoteRequestError",
    "RemoteUnavailableError",
]


class ClientError(HeadwaterError, ValueError):
    """A client call was given something it cannot use (unknown split, ambiguous name, bad argument)."""


class CacheError(ClientError):
    """A stream handed to the stream cache is malformed (e.g. a block not ending at a line boundary), or
    its budget setting is not a number."""


class RemoteError(HeadwaterError):
    """The server refused a request or answered with something that is not the API.

    ``status`` is the HTTP status (None when no response arrived), ``url`` the request URL, ``body`` the
    decoded JSON error body (``{"error": …, …}``) when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None,
                 body: Any = None, headers: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.body = body
        self.headers = headers or {}

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "remote error"

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable (DataLoader workers) with every field, ``problems``/``total`` of a refused publish too."""
        extra = {k: v for k, v in vars(self).items() if k not in ("status", "url", "body", "headers")}
        return (_rebuild, (type(self), str(self), self.status, self.url, self.body, dict(self.headers), extra))


def _rebuild(cls: type[RemoteError], message: str, status: int | None, url: str | None, body: Any,
             headers: Any = None, extra: dict[str, Any] | None = None) -> RemoteError:
    error = cls(message, status=status, url=url, body=body, headers=headers)
    vars(error).update(extra or {})
    return error


class RemoteNotFoundError(RemoteError, NotFoundError):
    """404: the database, repository, tag, dataset or split does not exist (or is not visible to this key)."""


class RemoteAuthError(RemoteError, PermissionError):
    """401 (no key, or an invalid/revoked key) or 403 (the key may not do this, e.g. a read-only key)."""

    exit_code = UNAVAILABLE


class RemoteRequestError(RemoteError, ClientError):
    """4xx other than 401/403/404: the request was malformed or refused (400, 409, 413, 416, 422…).

    A refused publish also carries the server's ``problems`` (``[(where, message)]``) and their ``total``.
    """

    problems: list[tuple[str, str]]  # set on a refused publish only
    total: int


class RemoteUnavailableError(RemoteError, ConnectionError):
    """The server could not be reached, or kept failing (connection errors, 429, 5xx) after every retry."""

    exit_code = UNAVAILABLE
