"""Per-shard index JSON in the hfutils format, built in one streaming pass.

The format (what ``hfutils.index.tar_get_index_info`` writes, and what cheesechaser reads)::

    {"filesize": int, "hash": git-blob-sha1 of the tar, "hash_lfs": sha256 of the tar,
     "files": {member name: {"offset": int, "size": int, "sha256": hex}}}

Only regular members are listed (a caller that must say what else the tar held — symlinks, hardlinks,
devices, fifos — passes ``on_skipped``); a later member with the same name replaces an earlier one, as in
``tarfile``. Names are kept exactly as stored (``./a.png`` stays ``./a.png``) so that our index equals
hfutils' key for key; lookups normalise them (:func:`normalize_member_name`).

Example:
    >>> import io, tarfile
    >>> raw = io.BytesIO()
    >>> with tarfile.open(fileobj=raw, mode="w") as tar:
    ...     info = tarfile.TarInfo("1.png"); info.size = 3
    ...     tar.addfile(info, io.BytesIO(b"abc"))
    >>> data = raw.getvalue()
    >>> index_stream(io.BytesIO(data), len(data)).files["1.png"].offset
    512
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, cast

import msgspec

from .errors import ArchiveError, IndexFormatError, TarFormatError, TooManyMembersError
from .shard_digests import ShardDigests, git_blob_sha1_prefix
from .tarwalk import TarMember, walk_chunks

__all__ = [
    "FileEntry",
    "TarIndex",
    "index_stream",
    "index_tar",
    "index_tars",
    "IndexedShard",
    "usable_cores",
    "encode_index",
    "decode_index",
    "index_path_for",
    "normalize_member_name",
    "git_blob_sha1_prefix",
]


class FileEntry(msgspec.Struct, omit_defaults=True):
    """Where one member's data lies inside its tar."""

    offset: int
    size: int
    sha256: str | None = None


class TarIndex(msgspec.Struct):
    """The index of one tar shard (field order is the hfutils file's)."""

    filesize: int
    hash: str
    hash_lfs: str
    files: dict[str, FileEntry]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TarIndex)


def encode_index(index: TarIndex) -> bytes:
    """The index as JSON bytes, fields in hfutils order."""
    return _encoder.encode(index)


def decode_index(data: bytes, *, source: str = "<index>") -> TarIndex:
    """Parse an index JSON (ours or hfutils'), with an error that names ``source`` when it is malformed.

    Every member must lie inside the tar (``0 <= offset``, ``offset + size <= filesize``): an index comes
    from a store that may be damaged or hostile, and a member outside the file would make a reader ask for
    bytes the tar does not have (a negative offset is not even a valid range).

    >>> decode_index(b'{"filesize": 1024, "hash": "", "hash_lfs": "", "files": {"a": {"offset": 512, "size": 9}}}'
    ...              ).files["a"].size
    9
    >>> decode_index(b'{"filesize": 1024, "hash": "", "hash_lfs": "", "files": {"a": {"offset": -1, "size": 9}}}',
    ...              source="images/0001.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    headwater.archive.errors.IndexFormatError: images/0001.json: member 'a' (offset -1, size 9) lies outside the...
    """
    try:
        index = _decoder.decode(data)
    except msgspec.DecodeError as err:
        raise IndexFormatError(f"{source}: not a tar index: {err}") from None
    if index.filesize < 0:
        raise IndexFormatError(f"{source}: not a tar index: negative filesize {index.filesize}")
    for name, entry in index.files.items():
        if entry.offset < 0 or entry.size < 0 or entry.offset + entry.size > index.filesize:
            raise IndexFormatError(f"{source}: member {name!r} (offset {entry.offset}, size {entry.size}) lies "
                                   f"outside the {index.filesize}-byte tar; rebuild the index (headwater index)")
    return index


def index_stream(stream: BinaryIO, filesize: int, *, with_hash: bool = True, chunk_size: int = 1 << 20,
                 max_members: int | None = None,
                 on_skipped: Callable[[TarMember], None] | None = None) -> TarIndex:
    """Index a tar read front to back from ``stream`` whose total length is ``filesize``.

    Whole-file hashes and per-member sha256 are computed from the same bytes in the same pass, the two
    whole-file digests on threads of their own (:class:`.ShardDigests`) beside the walk; nothing is extracted
    and the stream is never re-read. ``max_members`` stops at the first header past
    that many (:class:`TooManyMembersError`), so an archive of millions of empty members costs no more
    memory than the cap: a server indexing untrusted uploads sets it. ``on_skipped`` sees every member that
    is neither a regular file nor a directory (a symlink, hardlink, device, fifo or unknown type): those are
    not in the index, and a caller that reports on a tar names them (``member.name``, ``member.kind``).
    """
    files: dict[str, FileEntry] = {}
    with ShardDigests(filesize, block_size=chunk_size) as digests:
        walk = walk_chunks(digests.read(stream), hash_members=with_hash)
        for headers, (member, digest) in enumerate(walk, 1):
            if max_members is not None and headers > max_members:
                raise TooManyMembersError(f"more than {max_members} members (the limit per shard)", member.offset)
            if member.isreg:
                files[member.name] = FileEntry(member.offset_data, member.size, digest)
            elif on_skipped is not None and not member.isdir:
                on_skipped(member)
        git, lfs = digests.hexdigests()
    if digests.seen != filesize:
        raise IndexFormatError(f"read {digests.seen} bytes but the file is said to be {filesize} bytes long")
    return TarIndex(filesize, git, lfs, files)


