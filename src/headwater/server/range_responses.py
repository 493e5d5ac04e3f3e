"""HTTP ``Range`` requests for pool files: parse byte ranges, stream the bytes from a store in chunks.

What is answered (RFC 9110 §14, the part Hub clients use):

* ``bytes=a-b``, ``bytes=a-``, ``bytes=-n`` → one range (``b`` is clamped to the last byte) → 206 with
  ``Content-Range: bytes a-b/size``;
* a range that starts at or after the end, or ``bytes=-0``, or any range of an empty file →
  :class:`RangeNotSatisfiable` (the route answers 416 with ``Content-Range: bytes */size``);
* several ranges (``bytes=0-1,5-6``, GET only — :func:`parse_ranges`): each is resolved as above and the
  unsatisfiable ones are dropped (416 only when none is left); ranges that overlap, touch or are not in
  ascending order are sorted and coalesced (RFC 9110 §14.6 allows it), so a request of many overlapping
  ranges cannot multiply the bytes sent. One range left → a plain 206; several → 206
  ``multipart/byteranges`` (:class:`Multipart`: one part per range, each with ``Content-Type`` and
  ``Content-Range``; ``Content-Length`` is computed up front). More than :data:`MAX_RANGES` ranges →
  ``None``, the whole file with 200 (RFC 9110 lets a server ignore ``Range``; a 416 would claim that the
  ranges do not exist). :func:`parse_range` (HEAD) still answers several ranges with ``None``;
* anything else (another unit, garbage, ``b < a``) → :class:`MalformedRange` (400, with the reason).

Bodies are read in chunks (:data:`CHUNK` locally, :data:`REMOTE_CHUNK` per ranged GET on S3/HTTP), never a
whole shard at once; a file opened locally is refused if it is a symlink or resolves outside the pool.

Example:
    >>> parse_range("bytes=10-19", 100), parse_range("bytes=90-", 100), parse_range("bytes=-5", 100)
    ((10, 19), (90, 99), (95, 99))
    >>> parse_range(None, 100) is None, parse_range("bytes=0-1,4-5", 100) is None
    (True, True)
    >>> parse_ranges("bytes=0-1,4-5,200-", 100), parse_ranges("bytes=50-59,0-9,5-19", 100)
    ([(0, 1), (4, 5)], [(0, 19), (50, 59)])
    >>> parse_range("bytes=100-", 100)
    Traceback (most recent call last):
    ...
    headwater.server.errors.RangeNotSatisfiable: range 'bytes=100-' starts at or after the end of a 100-byte file
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from ..storage import ShortReadError, Store
from .errors import MalformedRange, RangeNotSatisfiable
from .limits import PacedStreamingResponse

__all__ = [
    "CHUNK", "REMOTE_CHUNK", "SMALL_BODY", "MAX_RANGES", "read_small",
    "parse_range", "parse_ranges", "iter_file", "BodyResponse", "Multipart", "read_multipart", "iter_multipart",
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

MAX_RANGES = 256
"""Most ranges answered as multipart/byteranges; a longer list gets the whole file (200). Headwater's own
client sends at most 100 per request; 256 ranges of one file in one request is a broken client or an
attempt to make the server do many small reads for one request."""

_SPEC = re.compile(r"(\d*)-(\d*)")
_HUGE = 10**18  # past any file; a position with more digits means the same (and int() of 5000 digits fails)


def _pos(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _HUGE


def _shown(header: str) -> str:
    return repr(header if len(header) <= 100 else header[:100] + "…")


def _specs(header: str) -> list[tuple[str, str]]:
    """The ``(first, last)`` strings of each range-spec of a ``bytes=`` header (either may be empty)."""
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise MalformedRange(f"malformed Range header {_shown(header)}: expected 'bytes=first-last'")
    parts = [p.strip() for p in spec.split(",")]
    matches = [_SPEC.fullmatch(p) for p in parts]
    specs: list[tuple[str, str]] = []
    for m in matches:
        if m is None or (not m.group(1) and not m.group(2)):
            raise MalformedRange(f"malformed Range header {_shown(header)}: "
                                 "expected 'bytes=first-last', 'first-' or '-suffix'")
        specs.append((m.group(1), m.group(2)))
    for first, last in specs:
        if first and last and _pos(last) < _pos(first):
            raise MalformedRange(f"malformed Range header {_shown(header)}: the last byte is before the first")
    return specs


def _resolve(first: str, last: str, size: int) -> tuple[int, int] | None:
    """Inclusive positions of one range-spec in a ``size``-byte file, or None if no byte of it exists."""
    if first:
        start = _pos(first)
        if start >= size:
            return None
        return start, min(_pos(last), size - 1) if last else size - 1
    suffix = _pos(last)
    if suffix == 0 or size == 0:
        return None
    return max(0, size - suffix), size - 1


def _unsatisfiable(header: str, specs: list[tuple[str, str]], size: int) -> RangeNotSatisfiable:
    if len(specs) == 1 and specs[0][0]:
        return RangeNotSatisfiable(f"range {_shown(header.strip())} starts at or after the end of a {size}-byte file",
                                   size)
    return RangeNotSatisfiable(f"range {_shown(header.strip())} selects no byte of a {size}-byte file", size)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions a ``Range`` header asks for, or None (whole file).

    Several ranges give None: this is the answer for HEAD, which has no body to split into parts.
    """
    if header is None or not header.strip():
        return None
    specs = _specs(header)
    if len(specs) > 1:
        return None  # several ranges: answered with the whole file (allowed by RFC 9110)
    wanted = _resolve(*specs[0], size)
    if wanted is None:
        raise _unsatisfiable(header, specs, size)
    return wanted


