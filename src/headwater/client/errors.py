"""Errors of the client layer.

Lookups that miss raise the catalog's :class:`~headwater.catalog.NotFoundError` (a ``KeyError``)
unchanged; these classes cover what only the client can get wrong.

Example:
    >>> isinstance(RemoteUnavailableError("x"), NotImplementedError)
    True
"""

from __future__ import annotations

from ..errors import HeadwaterError

__all__ = ["ClientError", "RemoteUnavailableError"]


class ClientError(HeadwaterError, ValueError):
    """A client call was given something it cannot use (unknown split, ambiguous name, bad argument)."""


class RemoteUnavailableError(HeadwaterError, NotImplementedError):
    """Remote mode (``Api(url=...)``) needs the HTTP transport that arrives with the server."""
