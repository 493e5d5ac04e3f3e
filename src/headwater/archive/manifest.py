"""The pool manifest: one SQLite file mapping resource → shard, member, offset, size, sha256.

Why: resolving an id from per-shard JSON costs one download and one parse per shard (and per process).
The manifest is built once from the indexes by ``pack``/``index``, fetched once, and then answers a
lookup with one B-tree probe; every process on the machine shares its pages through the page cache.

Example:
    >>> import tempfile, os
    >>> from headwater.archive.index import TarIndex, FileEntry
    >>> path = os.path.join(tempfile.mkdtemp(), MANIFEST_NAME)
    >>> idx = TarIndex(1024, "h", "l", {"12.png": FileEntry(512, 3, "ab" * 32)})
    >>> write_manifest(path, [("images/0012.tar", idx)])
    >>> with Manifest(path) as m:
    ...     [(r.shard, r.name, r.offset) for r in m.lookup("12")]
    [('images/0012.tar', '12.png', 512)]
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from ..storage import RetryPolicy, Store, StoreNotFoundError, atomic_path, open_store
from .errors import ManifestError
from .index import TarIndex, index_path_for
from .member_names import resource_key
from .shards import find_shards, load_indexes

__all__ = ["MANIFEST_NAME", "MANIFEST_LOCK", "ManifestRow", "ShardRow", "Manifest", "write_manifest",
           "rebuild_manifest", "update_manifest", "manifest_lock"]

MANIFEST_NAME = "headwater-manifest.sqlite"
MANIFEST_LOCK = ".headwater/manifest.lock"
"""The lock file of a local pool's manifest where its folder cannot be locked (:func:`manifest_lock`)."""
_FORMAT = "1"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE shards (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, index_path TEXT NOT NULL,
    filesize INTEGER NOT NULL, hash TEXT NOT NULL, hash_lfs TEXT NOT NULL);
CREATE TABLE files (
    key TEXT NOT NULL, shard INTEGER NOT NULL REFERENCES shards(id), name TEXT NOT NULL,
    offset INTEGER NOT NULL, size INTEGER NOT NULL, sha256 BLOB);
"""


@dataclass(frozen=True, slots=True)
class ShardRow:
    path: str
    index_path: str
    filesize: int
    hash: str
    hash_lfs: str
    files: int


class ManifestRow(NamedTuple):
    """One member of one shard, found by its resource key (a named tuple: a publish makes millions of them,
    and a tuple is built several times faster than a frozen dataclass)."""

    key: str
    shard: str
    name: str
    offset: int
    size: int
    sha256: str | None
    shard_size: int


def _insert_shard(db: sqlite3.Connection, shard_id: int, shard: str, index: TarIndex) -> None:
    db.execute(
        "INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?)",
        (shard_id, shard, index_path_for(shard), index.filesize, index.hash, index.hash_lfs),
    )
    db.executemany(
        "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
        (
            (resource_key(name), shard_id, name, e.offset, e.size, bytes.fromhex(e.sha256) if e.sha256 else None)
            for name, e in index.files.items()
        ),
    )


def write_manifest(path: str, shards: Iterable[tuple[str, TarIndex]]) -> None:
    """Write a manifest for ``(shard path, index)`` pairs atomically (temp file, then rename)."""
    with atomic_path(path) as tmp:
        os.unlink(tmp)
        db = sqlite3.connect(tmp)
        try:
            db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
            db.execute("INSERT INTO meta VALUES ('format', ?)", (_FORMAT,))
            for shard_id, (shard, index) in enumerate(sorted(shards, key=lambda item: item[0])):
                _insert_shard(db, shard_id, shard, index)
            db.execute("CREATE INDEX files_by_key ON files(key)")
            db.commit()
        finally:
            db.close()


class Manifest:
    """Read-only view of a manifest file; safe to share between threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._shard_rows: dict[int, tuple[str, int]] | None = None
        uri = "file:" + os.path.abspath(path) + "?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise ManifestError(f"{path}: not a headwater manifest ({err})") from None
        if row is None or row[0] != _FORMAT:
            self._db.close()
            raise ManifestError(f"{path}: unsupported manifest format {row and row[0]!r}")

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def lookup(self, key: str) -> list[ManifestRow]:
        """Every member whose resource key is ``key`` (usually one)."""
        return self.lookup_many([key]).get(key, [])

    def lookup_many(self, keys: Iterable[str]) -> dict[str, list[ManifestRow]]:
        """:meth:`lookup` for many keys in one query (keys found → their rows; a key not found is absent).

        Why: one query per key costs ~70 µs of SQLite call overhead, far more than the B-tree probe; a publish
        checks millions of references, so it asks for hundreds of keys at a time. The keys go in as one
        JSON array (``json_each``), so no batch meets SQLite's limit on bound parameters.

        >>> import tempfile, os
        >>> from headwater.archive.index import TarIndex, FileEntry
        >>> path = os.path.join(tempfile.mkdtemp(), MANIFEST_NAME)
        >>> files = {"1.png": FileEntry(512, 3, "ab" * 32), "2.png": FileEntry(1024, 3, "cd" * 32)}
        >>> write_manifest(path, [("images/0000.tar", TarIndex(2048, "h", "l", files))])
        >>> with Manifest(path) as m:
        ...     {key: [r.name for r in rows] for key, rows in m.lookup_many(["2", "9", "1"]).items()}
        {'1': ['1.png'], '2': ['2.png']}
        """
        if self._shard_rows is None:  # a few rows per shard file: joined here, not per member in SQL
            self._shard_rows = {i: (path, size) for i, path, size in self._db.execute(
                "SELECT id, path, filesize FROM shards")}
        shard_rows = self._shard_rows
        cur = self._db.execute(
            "SELECT key, shard, name, offset, size, lower(hex(sha256)) FROM files "
            "WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(keys)),),
        )
        out: dict[str, list[ManifestRow]] = {}
        for k, shard, n, o, sz, sha, in cur:
            path, filesize = shard_rows[shard]
            out.setdefault(k, []).append(ManifestRow(k, path, n, o, sz, sha or None, filesize))
        for rows in out.values():
            if len(rows) > 1:  # the order lookup() gives
                rows.sort(key=lambda row: (row.shard, row.name))
        return out

    def shards(self) -> list[ShardRow]:
        cur = self._db.execute(
            "SELECT s.path, s.index_path, s.filesize, s.hash, s.hash_lfs, "
            "(SELECT COUNT(*) FROM files f WHERE f.shard = s.id) FROM shards s ORDER BY s.path"
        )
        return [ShardRow(*row) for row in cur]

    def keys(self) -> Iterator[str]:
        for (key,) in self._db.execute("SELECT DISTINCT key FROM files ORDER BY key"):
            yield key

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0])


