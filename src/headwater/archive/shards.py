"""Find a pool's shards and their indexes in a store.

A pool is a store holding ``*.tar`` shards, each with ``*.json`` beside it (same stem) and optionally a
manifest at the root. Index JSON may also come from someone else's tools (hfutils).

Example:
    >>> import tempfile
    >>> from headwater.storage import open_store
    >>> find_shards(open_store(tempfile.mkdtemp()))
    []
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from ..storage import Store, StoreNotFoundError, is_temp_name
from .index import TarIndex, decode_index, index_path_for

__all__ = ["find_shards", "load_index", "load_indexes", "member_shards"]


def find_shards(store: Store) -> list[str]:
    """Relative paths of every ``.tar`` in the store (temp files skipped), sorted.

    Raises :class:`~headwater.storage.StoreNotFoundError` when there is nothing at the store's root (a
    mistyped folder is an error, not an empty pool).
    """
    if store.root_exists() is False:
        raise StoreNotFoundError(f"no pool at {store.url}: no such folder")
    return [p for p in store.find(".tar") if not is_temp_name(p)]


def load_index(store: Store, shard: str) -> TarIndex:
    """The index JSON beside ``shard``."""
    path = index_path_for(shard)
    return decode_index(store.read_bytes(path), source=store.describe(path))


def load_indexes(store: Store, shards: list[str], *, max_workers: int = 8) -> list[tuple[str, TarIndex]]:
    """Indexes of many shards, fetched concurrently (one request each)."""
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(zip(shards, pool.map(lambda s: load_index(store, s), shards), strict=True))


def member_shards(indexes: Iterable[tuple[str, TarIndex]]) -> dict[str, list[str]]:
    """Member name → the shards holding a member of that name, in the order given.

    A name held by two shards (or listed twice) is ambiguous: a lookup of it finds two members. ``pack
    --add`` refuses new files whose name is taken; ``verify`` reports names held more than once.

    Example:
        >>> from headwater.archive.index import FileEntry
        >>> one = TarIndex(1024, "h", "l", {"1.jpg": FileEntry(512, 3, None)})
        >>> member_shards([("a.tar", one), ("b.tar", one)])
        {'1.jpg': ['a.tar', 'b.tar']}
    """
    found: dict[str, list[str]] = {}
    for shard, index in indexes:
        for name in index.files:
            found.setdefault(name, []).append(shard)
    return found
