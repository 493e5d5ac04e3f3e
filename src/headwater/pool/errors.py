"""Errors of the pool layer: the cheesechaser exception names (so ``except ResourceNotFoundError`` keeps
working), plus what cheesechaser has no name for.

Example:
    >>> issubclass(ResourceNotFoundError, InvalidResourceDataError), issubclass(PoolNotFoundError, FileNotFoundError)
    (True, True)
"""

from __future__ import annotations

from ..archive.errors import TruncatedTarError
from ..errors import HeadwaterError
from ..storage import StoreAuthError, StoreNotFoundError

__all__ = [
    "PoolError",
    "InvalidResourceDataError",
    "ResourceNotFoundError",
    "FileUnrecognizableError",
    "IntegrityError",
    "TruncatedMemberError",
    "PoolAuthError",
    "PoolChangedError",
    "PoolNotFoundError",
    "LayoutError",
    "UnpinnedWarning",
]


class PoolError(HeadwaterError):
    """Anything the pool layer refused."""


class InvalidResourceDataError(PoolError):
    """A resource's data cannot be used (cheesechaser name)."""


class ResourceNotFoundError(InvalidResourceDataError):
    """No shard of the pool holds the resource (cheesechaser name)."""


class FileUnrecognizableError(PoolError):
    """A member name does not map to a resource id under the pool's layout (cheesechaser name)."""


class IntegrityError(InvalidResourceDataError):
    """Bytes read from a shard do not match the sha256 recorded in its index."""


class TruncatedMemberError(InvalidResourceDataError, TruncatedTarError):
    """The shard ends inside the member (truncated, or replaced by a shorter file): its bytes are not all
    there. A damaged shard, not a flaky store, so it is reported at once, never retried; the members of
    the same shard that are whole are still delivered. Also a :class:`TruncatedTarError` (``offset``: where
    the member's data starts), the archive layer's name for the same damage."""


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


class PoolNotFoundError(PoolError, StoreNotFoundError):
    """The pool itself does not exist: no such folder or bucket prefix, no such Hub repo or revision.

    Raised instead of reporting every id as missing, so a typo in a pool's name is named as such."""


class LayoutError(PoolError, ValueError):
    """A layout cannot be built as asked (unknown name, a table without the needed columns …)."""


class UnpinnedWarning(UserWarning):
    """A Hub pool is read at a moving revision because its server named no commit (a static mirror of
    ``resolve/`` paths without the Hub API): ``data_commit`` is None and a change mid-read may mix versions."""