def index_tar(path: str | os.PathLike[str], *, with_hash: bool = True, max_members: int | None = None,
              on_skipped: Callable[[TarMember], None] | None = None) -> TarIndex:
    """Index a local tar file in one streaming pass (see :func:`index_stream`); a damaged file raises the
    error with the file's path in front of what is wrong."""
    with open(path, "rb", buffering=0) as f:
        return _index_file(f, os.fspath(path), with_hash=with_hash, max_members=max_members,
                           on_skipped=on_skipped)


def _index_file(f: BinaryIO, path: str, *, with_hash: bool = True, max_members: int | None = None,
                on_skipped: Callable[[TarMember], None] | None = None) -> TarIndex:
    try:
        return index_stream(f, os.fstat(f.fileno()).st_size, with_hash=with_hash, max_members=max_members,
                            on_skipped=on_skipped)
    except TarFormatError as err:
        raise type(err)(f"{path}: {err}", err.offset) from None
    except IndexFormatError as err:
        raise IndexFormatError(f"{path}: {err}") from None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or ``taskset`` narrows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class IndexedShard:
    """One tar of :func:`index_tars`: its index, or what is wrong with it, and the members left out."""

    path: str
    index: TarIndex | None
    error: ArchiveError | None = None
    skipped: list[TarMember] = field(default_factory=list)  # not regular files (symlinks, devices, …)


class _Stopped(Exception):
    """The caller of :func:`index_tars` has gone (an error, Ctrl-C): a worker stops at its next read."""


class _Watched:
    """A tar file as a worker reads it: reports the bytes read, and stops once the caller has gone."""

    def __init__(self, raw: BinaryIO, stop: threading.Event, on_bytes: Callable[[int], None]) -> None:
        self._raw, self._stop, self._on_bytes = raw, stop, on_bytes

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: memoryview) -> int:
        if self._stop.is_set():
            raise _Stopped
        n = cast(int, self._raw.readinto(buffer))  # type: ignore[attr-defined]
        self._on_bytes(n)
        return n


def index_tars(paths: Iterable[str], *, workers: int | None = None, with_hash: bool = True,
               on_progress: Callable[[int], None] | None = None) -> Generator[IndexedShard, None, None]:
    """Index local tar files, ``workers`` at once (default: :func:`usable_cores`), each as :func:`index_tar`
    does; yields one :class:`IndexedShard` per path, in the order given, as soon as it and those before it
    are done. A tar that is not valid gives its error in ``error``; any other failure (a file that cannot be
    opened) is raised.

    Why threads, not processes: each tar's three hashers run on threads that release the GIL (one walks
    and hashes the members, :class:`.ShardDigests` the whole file), so a few tars at once keep every core
    busy without copying indexes between processes. ``on_progress`` is told the bytes read, from the
    workers (one call at a time). Closing the iterator early (an error, Ctrl-C) stops the workers at their
    next read; no index is written here, so nothing is left half-done.
    """
    todo = iter(paths)
    stop = threading.Event()
    lock = threading.Lock()

    def progress(n: int) -> None:
        if on_progress is not None:
            with lock:
                on_progress(n)

    def one(path: str) -> IndexedShard:
        skipped: list[TarMember] = []
        with open(path, "rb", buffering=0) as raw:
            try:
                index = _index_file(cast(BinaryIO, _Watched(raw, stop, progress)), path, with_hash=with_hash,
                                    on_skipped=skipped.append)
            except ArchiveError as err:
                return IndexedShard(path, None, err, skipped)
        return IndexedShard(path, index, None, skipped)

    count = max(1, workers if workers is not None else usable_cores())
    pending: deque[Future[IndexedShard]] = deque()
    with ThreadPoolExecutor(count, thread_name_prefix="headwater-index") as pool:
        try:
            for path in todo:  # a few more than the workers in flight: results wait in order, memory stays low
                pending.append(pool.submit(one, path))
                if len(pending) > 2 * count:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            stop.set()
            for future in pending:
                future.cancel()


def index_path_for(tar_path: str) -> str:
    """``images/0234.tar`` → ``images/0234.json`` (the hfutils convention)."""
    body, _ = posixpath.splitext(tar_path)
    return body + ".json"


def normalize_member_name(name: str) -> str:
    """Canonical form of a member name for lookups: ``./a/b.png`` and ``a//b.png`` → ``a/b.png``."""
    return posixpath.normpath("/" + name).lstrip("/")
