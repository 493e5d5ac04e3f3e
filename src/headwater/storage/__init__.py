"""Layer 1: where bytes live (local, HTTP, S3, Hugging Face) behind one small interface."""

from .atomic import atomic_path, is_temp_name, write_bytes_atomic
from .errors import ReadOnlyStoreError, StorageError, StoreAuthError, StoreNotFoundError, StoreUnavailableError
from .retry import RetryPolicy, classify
from .store import ShortReadError, Store, StoreStats, open_store

__all__ = [
    "atomic_path",
    "is_temp_name",
    "write_bytes_atomic",
    "Store",
    "StoreStats",
    "open_store",
    "RetryPolicy",
    "classify",
    "StorageError",
    "StoreNotFoundError",
    "StoreAuthError",
    "StoreUnavailableError",
    "ReadOnlyStoreError",
    "ShortReadError",
]