def _apply_changes(path: str, put: dict[str, TarIndex], remove: Iterable[str]) -> bool:
    """Apply shard changes to the manifest file at ``path`` in place; False if it is not a manifest."""
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error:
        return False
    try:
        row = db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        if row is None or row[0] != _FORMAT:
            return False
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                         "CREATE INDEX IF NOT EXISTS files_by_shard ON files(shard);")
        for shard in [*remove, *put]:
            found = db.execute("SELECT id FROM shards WHERE path = ?", (shard,)).fetchone()
            if found is not None:
                db.execute("DELETE FROM files WHERE shard = ?", found)
                db.execute("DELETE FROM shards WHERE id = ?", found)
        next_id = int(db.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM shards").fetchone()[0])
        for offset, (shard, index) in enumerate(sorted(put.items())):
            _insert_shard(db, next_id + offset, shard, index)
        db.commit()
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        db.close()


@contextmanager
def manifest_lock(root: str | Store) -> Iterator[None]:
    """Hold the cross-process lock of a local pool's manifest for the ``with`` block (a no-op for a remote
    store: see :func:`update_manifest` for what guards those).

    Why ``flock``: every writer of the manifest (uploads in several server processes, a ``headwater index``
    run beside them) reads it, edits a copy and renames the copy into place; two such read-modify-writes
    that overlap lose the first one's changes. ``flock`` serialises them across processes and threads alike
    (each holder opens its own descriptor), and the kernel drops the lock when its holder dies, so a killed
    writer never blocks the next one. What is locked is the pool's folder itself, so nothing is written into
    the pool for it; a file system that cannot lock a folder (some NFS mounts) gets the lock file
    :data:`MANIFEST_LOCK` instead, in the pool's internal folder (never listed nor served).

    >>> import tempfile
    >>> with manifest_lock(tempfile.mkdtemp()):
    ...     pass
    """
    store = root if isinstance(root, Store) else open_store(root)
    folder = store.local_path("")
    if folder is None or not os.path.isdir(folder):  # remote, or no pool yet: nothing to race over here
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # cannot lock a folder here: a lock file beside the manifest
        os.close(fd)
        path = os.path.join(folder, MANIFEST_LOCK)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
    try:
        yield
    finally:
        os.close(fd)  # closing the only descriptor of this open file releases the lock


def update_manifest(root: str | Store, *, put: dict[str, TarIndex] | None = None,
                    remove: Iterable[str] = ()) -> str:
    """Record shards added or replaced (``put``: shard path → index) and removed in the manifest of
    ``root``, without re-reading the other shards' indexes; returns the manifest's location.

    Why: a rebuild parses every index of the pool, so with many (or huge) shards each upload would cost
    seconds. The update edits a copy of the current manifest and renames it into place, so readers see
    the old manifest or the new one, never a half-written one. A missing or unreadable manifest is
    rebuilt from the indexes instead (:func:`rebuild_manifest`).

    Concurrent writers (several server processes uploading into one pool) never lose each other's
    changes, whatever the interleaving:

    * a local pool: the read-modify-write runs under :func:`manifest_lock` (``flock``), so writers take
      turns — every update is applied to the manifest the previous one left;
    * S3 (no locks): the new manifest is written only if the object is still the one that was read
      (a conditional PUT: ``If-Match`` its ETag, or ``If-None-Match: *`` when there was none,
      :meth:`~headwater.storage.Store.put_file_if_unchanged`); a writer that lost the race reads the winner's
      manifest and applies its change again. That holds where the store honours conditional writes (AWS S3
      and moto do); a store without them (another fsspec backend) is written unconditionally, last writer
      wins, and ``headwater index`` rebuilds a manifest that fell behind.
    """
    store = root if isinstance(root, Store) else open_store(root)
    put = dict(put or {})
    remove = list(remove)
    if store.is_local:
        with manifest_lock(store):
            return _update_local(store, put, remove)
    return _update_remote(store, put, remove)


def _update_local(store: Store, put: dict[str, TarIndex], remove: list[str]) -> str:
    local = store.local_path(MANIFEST_NAME)
    assert local is not None
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, MANIFEST_NAME)
        try:
            shutil.copyfile(local, work)
        except FileNotFoundError:
            return _rebuild(store)
        if not _apply_changes(work, put, remove):
            return _rebuild(store)
        store.put_file(MANIFEST_NAME, work)
    return local


