"""Pools seen as Hugging Face dataset repos: what a revision means, and which bytes a path names.

**Commit model — content addressed.** A pool is a store of files (shards, their index JSON, the manifest,
anything else). Its state is the set of ``(path, size, oid)`` of those files, where ``oid`` is the
git blob sha1 of the content (for a tar shard whose index JSON matches it: the index's ``hash``, so no
shard is ever re-read to know its identity; its sha256 is the index's ``hash_lfs``). The **commit id**
is the sha1 of that sorted list: 40 hex digits, computed the same way by every server process from the
same bytes, with no shared state and no coordinator. Two states with equal contents have the same id
(a revert gives the old id back); a change to any file gives a new one.

* ``main`` (and ``HEAD``) resolve to the commit of the pool as it is now. The pool is re-listed at most
  every :data:`REFRESH_SECONDS` per process (one LIST on S3, a directory walk locally); an upload through
  this process refreshes it at once. A listing equal to the last one (same paths, sizes, mtimes or
  ETags) reuses the last snapshot, so only files that changed are ever hashed again.
* A 40-hex commit id resolves to a snapshot this server recorded (kept in memory and, when the store is
  writable, in ``.headwater/commits/<id>.json.gz`` inside the pool so that other processes and restarts
  know it too). Pools keep only the current bytes of each path, so a file of an older commit is served
  **only if it is unchanged since** (same oid now); otherwise 404 — never different bytes under an old
  commit id. An unknown id is 404 ``RevisionNotFound``.

Files without a usable content hash (no matching index and larger than :data:`HASH_LIMIT`) get a
*version* oid: the sha1 of their size and backend version (mtime+inode locally, ETag on S3). It changes
whenever the file changes, which is all the commit id needs, but it is not a git blob id.

What is not served: temp files of atomic writes, the ``.headwater/`` folder, and (locally) symlinks —
a path is served only if the listing found a regular file under the pool root.

Example:
    >>> import io, os, tarfile, tempfile
    >>> from headwater.archive import pack_directory
    >>> src, root = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = open(os.path.join(src, "7.txt"), "w").write("seven")
    >>> _ = pack_directory(src, root, silent=True)
    >>> pool = HubPool("acme/pool", root)
    >>> snap = pool.head()
    >>> len(snap.commit), sorted(snap.files)
    (40, ['headwater-manifest.sqlite', 'shard-00000.json', 'shard-00000.tar'])
    >>> snap.files["shard-00000.tar"].lfs
    True
    >>> pool.resolve(snap.commit, "shard-00000.json")[1].size == os.path.getsize(os.path.join(root, "shard-00000.json"))
    True
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import posixpath
import re
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..archive import MANIFEST_NAME, IndexFormatError, Manifest, decode_index
from ..archive.index import git_blob_sha1_prefix
from ..storage import StorageError, Store, StoreNotFoundError, is_temp_name, open_store
from .errors import EntryNotFound, RepoNotFound, RevisionNotFound, UnsafePathError

__all__ = [
    "REFRESH_SECONDS",
    "HASH_LIMIT",
    "INTERNAL_DIR",
    "PoolFile",
    "Snapshot",
    "HubPool",
    "PoolRegistry",
    "check_repo_path",
    "MAX_PATH_CHARS",
    "MAX_PATH_DEPTH",
    "MAX_NAME_BYTES",
    "commit_id",
    "is_commit_id",
]

log = logging.getLogger(__name__)

REFRESH_SECONDS = float(os.environ.get("HEADWATER_POOL_REFRESH", "2.0"))
"""How stale ``main`` may be in one process (seconds) before the pool is listed again."""

HASH_LIMIT = 64 << 20
"""Files up to this size without an index are hashed for their oid; larger ones get a version oid."""

INTERNAL_DIR = ".headwater"
"""Folder inside a pool where recorded commits live; never listed nor served."""

MAX_PATH_CHARS = 1024
"""Longest path inside a pool a request may name (Linux allows 4096 for a whole path on disk)."""
MAX_PATH_DEPTH = 32
"""Most folders a path inside a pool may have."""
MAX_NAME_BYTES = 255
"""Longest file or folder name (UTF-8 bytes): what most file systems store."""

BRANCHES = ("main", "HEAD", "refs/heads/main")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_TEXT_EXTS = {".json", ".jsonl", ".md", ".txt", ".csv", ".tsv", ".yaml", ".yml", ".gitattributes", ".py"}
_RECORD_FORMAT = 1
_KEEP_SNAPSHOTS = 16


def check_repo_path(path: str) -> str:
    """``path`` if it is a plain relative path (``a/b.tar``), else :class:`UnsafePathError`.

    Refused: empty paths, absolute paths, ``.``/``..``/empty parts, backslashes, NUL and other control
    characters, drive letters, and ``%`` (a name that still holds ``%`` after the URL was decoded was
    encoded twice — ``%252e%252e`` — which is how traversal hides from one decoding layer).

    >>> check_repo_path("images/0234.tar")
    'images/0234.tar'
    >>> check_repo_path("images/../../etc/passwd")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    headwater.server.errors.UnsafePathError: unsafe path 'images/../../etc/passwd': '.', '..' or empty parts
    are not allowed
    """
    if not path:
        raise UnsafePathError("empty path")
    if len(path) > MAX_PATH_CHARS:
        raise UnsafePathError(f"path of {len(path)} characters is longer than {MAX_PATH_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise UnsafePathError(f"unsafe path {path!r}: control characters are not allowed")
    if "\\" in path:
        raise UnsafePathError(f"unsafe path {path!r}: backslashes are not allowed")
    if "%" in path:
        raise UnsafePathError(f"unsafe path {path!r}: '%' is not allowed (encoded twice?)")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise UnsafePathError(f"unsafe path {path!r}: absolute paths are not allowed")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"unsafe path {path!r}: '.', '..' or empty parts are not allowed")
    if len(parts) > MAX_PATH_DEPTH:
        raise UnsafePathError(f"path {path[:60]!r}… is {len(parts)} folders deep; at most {MAX_PATH_DEPTH} are allowed")
    long = next((p for p in parts if len(p.encode()) > MAX_NAME_BYTES), None)
    if long is not None:
        raise UnsafePathError(f"name {long[:40]!r}… in the path is {len(long.encode())} bytes long; at most "
                              f"{MAX_NAME_BYTES} are allowed")
    return path


def is_commit_id(revision: str) -> bool:
    """True for a 40-hex commit id."""
    return bool(_COMMIT_RE.fullmatch(revision))


@dataclass(frozen=True, slots=True)
class PoolFile:
    """One file of a snapshot: ``oid`` is its git blob sha1 (or version oid), ``sha256`` its LFS oid."""

    path: str
    size: int
    oid: str
    sha256: str | None = None
    lfs: bool = False

    @property
    def etag(self) -> str:
        """What the Hub sends as ETag: the sha256 for LFS files, the git blob sha1 otherwise."""
        return self.sha256 if self.lfs and self.sha256 else self.oid

    def to_row(self) -> list[Any]:
        return [self.path, self.size, self.oid, self.sha256, self.lfs]


def commit_id(files: Iterable[PoolFile]) -> str:
    """The content address of a set of files: sha1 over sorted ``path NUL size NUL oid`` lines.

    >>> commit_id([PoolFile("a", 1, "x")]) == commit_id([PoolFile("a", 1, "x", "y", True)])
    True
    """
    h = hashlib.sha1(b"headwater-pool-commit-1\n")
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.size}\0{f.oid}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A pool's files at one commit."""

    commit: str
    files: Mapping[str, PoolFile]
    created: float
    _folders: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def folders(self) -> dict[str, list[str]]:
        """Folder → sorted child paths (files and folders, full paths; the root is ``""``)."""
        if not self._folders and self.files:
            children: dict[str, set[str]] = {"": set()}
            for path in self.files:
                parent, child = posixpath.dirname(path), path
                while True:
                    children.setdefault(parent, set()).add(child)
                    if not parent:
                        break
                    parent, child = posixpath.dirname(parent), parent
            self._folders.update({k: sorted(v) for k, v in children.items()})
        return self._folders or {"": []}

    def is_folder(self, path: str) -> bool:
        return path in self.folders()

    def tree_oid(self, folder: str) -> str:
        """A stable id for a folder's contents (sha1 of its files' paths and oids)."""
        prefix = folder + "/" if folder else ""
        return commit_id(f for p, f in self.files.items() if p.startswith(prefix))

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())

    def to_record(self) -> bytes:
        doc = {"format": _RECORD_FORMAT, "commit": self.commit, "created": self.created,
               "files": [f.to_row() for f in sorted(self.files.values(), key=lambda f: f.path)]}
        return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)

    @classmethod
    def from_record(cls, data: bytes) -> Snapshot:
        doc = json.loads(gzip.decompress(data))
        if doc.get("format") != _RECORD_FORMAT:
            raise ValueError(f"unsupported commit record format {doc.get('format')!r}")
        files = {row[0]: PoolFile(row[0], int(row[1]), row[2], row[3], bool(row[4])) for row in doc["files"]}
        if commit_id(files.values()) != doc["commit"]:
            raise ValueError("commit record does not match its commit id")
        return cls(doc["commit"], files, float(doc["created"]))


