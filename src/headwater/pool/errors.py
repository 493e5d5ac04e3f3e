"""The cheesechaser exception names (so ``except ResourceNotFoundError`` keeps working) plus ours."""

from __future__ import annotations

from ..errors import HeadwaterError
from ..storage import StoreAuthError

__all__ = [
    "InvalidResourceDataError",
    "ResourceNotFoundError",
    "FileUnrecognizableError",
    "IntegrityError",
    "PoolAuthError",
]


class InvalidResourceDataError(HeadwaterError):
    """A resource's data cannot be used (cheesechaser name)."""


class ResourceNotFoundError(InvalidResourceDataError):
    """No shard of the pool holds the resource (cheesechaser name)."""


class FileUnrecognizableError(HeadwaterError):
    """A member name does not map to a resource id under the pool's layout (cheesechaser name)."""


class IntegrityError(InvalidResourceDataError):
    """Bytes read from a shard do not match the sha256 recorded in its index."""


PoolAuthError = StoreAuthError
"""Credentials were refused (HTTP 401/403): reported as such, never as "not found"."""
