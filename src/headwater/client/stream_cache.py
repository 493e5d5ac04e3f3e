"""A persistent, shared, size-bounded cache of streamed chunks (NDJSON files, one droplet a line).

Why it looks like this (and what datatap's cache got wrong):

* **One entry per pass definition.** The key is dataset uid + split + chunk + nchunks + shuffle
  seed (+ truncation): everything that decides which droplets a pass reads and in which order.
  The file name is a hash of the key; a JSON sidecar beside it keeps the readable key, the byte
  size, the line count and a sparse line index (so a resume at ``offset`` seeks instead of
  scanning).
* **Promoted only when complete.** A pass writes to its own temp file as the lines go by; only when
  the source is exhausted is it fsynced and renamed to its final name. A pass that is abandoned (the
  generator closed or collected half-way), fails, or is killed leaves no entry, so the next pass
  either replays a complete entry or streams from the source again — never a truncated file.
* **Several processes: the first complete copy wins.** Every pass that misses the cache writes its
  own temp file (named with its pid), and no pass waits for another. The pass that completes first
  promotes its copy under a per-key :class:`filelock.FileLock` held only for that rename; a pass
  completing later finds the entry there and drops its copy. So whichever pass completes — even
  when the one that started first is killed half-way — leaves exactly one complete entry. (The
  first version locked the key for a whole pass and let every other pass stream without writing:
  when the locking process died, the passes beside it completed and left nothing.)
* **Readers never see a partial entry.** An entry is two files, the data and a JSON sidecar; the
  sidecar names the data file's inode (kept by the rename), and a reader accepts the pair only when
  they match and the sizes agree. Reading takes no lock: entries are immutable, and on POSIX an
  open file survives its eviction.
* **Dead passes are cleaned up.** Temp files whose process is gone (the pid in the name is not
  alive on this host) or that have not been written for :data:`STALE_TEMP_SECONDS` are removed
  when the cache is next opened and at each eviction.
* **Bounded.** A byte budget (default 10 GiB, ``HEADWATER_STREAM_CACHE_BYTES`` or ``max_bytes``)
  evicts least-recently-used entries; a replay refreshes the entry's mtime, which is the LRU clock.
  A pass bigger than the whole budget stops writing (and keeps streaming).

The root is ``$HEADWATER_CACHE/streams``, else ``$XDG_CACHE_HOME/headwater/streams``, else
``~/.cache/headwater/streams``.

Example:
    >>> import tempfile
    >>> cache = StreamCache(tempfile.mkdtemp())
    >>> key = StreamKey("ds-uid", "train", chunk=0, nchunks=1)
    >>> b"".join(cache.fill(key, [b'{"a":1}\\n{"a":2}\\n']))
    b'{"a":1}\\n{"a":2}\\n'
    >>> list(cache.replay(key, offset=1))
    [b'{"a":2}\\n']
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import msgspec
from filelock import FileLock, Timeout

from ..droplet.ndjson import count_lines, frame_lines, skip_lines
from ..storage import atomic_path, cache_dir
from .errors import CacheError

__all__ = ["StreamKey", "CacheEntry", "StreamCache", "DEFAULT_MAX_BYTES", "STALE_TEMP_SECONDS"]

DEFAULT_MAX_BYTES = 10 * 2**30
STALE_TEMP_SECONDS = 3600.0
"""A temp file not written for this long belongs to a dead pass even if its pid looks alive (a pid
reused, or a pass on another host sharing the folder): it is removed."""
_PROMOTE_WAIT = 60.0  # seconds to wait for the per-key lock, which is only ever held for a rename
_ORPHAN_SECONDS = 60.0  # a sidecar without its data file for this long is left from a failed promotion
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_FORMAT = 1
_SHUFFLE_ORDER = 2  # the shuffled order's version (2: catalog.BlockShuffle); part of a shuffled entry's key
_READ_BLOCK = 4 * 2**20
_WRITES_AHEAD = 4  # blocks handed to the cache writer thread and not yet written
_MARK_EVERY = 256 * 2**10
_DATA = ".ndjson"
_META = ".json"


@dataclass(frozen=True)
class StreamKey:
    """Everything that decides which droplets a pass reads, and in which order."""

    dataset: str
    split: str
    chunk: int
    nchunks: int
    shuffle_seed: int | None = None
    truncate: int | None = None

    @property
    def digest(self) -> str:
        """Stable file-name stem: SHA-256 over the canonical JSON of the key."""
        key: list[Any] = [_FORMAT, self.dataset, self.split, self.chunk, self.nchunks, self.shuffle_seed,
                          self.truncate]
        if self.shuffle_seed is not None:  # entries of the earlier (global) shuffle hold another order
            key.append(_SHUFFLE_ORDER)
        canonical = msgspec.json.encode(key)
        return hashlib.sha256(canonical).hexdigest()[:40]


@dataclass(frozen=True)
class CacheEntry:
    """A promoted (complete) cache entry, as described by its sidecar."""

    key: StreamKey
    path: str
    size: int
    lines: int
    last_used: float
    marks: tuple[tuple[int, int], ...] = ()


class _Meta(msgspec.Struct):
    format: int
    key: dict[str, Any]
    bytes: int
    lines: int
    marks: list[tuple[int, int]]
    created: float
    inode: int | None = None  # of the data file this sidecar describes (absent in entries of older versions)

    def describes(self, st: os.stat_result) -> bool:
        """Whether this sidecar belongs to the data file with stat ``st`` (not a copy promoted before or after)."""
        return self.bytes == st.st_size and (self.inode is None or self.inode == st.st_ino)


def _default_budget() -> int:
    raw = os.environ.get("HEADWATER_STREAM_CACHE_BYTES")
    if raw:
        try:
            return int(raw)
        except ValueError:
            raise CacheError(f"HEADWATER_STREAM_CACHE_BYTES must be an integer, got {raw!r}") from None
    return DEFAULT_MAX_BYTES


class StreamCache:
    """The on-disk stream cache (see the module docstring for the rules).

    ``root`` defaults to the XDG/``HEADWATER_CACHE`` location; ``max_bytes`` to 10 GiB (or
    ``HEADWATER_STREAM_CACHE_BYTES``).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, max_bytes: int | None = None) -> None:
        self.root = os.fspath(root) if root is not None else cache_dir("streams")
        os.makedirs(self.root, exist_ok=True)
        self._locks = os.path.join(self.root, "locks")
        os.makedirs(self._locks, exist_ok=True)
        self.max_bytes = _default_budget() if max_bytes is None else int(max_bytes)
        if self.max_bytes < 0:
            raise CacheError(f"max_bytes must be >= 0, got {max_bytes}")
        self._sweep()  # temps of passes that died since the cache was last opened

    def __repr__(self) -> str:
        return f"StreamCache({self.root!r}, max_bytes={self.max_bytes})"

    # -- paths -----------------------------------------------------------------------------------
    def _data_path(self, key: StreamKey) -> str:
        return os.path.join(self.root, key.digest + _DATA)

    def _meta_path(self, key: StreamKey) -> str:
        return os.path.join(self.root, key.digest + _META)

    def _lock(self, digest: str) -> FileLock:
        return FileLock(os.path.join(self._locks, digest + ".lock"))

    # -- reading ---------------------------------------------------------------------------------
    def _load_meta(self, meta_path: str) -> _Meta | None:
        try:
            with open(meta_path, "rb") as f:
                meta = msgspec.json.decode(f.read(), type=_Meta)
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        return meta if meta.format == _FORMAT else None

    def lookup(self, key: StreamKey) -> CacheEntry | None:
        """The promoted entry for ``key`` (without touching its LRU time), or None."""
        meta = self._load_meta(self._meta_path(key))
        try:
            st = os.stat(self._data_path(key))
        except FileNotFoundError:
            return None
        if meta is None or not meta.describes(st):
            return None
        return CacheEntry(key, self._data_path(key), meta.bytes, meta.lines, st.st_mtime,
                          tuple((int(a), int(b)) for a, b in meta.marks))

    def replay(self, key: StreamKey, offset: int = 0) -> Iterator[bytes] | None:
        """Blocks of whole lines of the promoted entry from line ``offset`` on, or None on a miss.

        The file is opened here, so an eviction after this call does not disturb the replay.
        A replay counts as a use: the entry's mtime (the LRU clock) is set to now.
        """
        if offset < 0:
            raise CacheError(f"offset must be >= 0, got {offset}")
        path = self._data_path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - handed to the generator, closed there
        except FileNotFoundError:
            return None
        meta = self._load_meta(self._meta_path(key))
        if meta is None or not meta.describes(os.fstat(f.fileno())) or offset > meta.lines:
            f.close()
            return None
        with contextlib.suppress(OSError):
            os.utime(f.fileno())
        return _read_lines_from(f, meta, offset)

    # -- filling ---------------------------------------------------------------------------------
    def fill(self, key: StreamKey, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass ``blocks`` (whole NDJSON lines each) through, writing them into this pass's temp file.

        Once ``blocks`` is exhausted the copy is promoted, unless another pass promoted one first (then
        ours is dropped: the first complete copy wins). If the entry is already there when the pass
        starts, it is replayed instead and ``blocks`` is never started.
        """
        promoted = self.replay(key)
        if promoted is not None:
            _close(blocks)
            yield from promoted
            return
        tmp = os.path.join(self.root, f".{key.digest}.{os.getpid()}-{_HOST}-{secrets.token_hex(4)}.tmp")
        out: _Writer | None = _Writer(open(tmp, "wb"))  # noqa: SIM115 - closed below or in finally
        size = lines = 0
        marks: list[tuple[int, int]] = [(0, 0)]
        try:
            for block in blocks:
                if block and block[-1:] != b"\n":
                    raise CacheError(
                        f"stream block for {key.dataset}/{key.split} chunk {key.chunk}/{key.nchunks} "
                        "does not end at a line boundary"
                    )
                if out is not None:
                    if size + len(block) > self.max_bytes:  # bigger than the whole budget
                        out.close()
                        out = None
                        os.unlink(tmp)
                    else:
                        if size - marks[-1][1] >= _MARK_EVERY:
                            marks.append((lines, size))
                        out.write(block)
                        size += len(block)
                        lines += count_lines(block)
                yield block
            if out is not None:
                inode = out.close(sync=True)
                out = None
                if self._promote(key, tmp, inode, size, lines, marks):
                    self.evict()
        finally:
            if out is not None:
                with contextlib.suppress(Exception):  # the pass already failed or was abandoned
                    out.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _promote(self, key: StreamKey, tmp: str, inode: int, size: int, lines: int,
                 marks: list[tuple[int, int]]) -> bool:
        """Make the complete copy ``tmp`` the entry, unless a complete entry is there already; True if it was."""
        try:
            with self._lock(key.digest).acquire(timeout=_PROMOTE_WAIT):
                if self.lookup(key) is not None:
                    return False  # another pass completed first: its copy stays, ours is dropped
                meta = _Meta(_FORMAT, asdict(key), size, lines, marks, time.time(), inode)
                with atomic_path(self._meta_path(key)) as meta_tmp, open(meta_tmp, "wb") as f:
                    f.write(msgspec.json.encode(meta))
                try:
                    os.replace(tmp, self._data_path(key))
                except FileNotFoundError:  # our temp was swept as stale: no entry, the sidecar goes too
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._meta_path(key))
                    return False
                return True
        except Timeout:  # cannot happen unless the lock is stuck elsewhere: keep streaming, skip caching
            return False

    def stream(self, key: StreamKey, source: Callable[[int], Iterable[bytes]], *, offset: int = 0) -> Iterator[bytes]:
        """Blocks of the pass from line ``offset``: replayed, filled while streaming, or streamed.

        ``source(offset)`` must yield the pass's blocks from line ``offset`` on. Only a pass from
        ``offset == 0`` can fill the cache (a resumed pass is not a complete chunk).
        """
        replay = self.replay(key, offset)
        if replay is not None:
            return replay
        if offset:
            return iter(source(offset))
        return self.fill(key, source(0))

    # -- bookkeeping -----------------------------------------------------------------------------
    def entries(self) -> list[CacheEntry]:
        """All promoted entries, least recently used first."""
        found: list[CacheEntry] = []
        for name in os.listdir(self.root):
            if not name.endswith(_DATA) or name.startswith("."):
                continue
            meta = self._load_meta(os.path.join(self.root, name[: -len(_DATA)] + _META))
            try:
                st = os.stat(os.path.join(self.root, name))
            except FileNotFoundError:
                continue
            if meta is None or not meta.describes(st):
                continue
            key = StreamKey(**meta.key)
            found.append(CacheEntry(key, os.path.join(self.root, name), st.st_size, meta.lines, st.st_mtime,
                                    tuple((int(a), int(b)) for a, b in meta.marks)))
        found.sort(key=lambda e: e.last_used)
        return found

    def total_bytes(self) -> int:
        """Bytes held by promoted entries."""
        total = 0
        for name in os.listdir(self.root):
            if name.endswith(_DATA) and not name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(self.root, name)).st_size
        return total

    def remove(self, key: StreamKey) -> bool:
        """Drop ``key``'s entry; True when there was one."""
        removed = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._data_path(key))
            removed = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._meta_path(key))
        return removed

    def evict(self, max_bytes: int | None = None) -> list[StreamKey]:
        """Remove least-recently-used entries until the total is within budget; returns their keys.

        Also removes temp files of dead passes and sidecars left without their data file.
        """
        budget = self.max_bytes if max_bytes is None else max_bytes
        removed: list[StreamKey] = []
        try:
            with FileLock(os.path.join(self._locks, "evict.lock"), timeout=10):
                self._sweep()
                entries = self.entries()
                total = sum(e.size for e in entries)
                for entry in entries:
                    if total <= budget:
                        break
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path[: -len(_DATA)] + _META)
                    total -= entry.size
                    removed.append(entry.key)
        except Timeout:  # another process is evicting right now; it will do the job
            pass
        return removed

    def _sweep(self) -> None:
        """Remove the temp files of dead passes and sidecars whose data file is gone."""
        now = time.time()
        names = os.listdir(self.root)
        present = set(names)
        for name in names:
            path = os.path.join(self.root, name)
            if name.startswith(".") and name.endswith(".tmp") and len(name) > 42:
                dead = _temp_is_dead(path, name[42:-4], now)
            elif name.endswith(_META) and not name.startswith(".") and name[: -len(_META)] + _DATA not in present:
                dead = _older_than(path, now, _ORPHAN_SECONDS)
            else:
                continue
            if dead:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def clear(self) -> None:
        """Remove every promoted entry."""
        self.evict(0)


