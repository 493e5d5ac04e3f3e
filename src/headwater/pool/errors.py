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
    "PoolChangedError",
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


class PoolChangedError(InvalidResourceDataError):
    """A file of a pool pinned to a commit is no longer served at that commit: the pool changed since and
    its server keeps only current bytes (``headwater serve`` does). Raised instead of "not found" — the
    file exists, just not in the version this pool reads — and never answered with other bytes."""

    def __init__(self, message: str, *, repo_id: str, revision: str, commit: str, current_commit: str | None,
                 path: str) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.revision = revision
        self.commit = commit
        self.current_commit = current_commit
        self.path = path
