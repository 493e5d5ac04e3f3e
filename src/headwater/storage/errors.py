"""Storage errors, classified so that callers can tell "absent" from "refused" from "flaky"."""

from __future__ import annotations

from ..errors import HeadwaterError

__all__ = ["StorageError", "StoreNotFoundError", "StoreAuthError", "StoreUnavailableError", "ReadOnlyStoreError"]


class StorageError(HeadwaterError, OSError):
    """A store could not complete an operation."""


class StoreNotFoundError(StorageError, FileNotFoundError):
    """The path does not exist in the store (HTTP 404, missing file or object)."""


class StoreAuthError(StorageError, PermissionError):
    """The store refused the credentials (HTTP 401/403, S3 AccessDenied): retrying will not help."""


class StoreUnavailableError(StorageError):
    """Transient failures (429, 5xx, resets, time-outs) persisted past every retry."""


class ReadOnlyStoreError(StorageError):
    """The store's protocol cannot write (plain HTTP)."""
