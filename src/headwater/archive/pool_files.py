"""Find a pool's shards and indexes in a store, and (re)build its manifest from them.

A pool is a store holding ``*.tar`` shards, each with ``*.json`` beside it (same stem) and optionally a
manifest at the root. Index JSON may also come from someone else's tools (hfutils).

Example:
    >>> import tempfile
    >>> from headwater.storage import open_store
    >>> find_shards(open_store(tempfile.mkdtemp()))
    []
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ..storage import Store, is_temp_name, open_store
from .index import TarIndex, decode_index, index_path_for
from .manifest import MANIFEST_NAME, write_manifest

__all__ = ["find_shards", "load_index", "load_indexes", "rebuild_manifest"]


def find_shards(store: Store) -> list[str]:
    """Relative paths of every ``.tar`` in the store (temp files skipped), sorted."""
    return [p for p in store.find(".tar") if not is_temp_name(p)]


def load_index(store: Store, shard: str) -> TarIndex:
    """The index JSON beside ``shard``."""
    path = index_path_for(shard)
    return decode_index(store.read_bytes(path), source=store.describe(path))


def load_indexes(store: Store, shards: list[str], *, max_workers: int = 8) -> list[tuple[str, TarIndex]]:
    """Indexes of many shards, fetched concurrently (one request each)."""
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(zip(shards, pool.map(lambda s: load_index(store, s), shards)))


def rebuild_manifest(root: str | Store) -> str:
    """Write the manifest for every indexed shard in ``root``; returns the manifest's location.

    For a remote store the manifest is built in a local temp file and uploaded atomically.
    """
    store = root if isinstance(root, Store) else open_store(root)
    shards = [s for s in find_shards(store) if store.exists(index_path_for(s))]
    pairs = load_indexes(store, shards)
    local = store.local_path(MANIFEST_NAME)
    if local is not None:
        write_manifest(local, pairs)
        return local
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, MANIFEST_NAME)
        write_manifest(path, pairs)
        store.put_file(MANIFEST_NAME, path)
    return store.describe(MANIFEST_NAME)