def parse_ranges(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The inclusive ``(first, last)`` ranges a GET's ``Range`` header asks for, ascending and disjoint,
    or None (the whole file: no header, or more than :data:`MAX_RANGES` ranges).

    Unsatisfiable ranges are dropped (:class:`RangeNotSatisfiable` only if none is left); overlapping or
    touching ones are coalesced, so no byte is sent twice.
    """
    if header is None or not header.strip():
        return None
    specs = _specs(header)
    if len(specs) > MAX_RANGES:
        return None
    wanted = sorted(r for r in (_resolve(first, last, size) for first, last in specs) if r is not None)
    if not wanted:
        raise _unsatisfiable(header, specs, size)
    merged = [wanted[0]]
    for first, last in wanted[1:]:
        if first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


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


@dataclass(frozen=True, slots=True)
class Multipart:
    """The layout of a multipart/byteranges body: the bytes around each part are known before any file
    byte is read, so ``Content-Length`` is exact and the parts can be streamed.

    Example:
        >>> mp = Multipart.of([(0, 1), (5, 6)], 10, "application/x-tar", boundary="B")
        >>> mp.heads[1]
        b'\\r\\n--B\\r\\nContent-Type: application/x-tar\\r\\nContent-Range: bytes 5-6/10\\r\\n\\r\\n'
        >>> mp.content_type, mp.payload, mp.length == sum(map(len, mp.heads)) + 4 + len(mp.tail)
        ('multipart/byteranges; boundary=B', 4, True)
    """

    ranges: list[tuple[int, int]]
    heads: list[bytes]
    tail: bytes
    boundary: str

    @classmethod
    def of(cls, ranges: list[tuple[int, int]], size: int, part_type: str, *, boundary: str | None = None) -> Multipart:
        """The body for the inclusive ``ranges`` of a ``size``-byte file of type ``part_type``.

        The boundary is random (RFC 2046 only asks that it not occur in the data; 24 random hex digits
        make that as good as certain)."""
        boundary = boundary or secrets.token_hex(12)
        crlf = "\r\n"  # a part's head starts with the CRLF that ends the previous part's bytes
        heads = [
            f"{crlf if i else ''}--{boundary}{crlf}Content-Type: {part_type}{crlf}"
            f"Content-Range: bytes {first}-{last}/{size}{crlf}{crlf}".encode("latin-1")
            for i, (first, last) in enumerate(ranges)
        ]
        return cls(ranges, heads, f"{crlf}--{boundary}--{crlf}".encode("latin-1"), boundary)

    @property
    def content_type(self) -> str:
        return f"multipart/byteranges; boundary={self.boundary}"

    @property
    def payload(self) -> int:
        """File bytes in the body."""
        return sum(last - first + 1 for first, last in self.ranges)

    @property
    def length(self) -> int:
        """The whole body's length (the ``Content-Length``)."""
        return sum(map(len, self.heads)) + self.payload + len(self.tail)


def read_multipart(store: Store, path: str, mp: Multipart) -> bytes:
    """The whole multipart body at once (for payloads up to :data:`SMALL_BODY`): one descriptor for every
    part of a local file, one multi-range read of a remote store."""
    spans = [(first, last + 1) for first, last in mp.ranges]
    if store.is_local:
        fd = _open_local(store, path)
        try:
            datas = [os.pread(fd, end - start, start) for start, end in spans]
        finally:
            os.close(fd)
        for data, (start, end) in zip(datas, spans, strict=True):
            if len(data) != end - start:
                raise ShortReadError(f"{store.describe(path)}: got {len(data)} of {end - start} bytes at {start}")
    else:
        datas = store.read_ranges(path, spans)
    pieces: list[bytes] = []
    for head, data in zip(mp.heads, datas, strict=True):
        pieces += (head, data)
    pieces.append(mp.tail)
    return b"".join(pieces)


def iter_multipart(store: Store, path: str, mp: Multipart, *, chunk: int = CHUNK) -> Iterator[bytes]:
    """The multipart body in chunks (each part through :func:`iter_file`); closeable like it.

    The first part's file is opened here, before anything is sent, so a vanished file is a clean error.
    """
    return _MultipartChunks(store, path, mp, chunk)


class _MultipartChunks:
    """Part heads and part bytes in order; ``close`` (client gone) closes the part being read. A lock
    keeps ``close`` from racing a read in another thread, as in :class:`_LocalChunks`."""

    def __init__(self, store: Store, path: str, mp: Multipart, chunk: int) -> None:
        self.store, self.path, self.chunk = store, path, chunk
        self._todo: deque[bytes | tuple[int, int] | Iterator[bytes]] = deque()
        for i, (head, (first, last)) in enumerate(zip(mp.heads, mp.ranges, strict=True)):
            self._todo.append(head)
            self._todo.append(iter_file(store, path, first, last + 1, chunk=chunk) if i == 0 else (first, last + 1))
        self._todo.append(mp.tail)
        self._part: Iterator[bytes] | None = None
        self._lock = threading.Lock()

    def __iter__(self) -> _MultipartChunks:
        return self

    def __next__(self) -> bytes:
        with self._lock:
            try:
                return self._next()
            except BaseException:  # StopIteration, or a read error that cuts the response
                self._close()
                raise

    def _next(self) -> bytes:
        while True:
            if self._part is not None:
                data = next(self._part, None)
                if data is not None:
                    return data
                self._part = None
            if not self._todo:
                raise StopIteration
            piece = self._todo.popleft()
            if isinstance(piece, bytes):
                return piece
            self._part = (iter_file(self.store, self.path, *piece, chunk=self.chunk) if isinstance(piece, tuple)
                          else piece)

    def _close(self) -> None:
        for it in [self._part, *self._todo]:
            close = getattr(it, "close", None)  # part iterators (heads and pending ranges have none)
            if close is not None:
                close()
        self._part = None
        self._todo.clear()

    def close(self) -> None:
        with self._lock:
            self._close()

    def __del__(self) -> None:
        self._close()


class BodyResponse(PacedStreamingResponse):
    """A streamed file body whose iterator is closed when the response ends, however it ends — a client
    that hangs up mid-download releases its file descriptor at once instead of whenever GC runs. Paced: a
    client that stops reading holds at most one chunk (:class:`~headwater.server.limits.PacedStreamingResponse`)."""

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
