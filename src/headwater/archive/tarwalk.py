"""Streaming walk over raw 512-byte tar headers.

Why not :mod:`tarfile`? Iterating ``tarfile`` costs a Python object per header and, to hash a member,
either extraction (what hfutils does) or a second read. Here one forward pass over the bytes yields every
member with its data offset and, optionally, the sha256 of its data, while the caller sees each raw chunk
(to hash the whole file in the same pass). Names, offsets and the set of regular members follow
``tarfile``'s reading rules exactly (ustar prefix, GNU long names, pax ``path``/``size``, global pax
headers), so an index made here equals one made through ``tarfile`` key for key.

Example:
    >>> import io, tarfile
    >>> raw = io.BytesIO()
    >>> with tarfile.open(fileobj=raw, mode="w") as tar:
    ...     info = tarfile.TarInfo("a.txt"); info.size = 2
    ...     tar.addfile(info, io.BytesIO(b"hi"))
    >>> [(m.name, m.offset_data, m.size) for m, _ in walk_tar(io.BytesIO(raw.getvalue()))]
    [('a.txt', 512, 2)]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .errors import TarFormatError, TruncatedTarError

__all__ = ["TarMember", "walk_tar", "BLOCK", "block_ceil"]

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_SUPPORTED = (b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"L", b"K", b"S")
_GNU_TYPES = (b"L", b"K", b"S")
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_ZERO_BLOCK = bytes(BLOCK)
_KINDS = {b"1": "hardlink", b"2": "symlink", b"3": "character device", b"4": "block device", b"5": "directory",
          b"6": "fifo"}


@dataclass(slots=True)
class TarMember:
    """One header of the archive, after long-name and pax records were applied."""

    name: str
    type: bytes
    offset: int
    offset_data: int
    size: int
    linkname: str

    @property
    def isreg(self) -> bool:
        return self.type in _REGULAR

    @property
    def isdir(self) -> bool:
        return self.type == b"5"

    @property
    def kind(self) -> str:
        """What the member is, in words: ``file``, ``directory``, ``symlink``, ``hardlink``, ``fifo``, ``character
        device``, ``block device``, or ``type 'X'`` for a type tar readers do not know."""
        if self.isreg:
            return "file"
        return _KINDS.get(self.type, f"type {self.type.decode('latin-1')!r}")


def block_ceil(n: int) -> int:
    """Bytes that ``n`` bytes of member data occupy in the archive (rounded up to 512)."""
    return (n + BLOCK - 1) // BLOCK * BLOCK


def _nts(field: bytes, encoding: str = "utf-8") -> str:
    end = field.find(b"\0")
    if end != -1:
        field = field[:end]
    return field.decode(encoding, "surrogateescape")


def _nti(field: bytes, where: int) -> int:
    if field[0] in (0o200, 0o377):
        n = int.from_bytes(field[1:], "big")
        return -(256 ** (len(field) - 1) - n) if field[0] == 0o377 else n
    try:
        return int(_nts(field, "ascii").strip() or "0", 8)
    except (ValueError, UnicodeDecodeError):
        raise TarFormatError(f"invalid number field in tar header at offset {where}", where) from None


def _size(size: int, where: int) -> int:
    """A header's size, refused when negative: a negative size (a minus sign in the octal field, base-256
    with the sign bit, a pax ``size=-5``) would move the walk backwards over bytes it already read."""
    if size < 0:
        raise TarFormatError(f"negative member size {size} in the tar header at offset {where}", where)
    return size


def _checksum_ok(buf: bytes, where: int) -> bool:
    stored = _nti(buf[148:156], where)
    unsigned = sum(buf[:148]) + 256 + sum(buf[156:])
    if stored == unsigned:
        return True
    high = sum(1 for b in buf[:148] + buf[156:] if b > 127)
    return stored == unsigned - 256 * high


def _parse_pax(data: bytes, where: int) -> dict[str, str]:
    records: dict[str, str] = {}
    binary = re.search(rb"\d+ hdrcharset=BINARY\n", data) is not None
    pos = 0
    while (match := _PAX_RECORD.match(data, pos)) is not None:
        length = int(match.group(1))
        if length == 0:
            raise TarFormatError(f"invalid pax record at offset {where}", where)
        key = match.group(2).decode("utf-8", "surrogateescape")
        value = data[match.end(2) + 1 : match.start(1) + length - 1]
        try:
            records[key] = value.decode("utf-8", "strict")
        except UnicodeDecodeError:
            records[key] = value.decode("utf-8", "surrogateescape")
        if binary and key in ("path", "linkpath"):
            records[key] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class _Reader:
    """Forward-only buffered reader that reports each raw chunk once (for whole-file hashing)."""

    __slots__ = ("_raw", "_chunk", "_on_chunk", "_buf", "_pos", "_base")

    def __init__(self, raw: BinaryIO, chunk: int, on_chunk: Callable[[bytes], None] | None) -> None:
        self._raw, self._chunk, self._on_chunk = raw, chunk, on_chunk
        self._buf, self._pos, self._base = b"", 0, 0

    def tell(self) -> int:
        return self._base + self._pos

    def _next_chunk(self) -> bytes:
        chunk = self._raw.read(self._chunk)
        if chunk and self._on_chunk is not None:
            self._on_chunk(chunk)
        return chunk

    def take(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at end of input)."""
        end = self._pos + n
        if end <= len(self._buf):
            out = self._buf[self._pos : end]
            self._pos = end
            return out
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        self._base += len(self._buf)
        self._buf, self._pos = b"", 0
        while have < n:
            chunk = self._next_chunk()
            if not chunk:
                return b"".join(parts)
            need = n - have
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                have = n
            else:
                parts.append(chunk)
                self._base += len(chunk)
                have += len(chunk)
        return b"".join(parts)

    def feed(self, n: int, sink: Callable[[memoryview], object] | None) -> int:
        """Pass the next ``n`` bytes to ``sink`` without joining them; returns how many existed."""
        done = 0
        while done < n:
            avail = len(self._buf) - self._pos
            if avail == 0:
                self._base += len(self._buf)
                self._buf, self._pos = self._next_chunk(), 0
                if not self._buf:
                    return done
                continue
            k = min(avail, n - done)
            if sink is not None:
                sink(memoryview(self._buf)[self._pos : self._pos + k])
            self._pos += k
            done += k
        return done

    def drain(self) -> None:
        while self._next_chunk():
            pass


