"""Write one tar shard and its index in the same pass (no re-read to hash).

Headers come from :meth:`tarfile.TarInfo.tobuf` (pax records only where a name needs them) with fixed
owner, mode and mtime, so the same inputs always give byte-identical shards. Each source file is read
straight into the block of the shard being assembled (``readinto``) and hashed there for its member's
sha256; each full block is written out and handed to :class:`.ShardDigests`, which computes the shard's
sha1 (git blob) and sha256 (LFS) on two threads of their own while the next block is filled. The git hash
needs the shard's length up front; :func:`archive_size` gives it exactly from the members' footprints,
so nothing is read twice. The result is renamed into place only when complete.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> src = os.path.join(d, "1.txt"); _ = open(src, "wb").write(b"hello")
    >>> total = archive_size(member_footprint("1.txt", 5))
    >>> with ShardWriter(os.path.join(d, "out.tar"), total) as w:
    ...     _ = w.add_file("1.txt", src)
    >>> w.index.files["1.txt"].offset, w.index.files["1.txt"].size
    (512, 5)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
from types import TracebackType
from typing import BinaryIO

from ..storage import atomic_path
from .errors import ArchiveError
from .index import FileEntry, TarIndex, encode_index, index_path_for
from .shard_digests import ShardDigests
from .tarwalk import BLOCK, block_ceil

__all__ = ["ShardWriter", "member_header", "member_footprint", "archive_size"]

_RECORD = 20 * BLOCK


def member_header(name: str, size: int) -> bytes:
    """The deterministic header bytes (pax records included) for a regular member."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def member_footprint(name: str, size: int) -> int:
    """Bytes a member takes in the shard: its header(s) plus padded data."""
    return len(member_header(name, size)) + block_ceil(size)


def archive_size(members_footprint: int) -> int:
    """Total shard size for members taking ``members_footprint`` bytes (end marker + record padding)."""
    raw = members_footprint + 2 * BLOCK
    return (raw + _RECORD - 1) // _RECORD * _RECORD


class ShardWriter:
    """Context manager writing ``<name>.tar`` and ``<name>.json`` atomically, index computed on the fly."""

    def __init__(self, tar_path: str, total_size: int, *, chunk_size: int = 1 << 20) -> None:
        self.tar_path = tar_path
        self.total_size = total_size
        self.index_path = index_path_for(tar_path)
        self.index: TarIndex | None = None
        self._files: dict[str, FileEntry] = {}
        self._digests = ShardDigests(total_size, block_size=chunk_size)
        self._block = memoryview(b"")  # the block being filled, written out when full
        self._filled = 0
        self._pos = 0
        self._ctx = atomic_path(tar_path)
        self._tmp: str | None = None
        self._out: BinaryIO | None = None

    def __enter__(self) -> ShardWriter:
        self._tmp = self._ctx.__enter__()
        try:
            self._out = open(self._tmp, "wb")
            self._digests.__enter__()
            self._block = self._digests.block()
        except BaseException as err:
            self._digests.close()
            if self._out is not None:
                self._out.close()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def _space(self) -> memoryview:
        """The free rest of the current block (a fresh block once it is full)."""
        if self._filled == len(self._block):
            self._flush()
        return self._block[self._filled :]

    def _flush(self) -> None:
        """Write the filled part of the block and hand it to the digest threads."""
        assert self._out is not None
        if self._filled:
            view = self._block[: self._filled]
            self._out.write(view)
            self._digests.update(view)
        self._block, self._filled = self._digests.block(), 0

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            space = self._space()
            k = min(len(space), len(view))
            space[:k] = view[:k]
            self._filled += k
            self._pos += k
            view = view[k:]

    def add_file(self, name: str, src_path: str, size: int | None = None) -> FileEntry:
        """Append ``src_path`` as member ``name``; ``size`` (if given) is what the plan assumed."""
        actual = os.path.getsize(src_path)
        if size is not None and actual != size:
            raise OSError(f"{src_path} changed while packing: {actual} bytes, {size} planned")
        return self._add(name, src_path, 0, actual)

    def copy_member(self, name: str, shard_path: str, offset: int, size: int, sha256: str | None) -> FileEntry:
        """Append ``size`` bytes at ``offset`` of another shard as member ``name`` (a member kept when a shard
        is rewritten); :class:`~headwater.archive.ArchiveError` when they do not hash to ``sha256``, so a
        damaged member is never carried over as if it were intact."""
        entry = self._add(name, shard_path, offset, size)
        if sha256 is not None and entry.sha256 != sha256:
            raise ArchiveError(f"{shard_path}: member {name!r} does not match its index (sha256 {entry.sha256}, "
                               f"indexed {sha256}); run `headwater verify` on the pool before adding to it")
        return entry

    def _add(self, name: str, src_path: str, start: int, size: int) -> FileEntry:
        self._write(member_header(name, size))
        offset = self._pos
        member = hashlib.sha256()
        done = 0
        with open(src_path, "rb", buffering=0) as src:
            if start:
                src.seek(start)
            while done < size:
                space = self._space()
                got = src.readinto(space[: min(len(space), size - done)])
                if not got:
                    raise OSError(f"{src_path} shrank while being packed ({done} of {size} bytes)")
                member.update(space[:got])
                self._filled += got
                self._pos += got
                done += got
        pad = block_ceil(size) - size
        if pad:
            self._write(bytes(pad))
        entry = FileEntry(offset, size, member.hexdigest())
        self._files[name] = entry
        return entry

    @property
    def size(self) -> int:
        return self._pos

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._out is not None and self._tmp is not None
        git = lfs = ""
        try:
            if exc_type is None:
                self._write(bytes(archive_size(self._pos) - self._pos))
                if self._pos != self.total_size:
                    raise ValueError(f"{self.tar_path}: wrote {self._pos} bytes, planned {self.total_size}")
                self._flush()
                git, lfs = self._digests.hexdigests()
                self._out.flush()
                os.fsync(self._out.fileno())
            self._out.close()
        except BaseException as err:
            self._digests.close()
            with contextlib.suppress(OSError):
                self._out.close()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        self._digests.close()
        if exc_type is not None:
            self._ctx.__exit__(exc_type, exc, tb)
            return
        self.index = TarIndex(self._pos, git, lfs, self._files)
        self._ctx.__exit__(None, None, None)
        with atomic_path(self.index_path) as tmp, open(tmp, "wb") as f:
            f.write(encode_index(self.index))