_REMOTE_ATTEMPTS = 50


def _update_remote(store: Store, put: dict[str, TarIndex], remove: list[str]) -> str:
    backoff = RetryPolicy(attempts=_REMOTE_ATTEMPTS, base_delay=0.02, max_delay=1.0).backoff()
    while True:
        with tempfile.TemporaryDirectory() as tmp:
            work = os.path.join(tmp, MANIFEST_NAME)
            version = store.version(MANIFEST_NAME)  # before reading: a change after it fails the write below
            try:
                if version is None:
                    raise StoreNotFoundError(store.describe(MANIFEST_NAME))
                with open(work, "wb") as dst:  # newer bytes than `version`? then the PUT below fails
                    dst.write(store.read_bytes(MANIFEST_NAME))
                applied = _apply_changes(work, put, remove)
            except StoreNotFoundError:
                applied = False
            if not applied:  # missing or unreadable: build it from the indexes (they include this change)
                write_manifest(work, _indexed_shards(store))
            if store.put_file_if_unchanged(MANIFEST_NAME, work, version):
                return store.describe(MANIFEST_NAME)
        if not backoff.failed(ManifestError("changed by another writer")):
            raise ManifestError(f"{store.describe(MANIFEST_NAME)} was changed by other writers {_REMOTE_ATTEMPTS} "
                                "times while this update was applied; run `headwater index` on the pool to "
                                "rebuild it")


def _indexed_shards(store: Store) -> list[tuple[str, TarIndex]]:
    shards = [s for s in find_shards(store) if store.exists(index_path_for(s))]
    return load_indexes(store, shards)


def rebuild_manifest(root: str | Store) -> str:
    """Write the manifest for every indexed shard in ``root``; returns the manifest's location.

    For a remote store the manifest is built in a local temp file and uploaded atomically. A local pool's
    rebuild holds :func:`manifest_lock`, so it never interleaves with an :func:`update_manifest`.
    """
    store = root if isinstance(root, Store) else open_store(root)
    if store.is_local:
        with manifest_lock(store):
            return _rebuild(store)
    return _rebuild(store)


def _rebuild(store: Store) -> str:
    pairs = _indexed_shards(store)
    local = store.local_path(MANIFEST_NAME)
    if local is not None:
        write_manifest(local, pairs)
        return local
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, MANIFEST_NAME)
        write_manifest(path, pairs)
        store.put_file(MANIFEST_NAME, path)
    return store.describe(MANIFEST_NAME)
