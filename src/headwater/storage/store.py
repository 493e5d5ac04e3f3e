"""A store: one place where a pool's bytes live, opened from a URL through fsspec.

Supported URLs: a local path or ``file://…``; ``http(s)://host/prefix`` (range GETs, through
:mod:`~headwater.storage.http_ranges` rather than fsspec); ``s3://bucket/prefix``
(needs the ``s3`` extra); ``hf://datasets/owner/repo@revision`` (needs the ``hf`` extra). Every read goes
through a :class:`~headwater.storage.retry.RetryPolicy` and is counted in :attr:`Store.stats`, so callers
can report exactly how many requests a job made.

:meth:`Store.read_ranges` reads several ranges of one file: over plain HTTP in one GET with a multi-range
header (a multipart/byteranges answer), elsewhere one request per range. Whether a server really answers
multi-range GETs is learned from the first one (:attr:`Store.multi_range`); a server that ignores or
refuses them (Hugging Face's CDN and S3 do) gets one range per request from then on.

Example:
    >>> import tempfile, pathlib
    >>> root = tempfile.mkdtemp()
    >>> store = open_store(root)
    >>> store.put_bytes("a/b.txt", b"hello world")
    >>> store.read_range("a/b.txt", 6, 11)
    b'world'
    >>> store.stats.requests
    1
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..errors import MissingExtraError
from .atomic import atomic_path
from .errors import ReadOnlyStoreError, ShortReadError, StorageError, StoreNotFoundError, TruncatedFileError
from .http_ranges import HttpRangeReader, RangePieces
from .retry import RetryPolicy

__all__ = ["Store", "StoreStats", "open_store"]

T = TypeVar("T")


@dataclass
class StoreStats:
    """Counters of what a store did; thread-safe."""

    requests: int = 0
    bytes_read: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, requests: int = 0, bytes_read: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_read += bytes_read
            self.retries += retries


class Store:
    """Byte-range reads, listing and atomic writes under one root URL."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url.rstrip("/") if "://" in url else os.path.abspath(url)
        options = dict(storage_options or {})
        if self.url.startswith(("http://", "https://")):
            client = dict(options.pop("client_kwargs", {}))
            if headers:
                client["headers"] = {**client.get("headers", {}), **headers}
            options["client_kwargs"] = client
        self.fs, root = _filesystem(self.url, options)
        self.root = root.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.stats = StoreStats()
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.is_http = self.url.startswith(("http://", "https://"))
        # range reads of plain HTTP stores skip fsspec (see http_ranges); custom fsspec options keep it
        self._ranges = HttpRangeReader(headers) if self.is_http and not storage_options else None
        self._multi: bool | None = None if self._ranges is not None else False
        self._probe = threading.Lock()  # one multi-range GET at a time until the answer to one is known

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def full_path(self, path: str) -> str:
        """The backend path of ``path`` (relative to the store root)."""
        path = path.lstrip("/")
        return f"{self.root}/{path}" if path else self.root

    def describe(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"

    def _on_retry(self, _err: BaseException) -> None:
        self.stats.add(retries=1)

    def _call(self, fn: Callable[[], T], what: str) -> T:
        def attempt() -> T:
            self.stats.add(requests=1)
            return fn()

        return self.retry.call(attempt, what=what, on_retry=self._on_retry)

    def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``path`` in one request (retried); exactly ``end - start`` bytes.

        A file that ends before ``end`` raises :class:`~headwater.storage.errors.TruncatedFileError` at once,
        with the bytes that exist: a local file (a short read from a disk is a damaged file, not a flaky
        network), or a server whose ``Content-Range`` or 416 names a smaller size. A body cut on the way
        (fewer bytes than the server announced) is a :class:`ShortReadError` and retried.
        """
        want = end - start
        if want <= 0:
            return b""
        full = self.full_path(path)

        def get() -> bytes:
            if self._ranges is not None:
                data = self._ranges.read(full, start, end)
            else:
                data = self.fs.cat_file(full, start=start, end=end)
            if len(data) > want and len(data) >= end:  # the server ignored Range and sent everything
                data = data[start:end]
            if len(data) < want and self.is_local:
                raise TruncatedFileError(self.describe(path), start, end, data, os.path.getsize(full))
            if len(data) != want:
                raise ShortReadError(f"{self.describe(path)} [{start}:{end}): got {len(data)} of {want} bytes")
            return data

        data = self._call(get, f"{self.describe(path)} bytes {start}-{end - 1}")
        self.stats.add(bytes_read=len(data))
        return data

    @property
    def multi_range(self) -> bool | None:
        """Can one request carry several ranges? True: a server answered one with multipart/byteranges;
        False: not an HTTP store, or its server ignored or refused one; None: not known yet (the next
        :meth:`read_ranges` finds out)."""
        return self._multi

    def read_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Bytes ``[start, end)`` of ``path`` for each of ``ranges``, exactly; one request when possible.

        :meth:`fetch_ranges`, then every range its answer did not cover read one per request (so a
        server that only honours the first range, or sends the whole file, costs no wrong bytes).
        """
        ranges = list(ranges)
        got = self.fetch_ranges(path, ranges)
        return [data if data is not None else self.read_range(path, a, b)
                for data, (a, b) in zip(got, ranges, strict=True)]

    def fetch_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes | None]:
        """Bytes ``[start, end)`` for each of ``ranges`` from one multi-range request (retried), None for
        a range the answer did not cover — all None, without a request, when :attr:`multi_range` is False.

        Every returned range is cut from bytes the server sent for exactly that offset (parts matched by
        their ``Content-Range``, in whatever order they came). While support is unknown only one thread
        asks (the others wait for its answer): a server without it is asked that way once, not once per
        worker thread. Callers with a better plan for the rest (merged single-range reads) use this.
        """
        ranges = list(ranges)
        asked = sorted({(a, b) for a, b in ranges if b > a})
        if len(asked) < 2:  # nothing to learn from, nothing to gain: a plain range read
            pieces = [(a, self.read_range(path, a, b)) for a, b in asked]
            return [_cut(pieces, a, b) for a, b in ranges]
        if self._multi is None:
            with self._probe:
                if self._multi is None:
                    return self._fetch_multi(path, ranges, asked)
        if self._multi is False:
            return [None] * len(ranges)
        return self._fetch_multi(path, ranges, asked)

    def learn_multi_range(self, path: str) -> bool | None:
        """:attr:`multi_range`, asking the server first if it is not known yet: one GET for two bytes of
        ``path`` (a file that exists and holds at least 4 bytes), one attempt, never raising.

        Why: until the answer is known, the first multi-range read of a batch runs alone (see
        :meth:`fetch_ranges`) — one round trip, plus a shard prefix when the server sends whole files, before
        the other reads may start. A batch download asks this in the background while it fetches the pool
        manifest, so that its reads all start at once. Still None when the answer said nothing (the file is
        missing or shorter, the request failed); then the first real read finds out as before.
        """
        if self._multi is not None or self._ranges is None:
            return self._multi
        reader = self._ranges
        with self._probe:
            if self._multi is None:
                try:
                    url = self.full_path(path)  # (a Hub store pins its revision here: no request of ours yet)
                    self.stats.add(requests=1)
                    got = reader.read_many(url, [(0, 1), (2, 3)])
                except Exception:  # noqa: BLE001 - one attempt; the first real read asks again, with retries
                    return None
                self.stats.add(bytes_read=sum(len(data) for _, data in got.pieces))
                covered = all(_cut(got.pieces, a, a + 1) is not None for a in (0, 2))
                if got.multipart or (not got.whole and covered):
                    self._multi = True  # as in _fetch_multi: multipart, or one part covering both (coalesced)
                elif got.whole or got.refused or got.pieces:
                    self._multi = False  # the whole file, refused, or only one of the ranges
        return self._multi

    def _fetch_multi(self, path: str, ranges: list[tuple[int, int]],
                     asked: list[tuple[int, int]]) -> list[bytes | None]:
        assert self._ranges is not None
        reader, full = self._ranges, self.full_path(path)
        got: RangePieces = self._call(lambda: reader.read_many(full, asked),
                                      f"{self.describe(path)} {len(asked)} ranges")
        self.stats.add(bytes_read=sum(len(data) for _, data in got.pieces))
        out = [_cut(got.pieces, a, b) for a, b in ranges]
        if got.multipart or (not got.whole and got.pieces and all(data is not None for data in out)):
            self._multi = True  # a multipart answer, or one part that covers every range (coalesced)
        elif not got.short:
            self._multi = False  # refused (400/416), the whole file (200) or only some of the ranges
        return out

    def read_bytes(self, path: str) -> bytes:
        """The whole object (one request, retried)."""
        full = self.full_path(path)
        data: bytes = self._call(lambda: self.fs.cat_file(full), self.describe(path))
        self.stats.add(bytes_read=len(data))
        return data

    def open(self, path: str) -> BinaryIO:
        """A forward-readable file object, for streaming a whole shard (e.g. to verify it)."""
        full = self.full_path(path)
        stream: BinaryIO = self._call(lambda: self.fs.open(full, "rb", block_size=8 << 20), self.describe(path))
        return stream

    def info(self, path: str) -> dict[str, Any]:
        """Backend metadata of ``path`` (size, and for HTTP the ``ETag``/``Last-Modified`` headers)."""
        full = self.full_path(path)
        return dict(self._call(lambda: self.fs.info(full), self.describe(path)))

    def size(self, path: str) -> int:
        full = self.full_path(path)
        return int(self._call(lambda: self.fs.size(full), self.describe(path)))

    def exists(self, path: str) -> bool:
        full = self.full_path(path)
        return bool(self._call(lambda: self.fs.exists(full), self.describe(path)))

    def root_exists(self) -> bool | None:
        """Whether anything is at the store's root (a folder, a bucket prefix holding objects); None when
        the protocol cannot tell (plain HTTP has no listing)."""
        if self.is_http:
            return None
        if self.is_local:
            return os.path.isdir(self.root)
        return bool(self._call(lambda: self.fs.exists(self.root), self.url))

    def find(self, suffix: str = "") -> list[str]:
        """Every file below the root whose name ends with ``suffix``, as sorted relative paths."""
        found = self._call(lambda: self.fs.find(self.root), self.url)
        prefix = self.root + "/"
        rel = [p[len(prefix):] if p.startswith(prefix) else p for p in found]
        return sorted(p for p in rel if p.endswith(suffix))

    def local_path(self, path: str) -> str | None:
        """A filesystem path for ``path`` when the store is local (lets callers mmap or sqlite-open it)."""
        return self.full_path(path) if self.is_local else None

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` so that readers see either the old object or the whole new one, never a part."""
        if self.is_local:
            with atomic_path(self.full_path(path)) as tmp, open(tmp, "wb") as f:
                f.write(data)
            return
        if self.is_http:
            raise ReadOnlyStoreError(f"cannot write to {self.url}: plain HTTP stores are read-only")
        full = self.full_path(path)
        self._call(lambda: self.fs.pipe_file(full, data), self.describe(path))  # object PUTs are atomic

    def put_file(self, path: str, local_file: str) -> None:
        """Upload (or copy) a local file atomically."""
        if self.is_local:
            target = self.full_path(path)
            if os.path.abspath(local_file) != os.path.abspath(target):
                with atomic_path(target) as tmp:
                    self.fs.cp_file(local_file, tmp)
            return
        if self.is_http:
            raise ReadOnlyStoreError(f"cannot write to {self.url}: plain HTTP stores are read-only")
        full = self.full_path(path)
        self._call(lambda: self.fs.put_file(local_file, full), self.describe(path))

    def version(self, path: str) -> str | None:
        """What identifies the current content of ``path`` (S3: its ETag), asked of the store itself (never
        from a listing cache); None when there is nothing at ``path``. Read it *before* reading the content
        that a :meth:`put_file_if_unchanged` is to replace."""
        full = self.full_path(path)
        invalidate = getattr(self.fs, "invalidate_cache", None)
        if invalidate is not None:
            invalidate(full)
        try:
            info = self.info(path)
        except StoreNotFoundError:
            return None
        etag = info.get("ETag") or info.get("etag")
        if etag:
            return str(etag)
        return f"{info.get('size')}:{info.get('mtime') or info.get('LastModified') or info.get('last_modified')}"

    @property
    def conditional_writes(self) -> bool:
        """Does :meth:`put_file_if_unchanged` really check (S3), or write unconditionally (other stores)?"""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple | list) else (self.fs.protocol,)
        return any(p in ("s3", "s3a") for p in protocols)

    def put_file_if_unchanged(self, path: str, local_file: str, version: str | None) -> bool:
        """Upload a local file to ``path`` only if the object there is still at ``version`` (from
        :meth:`version`; None: only if there is still none); False, writing nothing, when another writer
        changed it first.

        S3 checks the condition in the PUT itself (``If-Match: <ETag>``, or ``If-None-Match: *``), so two
        writers can never both win. Stores without conditional writes (:attr:`conditional_writes` False)
        write unconditionally and return True: there the last writer wins. A local store is not meant for
        this (lock instead: :func:`headwater.archive.manifest_lock`)."""
        if not self.conditional_writes:
            self.put_file(path, local_file)
            return True
        full = self.full_path(path)
        with open(local_file, "rb") as f:
            data = f.read()
        condition: dict[str, Any] = {"mode": "create"} if version is None else {"IfMatch": version}
        try:
            self._call(lambda: self.fs.pipe_file(full, data, **condition), self.describe(path))
        except (FileExistsError, StoreNotFoundError):  # created meanwhile / deleted meanwhile
            return False
        except OSError as err:
            cause = err.__cause__ or err.__context__
            code = getattr(cause, "response", {}).get("Error", {}).get("Code") if cause is not None else None
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True


_EXTRAS = {"s3": ("s3", "s3fs"), "s3a": ("s3", "s3fs"), "hf": ("hf", "huggingface_hub")}


def _filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    """fsspec's filesystem and root for ``url``; a backend whose package is missing is named with the
    headwater extra that installs it (fsspec's own message names only the package)."""
    try:
        found: tuple[Any, str] = fsspec.core.url_to_fs(url, **options)
        return found
    except ImportError as err:
        protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
        if protocol in _EXTRAS:
            extra, module = _EXTRAS[protocol]
            raise MissingExtraError(extra, module, f"reading {protocol}:// stores") from err
        raise StorageError(f"cannot open {url}: {err}") from err
    except ValueError as err:  # e.g. "Protocol not known: foo"
        raise StorageError(f"cannot open {url}: {err}") from err


def _cut(pieces: list[tuple[int, bytes]], start: int, end: int) -> bytes | None:
    """Bytes ``[start, end)`` from the first piece ``(offset, data)`` that holds all of them, else None."""
    if end <= start:
        return b""
    for offset, data in pieces:
        if offset <= start and end <= offset + len(data):
            return data if (offset, len(data)) == (start, end - start) else data[start - offset : end - offset]
    return None


def open_store(url: str, **kwargs: Any) -> Store:
    """Open a store from a URL or local path; keyword arguments go to :class:`Store`."""
    return Store(url, **kwargs)