def _is_lfs(path: str) -> bool:
    return posixpath.splitext(path)[1].lower() not in _TEXT_EXTS and not path.endswith(".gitattributes")


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(git_blob_sha1_prefix(len(data)) + data).hexdigest()


Listing = dict[str, tuple[int, str]]  # path -> (size, backend version)


class HubPool:
    """One pool served as a dataset repo: snapshots of its store, revisions, commit records."""

    def __init__(self, repo_id: str, url: str | Store, *, refresh_seconds: float | None = None) -> None:
        self.repo_id = repo_id
        self.url = url.url if isinstance(url, Store) else url
        self._store = url if isinstance(url, Store) else None
        self.refresh_seconds = REFRESH_SECONDS if refresh_seconds is None else refresh_seconds
        self._lock = threading.RLock()
        self._store_lock = threading.Lock()
        self._head: Snapshot | None = None
        self._head_signature: str | None = None
        self._checked = float("-inf")
        self._forced = False
        self._refresh_lock = threading.Lock()
        self._known: OrderedDict[str, Snapshot] = OrderedDict()
        self._file_cache: dict[tuple[str, int, str], PoolFile] = {}
        self._index_cache: dict[tuple[str, int, str], tuple[str, str, int] | None] = {}
        self.write_lock = threading.Lock()
        """Held by uploads while they publish (rename, index, manifest) so two never interleave."""

    def __repr__(self) -> str:
        return f"HubPool({self.repo_id!r}, {self.url!r})"

    # -- the store ----------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                options: dict[str, Any] = {}
                if self.url.startswith("s3://"):
                    options["use_listings_cache"] = False  # other processes write too
                self._store = open_store(self.url, storage_options=options)
            return self._store

    @property
    def writable(self) -> bool:
        """Whether uploads and commit records may be written (not plain HTTP; never a ``hf://`` pool,
        where a write would be a commit on someone's Hub repo)."""
        return not self.store.is_http and not self.url.startswith("hf://")

    # -- snapshots ----------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Make the next :meth:`head` list the store again and wait for it (after a write through this
        process, so the writer sees its own commit)."""
        with self._lock:
            self._checked = float("-inf")
            self._forced = True

    def head(self) -> Snapshot:
        """The pool as it is now (at most :attr:`refresh_seconds` old).

        One thread re-lists a stale pool while the others keep answering from the previous snapshot, so
        a slow listing (a big bucket) never stalls downloads; only the first call and calls after
        :meth:`invalidate` wait for the listing.
        """
        with self._lock:
            head, fresh, forced = self._head, time.monotonic() - self._checked < self.refresh_seconds, self._forced
        if head is not None and fresh:
            return head
        blocking = head is None or forced
        if not self._refresh_lock.acquire(blocking=blocking):
            assert head is not None
            return head  # another thread is refreshing: the previous snapshot is still a true state
        try:
            with self._lock:
                if self._head is not None and not self._forced and \
                        time.monotonic() - self._checked < self.refresh_seconds:
                    return self._head  # refreshed while we waited
                self._forced = False
            listing, signature = self._list()
            if self._head is None or signature != self._head_signature:
                snap = self._load_signature(signature) or self._build(listing)
                self._remember(snap)
                self._persist(snap, signature)
                with self._lock:
                    self._head, self._head_signature = snap, signature
            with self._lock:
                self._checked = time.monotonic()
                assert self._head is not None
                return self._head
        finally:
            self._refresh_lock.release()

    def snapshot(self, revision: str) -> Snapshot:
        """The snapshot a revision names: ``main``/``HEAD`` or a 40-hex commit id this server (or another
        process over the same pool) recorded."""
        if revision in BRANCHES:
            return self.head()
        if not is_commit_id(revision):
            raise RevisionNotFound(f"revision {revision!r} not found in {self.repo_id} (use 'main' or a commit id)")
        head = self.head()
        if head.commit == revision:
            return head
        with self._lock:
            snap = self._known.get(revision)
        if snap is None:
            snap = self._load_commit(revision)
        if snap is None:
            raise RevisionNotFound(f"revision {revision!r} not found in {self.repo_id}", head.commit)
        self._remember(snap)
        return snap

    def resolve(self, revision: str, path: str) -> tuple[Snapshot, PoolFile]:
        """``(snapshot, file)`` for ``path`` at ``revision``; the file's bytes are what the store holds now.

        For an older commit the file is returned only if it is unchanged since (same oid and size now).
        """
        path = check_repo_path(path)
        snap = self.snapshot(revision)
        wanted = snap.files.get(path)
        if wanted is None:
            raise EntryNotFound(f"{path!r} not found in {self.repo_id}@{snap.commit}", snap.commit)
        head = self.head()
        if head is snap:
            return snap, wanted
        now = head.files.get(path)
        if now is None or (now.oid, now.size) != (wanted.oid, wanted.size):
            raise EntryNotFound(
                f"{path!r} changed since commit {snap.commit} of {self.repo_id} and only its current bytes are "
                f"kept; request it at 'main' (commit {head.commit})", snap.commit)
        return snap, wanted

    def without_io(self, revision: str) -> bool:
        """True when :meth:`snapshot` of ``revision`` needs no I/O now (a fresh head, a known commit), so
        an async route may call :meth:`resolve` on the event loop instead of in a worker thread."""
        with self._lock:
            if self._head is None or self._forced or time.monotonic() - self._checked >= self.refresh_seconds:
                return False
            return revision in BRANCHES or revision == self._head.commit or revision in self._known

    def commits(self, revision: str) -> list[Snapshot]:
        """The commits this server can name from ``revision`` on (the snapshot itself; no history chain)."""
        return [self.snapshot(revision)]

    # -- listing ------------------------------------------------------------------------------------
    def _list(self) -> tuple[Listing, str]:
        store = self.store
        if store.is_local:
            listing = self._list_local(store.root)
        elif store.is_http:
            listing = self._list_http(store)
        else:
            listing = self._list_remote(store)
        h = hashlib.sha1()
        for path in sorted(listing):
            size, version = listing[path]
            h.update(f"{path}\0{size}\0{version}\n".encode())
        return listing, h.hexdigest()

    @staticmethod
    def _skip(rel: str) -> bool:
        return rel == INTERNAL_DIR or rel.startswith(INTERNAL_DIR + "/") or is_temp_name(rel)

    def _list_local(self, root: str) -> Listing:
        listing: Listing = {}
        if not os.path.isdir(root):
            log.warning("pool %s: %s is not a directory", self.repo_id, root)  # the operator's log, not the client
            raise RepoNotFound(f"pool {self.repo_id} is not available on this server")
        for folder, dirs, names in os.walk(root):
            rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
            rel_folder = "" if rel_folder == "." else rel_folder + "/"
            dirs[:] = [d for d in dirs if not self._skip(rel_folder + d)]
            for name in names:
                rel = rel_folder + name
                if self._skip(rel):
                    continue
                st = os.lstat(os.path.join(folder, name))
                if not stat.S_ISREG(st.st_mode):  # symlinks, fifos, devices: never served
                    continue
                listing[rel] = (st.st_size, f"{st.st_mtime_ns}.{st.st_ino}")
        return listing

    def _list_remote(self, store: Store) -> Listing:
        try:
            found = store._call(lambda: store.fs.find(store.root, detail=True), store.url)
        except StoreNotFoundError:
            found = {}
        prefix = store.root + "/"
        listing: Listing = {}
        for full, info in found.items():
            if info.get("type", "file") != "file" or full.endswith("/"):
                continue
            rel = full[len(prefix):] if full.startswith(prefix) else full
            if not rel or self._skip(rel):
                continue
            version = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime") or ""
            listing[rel] = (int(info.get("size") or 0), str(version).strip('"'))
        return listing

    def _list_http(self, store: Store) -> Listing:
        """A plain HTTP pool cannot be listed: its files are those its manifest names (+ the manifest)."""
        try:
            info = store.info(MANIFEST_NAME)
        except StoreNotFoundError:
            log.warning("pool %s: %s has no %s to list it by", self.repo_id, store.url, MANIFEST_NAME)
            raise RepoNotFound(f"pool {self.repo_id} is not available on this server (it has no "
                               f"{MANIFEST_NAME} to list it by)") from None
        version = "|".join(str(info.get(k) or "") for k in ("ETag", "Last-Modified"))
        listing: Listing = {MANIFEST_NAME: (int(info.get("size") or 0), version)}
        data = store.read_bytes(MANIFEST_NAME)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, MANIFEST_NAME)
            with open(local, "wb") as f:
                f.write(data)
            with Manifest(local) as manifest:
                shards = manifest.shards()
        for shard in shards:
            listing[shard.path] = (shard.filesize, f"hash:{shard.hash}")
            listing[shard.index_path] = (-1, f"index-of:{shard.hash}")  # size learnt when read
        return listing

    # -- building a snapshot ------------------------------------------------------------------------
    def _read(self, path: str) -> bytes:
        return self.store.read_bytes(path)

    def _hash_file(self, path: str, size: int) -> tuple[str, str]:
        """(git blob sha1, sha256) of a file, streamed."""
        git = hashlib.sha1(git_blob_sha1_prefix(size))
        sha = hashlib.sha256()
        with self.store.open(path) as f:
            while chunk := f.read(4 << 20):
                git.update(chunk)
                sha.update(chunk)
        return git.hexdigest(), sha.hexdigest()

    def _build(self, listing: Listing) -> Snapshot:
        files: dict[str, PoolFile] = {}
        index_info: dict[str, tuple[str, str, int] | None] = {}  # tar path -> (hash, hash_lfs, filesize)
        index_paths = [p for p in listing if p.endswith(".json") and p[:-5] + ".tar" in listing]

        def read_index(path: str) -> tuple[PoolFile, tuple[str, str, int] | None]:
            size, version = listing[path]
            key = (path, size, version)
            cached = self._file_cache.get(key)
            if cached is not None and key in self._index_cache:
                return cached, self._index_cache[key]
            data = self._read(path)
            entry = PoolFile(path, len(data), _git_sha1(data))
            try:
                idx = decode_index(data, source=path)
                info: tuple[str, str, int] | None = (idx.hash, idx.hash_lfs, idx.filesize)
            except IndexFormatError:
                info = None
            self._file_cache[key], self._index_cache[key] = entry, info
            return entry, info

        with ThreadPoolExecutor(max_workers=16) as pool:
            for path, (entry, info) in zip(index_paths, pool.map(read_index, index_paths), strict=True):
                files[path] = entry
                index_info[path[:-5] + ".tar"] = info

        def other(path: str) -> PoolFile:
            size, version = listing[path]
            key = (path, size, version)
            cached = self._file_cache.get(key)
            if cached is not None:
                return cached
            info = index_info.get(path)
            if info is not None and info[2] == size:
                entry = PoolFile(path, size, info[0], info[1], True)
            elif size <= HASH_LIMIT:
                oid, sha = self._hash_file(path, size)
                lfs = _is_lfs(path)
                entry = PoolFile(path, size, oid, sha if lfs else None, lfs)
            else:
                oid = hashlib.sha1(f"version\0{size}\0{version}".encode()).hexdigest()
                entry = PoolFile(path, size, oid, None, False)
            self._file_cache[key] = entry
            return entry

        rest = [p for p in listing if p not in files]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for entry in pool.map(other, rest):
                files[entry.path] = entry
        self._trim_caches(listing)
        return Snapshot(commit_id(files.values()), files, time.time())

    def _trim_caches(self, listing: Listing) -> None:
        for cache in (self._file_cache, self._index_cache):
            for key in [k for k in cache if listing.get(k[0]) != (k[1], k[2])]:
                del cache[key]

    # -- commit records -----------------------------------------------------------------------------
    def _remember(self, snap: Snapshot) -> None:
        with self._lock:
            self._known[snap.commit] = snap
            self._known.move_to_end(snap.commit)
            while len(self._known) > _KEEP_SNAPSHOTS:
                self._known.popitem(last=False)

    def _record_path(self, commit: str) -> str:
        return f"{INTERNAL_DIR}/commits/{commit}.json.gz"

    def _signature_path(self, signature: str) -> str:
        return f"{INTERNAL_DIR}/listings/{signature}"

    def _persist(self, snap: Snapshot, signature: str) -> None:
        if not self.writable:
            return
        try:
            if not self.store.exists(self._record_path(snap.commit)):
                self.store.put_bytes(self._record_path(snap.commit), snap.to_record())
            self.store.put_bytes(self._signature_path(signature), snap.commit.encode())
        except (OSError, StorageError) as err:  # a read-only pool: commits stay in this process's memory
            log.debug("pool %s: cannot record commit %s: %s", self.repo_id, snap.commit, err)

    def _load_commit(self, commit: str) -> Snapshot | None:
        if not self.writable:
            return None
        try:
            return Snapshot.from_record(self.store.read_bytes(self._record_path(commit)))
        except (OSError, StorageError, ValueError, KeyError):
            return None

    def _load_signature(self, signature: str) -> Snapshot | None:
        """The snapshot another process (or an earlier run) built for exactly this listing, if recorded."""
        if not self.writable:
            return None
        try:
            commit = self.store.read_bytes(self._signature_path(signature)).decode().strip()
        except (OSError, StorageError, UnicodeDecodeError):
            return None
        if not is_commit_id(commit):
            return None
        with self._lock:
            snap = self._known.get(commit)
        return snap or self._load_commit(commit)


class PoolRegistry:
    """``owner/repo`` → :class:`HubPool` for the pools of a server's configuration."""

    def __init__(self, pools: Mapping[str, str], *, refresh_seconds: float | None = None) -> None:
        self._pools = {repo: HubPool(repo, url, refresh_seconds=refresh_seconds) for repo, url in pools.items()}

    def get(self, repo_id: str) -> HubPool:
        pool = self._pools.get(repo_id)
        if pool is None:
            raise RepoNotFound(f"dataset repo {repo_id!r} not found")
        return pool

    def __iter__(self) -> Iterator[HubPool]:
        return iter(self._pools[k] for k in sorted(self._pools))

    def __len__(self) -> int:
        return len(self._pools)
