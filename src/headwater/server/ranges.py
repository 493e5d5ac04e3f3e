"""HTTP ``Range`` requests for pool files: parse one byte range, stream the bytes from a store in chunks.

What is answered (RFC 9110 §14, the part Hub clients use):

* ``bytes=a-b``, ``bytes=a-``, ``bytes=-n`` → one range (``b`` is clamped to the last byte) → 206 with
  ``Content-Range: bytes a-b/size``;
* a range that starts at or after the end, or ``bytes=-0``, or any range of an empty file →
  :class:`RangeNotSatisfiable` (the route answers 416 with ``Content-Range: bytes */size``);
* several ranges (``bytes=0-1,5-6``) → ``None``: the whole file with 200. RFC 9110 lets a server ignore
  ``Range``; multipart/byteranges bodies are not produced because no Hub client asks for them;
* anything else (another unit, garbage, ``b < a``) → :class:`MalformedRange` (400, with the reason).

Bodies are read in chunks (:data:`CHUNK` locally, :data:`REMOTE_CHUNK` per ranged GET on S3/HTTP), never a
whole shard at once; a file opened locally is refused if it is a symlink or resolves outside the pool.

Example:
    >>> parse_range("bytes=10-19", 100), parse_range("bytes=90-", 100), parse_range("bytes=-5", 100)
    ((10, 19), (90, 99), (95, 99))
    >>> parse_range(None, 100) is None, parse_range("bytes=0-1,4-5", 100) is None
    (True, True)
    >>> parse_range("bytes=100-", 100)
    Traceback (most recent call last):
    ...
    headwater.server.ranges.RangeNotSatisfiable: range 'bytes=100-' starts at or after the end of a 100-byte file
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..errors import HeadwaterError
from ..storage import Store
from ..storage.store import ShortReadError

__all__ = [
    "CHUNK", "REMOTE_CHUNK", "SMALL_BODY", "read_small", "RangeNotSatisfiable", "MalformedRange", "parse_range", "iter_file", "BodyResponse",
]

CHUNK = 4 << 20
"""Bytes per read of a streamed local body. Each chunk costs a worker-thread hop, a ``pread`` and a send
through the ASGI stack: measured on loopback, 1 MiB chunks spent more server CPU on those than on the bytes
(a 3 MB range read of a batch download cost ~35% more than in one 4 MiB chunk). 4 MiB keeps the memory of
one response small while making that overhead negligible."""
REMOTE_CHUNK = 8 << 20
SMALL_BODY = 4 << 20
"""Bodies up to this size are read at once and sent in one message (no streaming machinery: no task group,
no disconnect listener, one thread hop). The merged range reads of a batch download are mostly below it;
it is at most one :data:`CHUNK`, so memory per response is the same on either path."""

_SPEC = re.compile(r"(\d*)-(\d*)")


class RangeNotSatisfiable(HeadwaterError):
    """No byte of the requested range exists (416)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class MalformedRange(HeadwaterError, ValueError):
    """The ``Range`` header cannot be parsed (400)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions a ``Range`` header asks for, or None (whole file)."""
    if header is None or not header.strip():
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise MalformedRange(f"malformed Range header {header!r}: expected 'bytes=first-last'")
    parts = [p.strip() for p in spec.split(",")]
    matches = [_SPEC.fullmatch(p) for p in parts]
    if any(m is None or (not m.group(1) and not m.group(2)) for m in matches):
        raise MalformedRange(f"malformed Range header {header!r}: expected 'bytes=first-last', 'first-' or '-suffix'")
    for m in matches:
        assert m is not None
        if m.group(1) and m.group(2) and int(m.group(2)) < int(m.group(1)):
            raise MalformedRange(f"malformed Range header {header!r}: the last byte is before the first")
    if len(matches) > 1:
        return None  # several ranges: answered with the whole file (allowed by RFC 9110)
    m = matches[0]
    assert m is not None
    if m.group(1):
        first = int(m.group(1))
        last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if first >= size:
            raise RangeNotSatisfiable(f"range {header.strip()!r} starts at or after the end of a {size}-byte file", size)
        return first, last
    suffix = int(m.group(2))
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable(f"range {header.strip()!r} selects no byte of a {size}-byte file", size)
    return max(0, size - suffix), size - 1


def _open_local(store: Store, path: str) -> int:
    """A file descriptor for ``path`` under a local store's root; symlinks and escapes are refused."""
    root = os.path.realpath(store.root)
    full = store.full_path(path)
    real = os.path.realpath(full)
    if not real.startswith(root + os.sep):
        raise PermissionError(f"{path!r} resolves outside the pool")
    return os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


def read_small(store: Store, path: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of ``path`` in one read (for bodies up to :data:`SMALL_BODY`)."""
    if store.is_local:
        fd = _open_local(store, path)
        try:
            data = os.pread(fd, end - start, start)
        finally:
            os.close(fd)
        if len(data) != end - start:
            raise ShortReadError(f"{store.describe(path)}: got {len(data)} of {end - start} bytes at {start}")
        return data
    return store.read_range(path, start, end)


def iter_file(store: Store, path: str, start: int, end: int, *, chunk: int = CHUNK) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of ``path`` in chunks.

    A local file is opened here, before the first byte is sent (so a vanished file is still a clean
    error); later, a file that got shorter raises :class:`ShortReadError` and the response is cut (the
    client sees fewer bytes than ``Content-Length`` promised, never other bytes).
    """
    if store.is_local:
        fd = _open_local(store, path)
        return _LocalChunks(store, path, fd, start, end, chunk)
    return _remote_chunks(store, path, start, end)


class _LocalChunks:
    """An iterator over an open descriptor that closes it when done, on error, when closed by the response
    (client gone), or when dropped unstarted. A lock keeps ``close`` from racing a read in another thread
    (a closed descriptor number could be reused by another file)."""

    def __init__(self, store: Store, path: str, fd: int, start: int, end: int, chunk: int) -> None:
        self.store, self.path, self.fd, self.pos, self.end, self.chunk = store, path, fd, start, end, chunk
        self._lock = threading.Lock()

    def __iter__(self) -> _LocalChunks:
        return self

    def __next__(self) -> bytes:
        with self._lock:
            if self.fd < 0 or self.pos >= self.end:
                self._close()
                raise StopIteration
            try:
                data = os.pread(self.fd, min(self.chunk, self.end - self.pos), self.pos)
            except BaseException:
                self._close()
                raise
            if not data:
                self._close()
                raise ShortReadError(f"{self.store.describe(self.path)} ended at byte {self.pos}, expected {self.end}")
            self.pos += len(data)
            return data

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        with self._lock:
            self._close()

    def __del__(self) -> None:
        self._close()


def _remote_chunks(store: Store, path: str, start: int, end: int) -> Iterator[bytes]:
    pos = start
    while pos < end:
        stop = min(end, pos + REMOTE_CHUNK)
        yield store.read_range(path, pos, stop)
        pos = stop


class BodyResponse(StreamingResponse):
    """A streamed file body whose iterator is closed when the response ends, however it ends — a client
    that hangs up mid-download releases its file descriptor at once instead of whenever GC runs."""

    def __init__(self, chunks: Iterator[bytes], **kwargs: Any) -> None:
        self._chunks = chunks
        super().__init__(chunks, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