class _Writer:
    """A cache file written by a thread, so that a pass's decoding never waits for the page cache.

    Why: writing a pass's copy costs about half as much as decoding it (fresh page-cache pages), and
    ``write`` releases the GIL, so in a thread it overlaps with the decode. Blocks are written in order; a
    failed write is raised at the next :meth:`write` or at :meth:`close`.
    """

    __slots__ = ("_file", "_queue", "_error", "_thread")

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_WRITES_AHEAD)
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="headwater-cache-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._file.write(block)
                except Exception as err:  # noqa: BLE001 - raised in the pass, at its next write or at close
                    self._error = err

    def write(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def close(self, *, sync: bool = False) -> int:
        """Wait for the writes, (fsync if ``sync``) and close; the file's inode. Raises a failed write."""
        try:
            if self._thread.is_alive():
                self._queue.put(None)
                self._thread.join()
            if self._error is not None:
                raise self._error
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
            return os.fstat(self._file.fileno()).st_ino
        finally:
            self._file.close()


def _older_than(path: str, now: float, seconds: float) -> bool:
    try:
        return now - os.stat(path).st_mtime > seconds
    except FileNotFoundError:
        return False


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running (a zombie — killed, not yet reaped — is not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def _temp_is_dead(path: str, owner: str, now: float) -> bool:
    """Whether the temp file at ``path`` (``owner``: ``PID-HOST-TOKEN``, or ``PID-TOKEN`` from older
    versions) belongs to a pass that can no longer complete."""
    if _older_than(path, now, STALE_TEMP_SECONDS):
        return True
    parts = owner.split("-")
    host = parts[1] if len(parts) == 3 else _HOST
    if host != _HOST or not parts[0].isdigit():
        return False  # another host's pass: only its age tells
    return not _pid_alive(int(parts[0]))


def _close(blocks: Iterable[bytes]) -> None:
    close = getattr(blocks, "close", None)
    if callable(close):
        close()


def _read_lines_from(f: BinaryIO, meta: _Meta, offset: int) -> Iterator[bytes]:
    """Blocks of whole lines from line ``offset``, seeking to the nearest mark first."""
    with f:
        line, pos = 0, 0
        for mark_line, mark_pos in meta.marks:
            if mark_line > offset:
                break
            line, pos = mark_line, mark_pos
        f.seek(pos)
        yield from skip_lines(frame_lines(iter(lambda: f.read(_READ_BLOCK), b"")), offset - line)
