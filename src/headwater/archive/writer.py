"""Write one tar shard and its index in the same pass (no re-read to hash).

Headers come from :meth:`tarfile.TarInfo.tobuf` (pax records only where a name needs them) with fixed
owner, mode and mtime, so the same inputs always give byte-identical shards. Data is streamed from the
source file through the member's sha256 and the shard's sha1 (git blob) and sha256 (LFS). The git hash
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

import hashlib
import os
import tarfile
from types import TracebackType
from typing import BinaryIO

from ..storage import atomic_path
from .errors import ArchiveError
from .index import FileEntry, TarIndex, encode_index, git_blob_sha1_prefix, index_path_for
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

    def __init__(self, tar_path: str, total_size: int, *, chunk_size: int = 4 << 20) -> None:
        self.tar_path = tar_path
        self.total_size = total_size
        self.index_path = index_path_for(tar_path)
        self.index: TarIndex | None = None
        self._chunk = chunk_size
        self._files: dict[str, FileEntry] = {}
        self._lfs = hashlib.sha256()
        self._git = hashlib.sha1(git_blob_sha1_prefix(total_size))
        self._pos = 0
        self._ctx = atomic_path(tar_path)
        self._tmp: str | None = None
        self._out: BinaryIO | None = None

    def __enter__(self) -> ShardWriter:
        self._tmp = self._ctx.__enter__()
        self._out = open(self._tmp, "wb")
        return self

    def _write(self, data: bytes | memoryview) -> None:
        assert self._out is not None
        self._out.write(data)
        self._lfs.update(data)
        self._git.update(data)
        self._pos += len(data)

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
            src.seek(start)
            while done < size:
                chunk = src.read(min(self._chunk, size - done))
                if not chunk:
                    raise OSError(f"{src_path} shrank while being packed ({done} of {size} bytes)")
                member.update(chunk)
                self._write(chunk)
                done += len(chunk)
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
        try:
            if exc_type is None:
                self._write(bytes(archive_size(self._pos) - self._pos))
                if self._pos != self.total_size:
                    raise ValueError(f"{self.tar_path}: wrote {self._pos} bytes, planned {self.total_size}")
                self._out.flush()
                os.fsync(self._out.fileno())
            self._out.close()
        except BaseException as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        if exc_type is not None:
            self._ctx.__exit__(exc_type, exc, tb)
            return
        self.index = TarIndex(self._pos, self._git.hexdigest(), self._lfs.hexdigest(), self._files)
        self._ctx.__exit__(None, None, None)
        with atomic_path(self.index_path) as tmp, open(tmp, "wb") as f:
            f.write(encode_index(self.index))