def walk_tar(
    stream: BinaryIO,
    *,
    hash_members: bool = True,
    on_chunk: Callable[[bytes], None] | None = None,
    chunk_size: int = 4 << 20,
) -> Iterator[tuple[TarMember, str | None]]:
    """Yield ``(member, sha256_hex_or_None)`` for every header, reading ``stream`` once, front to back.

    ``on_chunk`` sees every byte of the stream exactly once, including what follows the end-of-archive
    marker, so whole-file hashes can be computed in the same pass. Raises :class:`TruncatedTarError` or
    :class:`TarFormatError` naming the offset and member where the archive is damaged.
    """
    reader = _Reader(stream, chunk_size, on_chunk)
    global_pax: dict[str, str] = {}
    local_pax: dict[str, str] | None = None
    long_name: str | None = None
    long_link: str | None = None
    last = "<start of archive>"
    while True:
        where = reader.tell()
        buf = reader.take(BLOCK)
        if not buf:
            break
        if len(buf) < BLOCK:
            raise TruncatedTarError(
                f"archive truncated inside the header at offset {where} (after {last!r})", where
            )
        if buf == _ZERO_BLOCK:
            break
        if not _checksum_ok(buf, where):
            raise TarFormatError(f"bad header checksum at offset {where} (after {last!r})", where)
        kind = buf[156:157]
        size = _size(_nti(buf[124:136], where), where)
        if kind in (b"L", b"K", b"x", b"g", b"X"):
            data = reader.take(block_ceil(size))
            if len(data) < block_ceil(size):
                raise TruncatedTarError(f"archive truncated inside an extended header at offset {where}", where)
            if kind == b"L":
                long_name = _nts(data[:size])
            elif kind == b"K":
                long_link = _nts(data[:size])
            elif kind == b"g":
                global_pax.update(_parse_pax(data[:size], where))
            else:
                local_pax = _parse_pax(data[:size], where)
            continue
        if kind == b"S" or any(k.startswith("GNU.sparse") for k in (local_pax or {})):
            raise TarFormatError(f"sparse member at offset {where} is not supported", where)
        name = _nts(buf[0:100])
        linkname = _nts(buf[157:257])
        prefix = _nts(buf[345:500])
        if kind == b"\0" and name.endswith("/"):
            kind = b"5"
        if kind == b"5":
            name = name.rstrip("/")
        if prefix and kind not in _GNU_TYPES:
            name = prefix + "/" + name
        pax = {**global_pax, **(local_pax or {})}
        if "path" in pax:
            name = pax["path"].rstrip("/")
        if "linkpath" in pax:
            linkname = pax["linkpath"]
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                size = 0  # what tarfile does with a size that is not a number
            size = _size(size, where)
        if long_name is not None:
            name = long_name
        if long_link is not None:
            linkname = long_link
        if kind == b"5":
            name = name.rstrip("/")
        local_pax = long_name = long_link = None
        member = TarMember(name, kind, where, reader.tell(), size, linkname)
        digest: str | None = None
        if member.isreg or kind not in _SUPPORTED:
            if member.isreg and hash_members:
                hasher = hashlib.sha256()
                got = reader.feed(size, hasher.update)
                digest = hasher.hexdigest()
            else:
                got = reader.feed(size, None)
            if got < size:
                raise TruncatedTarError(
                    f"archive truncated inside member {name!r}: {got} of {size} bytes at offset {member.offset_data}",
                    member.offset_data,
                )
            pad = block_ceil(size) - size
            if reader.feed(pad, None) < pad:
                raise TruncatedTarError(
                    f"archive truncated in the padding after member {name!r}", member.offset_data
                )
        last = name
        yield member, digest
    reader.drain()
