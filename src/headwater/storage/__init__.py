"""Layer 1: where bytes live (local, HTTP, S3, Hugging Face) behind one small interface.

* :mod:`.store` — :class:`Store` (range reads, listing, atomic puts) opened from a URL through fsspec;
* :mod:`.http_ranges` — range GETs (one or several ranges per request) for plain HTTP stores;
* :mod:`.retry` — the one retry policy and its :class:`Backoff`;
* :mod:`.atomic` — atomic and durable local writes;
* :mod:`.cache_dir` — where per-machine caches live;
* :mod:`.errors` — what can go wrong, classified.

Example:
    >>> import tempfile
    >>> store = open_store(tempfile.mkdtemp())
    >>> store.put_bytes("a.txt", b"abc"); store.read_range("a.txt", 1, 3)
    b'bc'
"""

from .atomic import atomic_path, fsync_path, fsync_tree, is_disk_full, is_temp_name, umask, write_bytes_atomic
from .cache_dir import cache_dir
from .errors import (
    DiskFullError,
    HttpStatusError,
    MalformedMultipart,
    ReadOnlyStoreError,
    ShortReadError,
    StorageError,
    StoreAuthError,
    StoreNotFoundError,
    StoreUnavailableError,
    TruncatedFileError,
)
from .retry import Backoff, RetryPolicy, classify
from .store import Store, StoreStats, open_store

__all__ = [
    "atomic_path",
    "is_disk_full",
    "fsync_path",
    "fsync_tree",
    "is_temp_name",
    "umask",
    "write_bytes_atomic",
    "cache_dir",
    "Store",
    "StoreStats",
    "open_store",
    "RetryPolicy",
    "Backoff",
    "classify",
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
