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
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .errors import TarFormatError, TruncatedTarError

__all__ = ["TarMember", "walk_tar", "walk_chunks", "BLOCK", "block_ceil"]

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_SUPPORTED = (b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"L", b"K", b"S")
_GNU_TYPES = (b"L", b"K", b"S")
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_ZERO_BLOCK = bytes(BLOCK)
_PAX_KINDS = (b"L", b"K", b"x", b"g", b"X")
# name, size, chksum, typeflag, linkname, prefix: the only header fields the walk reads, in one C call
_HEADER = struct.Struct("100s24x12s12x8sc100s88x155s")
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
    end = field.find(b"\0")
    digits = field if end == -1 else field[:end]
    if digits.isdigit():  # the usual field: octal digits, then NULs (8 or 9 fall through to the error below)
        try:
            return int(digits, 8)
        except ValueError:
            pass
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


def _checksum_ok(block: memoryview, unsigned: int, stored_field: bytes, where: int) -> bool:
    """Whether the header's stored checksum is its unsigned (or, as some old tars wrote it, signed) sum."""
    stored = _nti(stored_field, where)
    if stored == unsigned:
        return True
    high = sum(1 for b in bytes(block[:148]) + bytes(block[156:]) if b > 127)
    return stored == unsigned - 256 * high


_PAX_KEYS = frozenset({b"path", b"linkpath", b"size"})


def _parse_pax(data: bytes, where: int) -> dict[str, str]:
    """The pax records the walk reads (``path``, ``linkpath``, ``size``, ``GNU.sparse*``); every record's
    length is checked, but the others (``mtime``, ``uid``, …) are not decoded: nothing reads them."""
    records: dict[str, str] = {}
    if b"0 " not in data and b"path=" not in data and b"size=" not in data and b"GNU.sparse" not in data:
        # Nothing the walk reads (each of those keys shows as "…path=", "size=", "GNU.sparse"), and no record
        # of length 0 (its length field would end in "0 "): what tarfile writes per member (an mtime), at a
        # fifth of the cost of parsing it.
        return records
    binary: bool | None = None
    pos = 0
    match = _PAX_RECORD.match
    while (found := match(data, pos)) is not None:
        length = int(found[1])
        if length == 0:
            raise TarFormatError(f"invalid pax record at offset {where}", where)
        raw_key = found[2]
        if raw_key in _PAX_KEYS or raw_key.startswith(b"GNU.sparse"):
            key = raw_key.decode("utf-8", "surrogateescape")
            value = data[found.end(2) + 1 : found.start(1) + length - 1]
            try:
                records[key] = value.decode("utf-8", "strict")
            except UnicodeDecodeError:
                records[key] = value.decode("utf-8", "surrogateescape")
            if key != "size":
                if binary is None:
                    binary = re.search(rb"\d+ hdrcharset=BINARY\n", data) is not None
                if binary:
                    records[key] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


_EMPTY = memoryview(b"")


class _Reader:
    """Forward-only reader over a sequence of chunks (views are read in place, never joined).

    A chunk may be a view of a block its producer reuses (:meth:`.ShardDigests.read`): the reader keeps no
    view of a chunk once it has asked for the next one but one — what :meth:`take` returns is a copy."""

    __slots__ = ("_chunks", "buf", "pos", "base")

    def __init__(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        self._chunks = iter(chunks)
        self.buf, self.pos, self.base = _EMPTY, 0, 0

    def tell(self) -> int:
        return self.base + self.pos

    def _advance(self) -> bool:
        """Move to the next non-empty chunk (the current one is used up); False at the end of input."""
        self.base += len(self.buf)
        self.buf, self.pos = _EMPTY, 0
        for chunk in self._chunks:
            if len(chunk):
                self.buf = memoryview(chunk)
                return True
        return False

    def take(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at end of input)."""
        end = self.pos + n
        if end <= len(self.buf):
            out = self.buf[self.pos : end].tobytes()
            self.pos = end
            return out
        parts = [self.buf[self.pos :].tobytes()]
        have = len(parts[0])
        self.pos = len(self.buf)
        while have < n:
            if not self._advance():
                return b"".join(parts)
            k = min(len(self.buf), n - have)
            parts.append(self.buf[:k].tobytes())
            self.pos = k
            have += k
        return b"".join(parts)

    def feed(self, n: int, sink: Callable[[memoryview], object] | None) -> int:
        """Pass the next ``n`` bytes to ``sink`` without joining them; returns how many existed."""
        done = 0
        while done < n:
            avail = len(self.buf) - self.pos
            if avail == 0:
                if not self._advance():
                    return done
                continue
            k = min(avail, n - done)
            if sink is not None:
                sink(self.buf[self.pos : self.pos + k])
            self.pos += k
            done += k
        return done

    def drain(self) -> None:
        """Read the rest of the input (so a producer that hashes what it hands out sees every byte)."""
        self.base += len(self.buf) - self.pos
        self.pos = len(self.buf)
        for _ in self._chunks:
            pass


def _stream_chunks(stream: BinaryIO, chunk_size: int,
                   on_chunk: Callable[[bytes], None] | None) -> Iterator[bytes]:
    while chunk := stream.read(chunk_size):
        if on_chunk is not None:
            on_chunk(chunk)
        yield chunk


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
    return walk_chunks(_stream_chunks(stream, chunk_size, on_chunk), hash_members=hash_members)


def walk_chunks(
    chunks: Iterable[bytes | bytearray | memoryview], *, hash_members: bool = True
) -> Iterator[tuple[TarMember, str | None]]:
    """:func:`walk_tar` over a tar given as consecutive chunks of any size; every chunk is consumed, also
    after the end-of-archive marker. A chunk may be a view of a block its producer reuses once it has handed
    out the next two chunks (the walk holds no view longer)."""
    reader = _Reader(chunks)
    global_pax: dict[str, str] = {}
    local_pax: dict[str, str] | None = None
    long_name: str | None = None
    long_link: str | None = None
    last = "<start of archive>"
    unpack = _HEADER.unpack_from
    adler32 = zlib.adler32
    sha256 = hashlib.sha256
    while True:
        buf, pos = reader.buf, reader.pos
        where = reader.base + pos
        if pos + BLOCK <= len(buf):  # the usual case: the header lies in one chunk, read in place
            block = buf[pos : pos + BLOCK]
            reader.pos = pos = pos + BLOCK
        else:
            taken = reader.take(BLOCK)
            if not taken:
                break
            if len(taken) < BLOCK:
                raise TruncatedTarError(
                    f"archive truncated inside the header at offset {where} (after {last!r})", where
                )
            block = memoryview(taken)
            buf, pos = reader.buf, reader.pos
        raw_name, raw_size, raw_sum, kind, raw_link, raw_prefix = unpack(block)
        if raw_sum[0] == 0 and block == _ZERO_BLOCK:  # a real header's checksum field starts with a digit
            break
        # The unsigned checksum (the checksum field counted as 8 spaces), summed in C: adler32's low half is
        # 1 + the sum of the bytes modulo 65521, exact for pieces of at most 256 bytes (at most 65,280).
        # sum() over the 512 bytes was a fifth of the whole walk; comparing the formatted sum with the field
        # (as tarfile and GNU tar write it) spares parsing it.
        unsigned = ((adler32(block[:148]) & 0xFFFF) + (adler32(block[156:412]) & 0xFFFF)
                    + (adler32(block[412:]) & 0xFFFF) + 253)
        if b"%06o\0 " % unsigned != raw_sum and not _checksum_ok(block, unsigned, raw_sum, where):
            raise TarFormatError(f"bad header checksum at offset {where} (after {last!r})", where)
        digits = raw_size[:11]
        if raw_size[11] == 0 and digits.isdigit():  # the usual size field: 11 octal digits and a NUL
            try:
                size = int(digits, 8)
            except ValueError:
                size = _size(_nti(raw_size, where), where)
        else:
            size = _size(_nti(raw_size, where), where)
        if kind in _PAX_KINDS:
            padded = (size + BLOCK - 1) & -BLOCK
            if pos + padded <= len(buf):
                data = buf[pos : pos + size].tobytes()
                reader.pos = pos + padded
            else:
                taken = reader.take(padded)
                if len(taken) < padded:
                    raise TruncatedTarError(f"archive truncated inside an extended header at offset {where}",
                                            where)
                data = taken[:size]
            if kind == b"x":
                local_pax = _parse_pax(data, where)
            elif kind == b"L":
                long_name = _nts(data)
            elif kind == b"K":
                long_link = _nts(data)
            elif kind == b"g":
                global_pax.update(_parse_pax(data, where))
            else:
                local_pax = _parse_pax(data, where)
            continue
        name = raw_name.partition(b"\0")[0].decode("utf-8", "surrogateescape")
        linkname = _nts(raw_link) if raw_link[0] else ""
        if kind != b"0":  # the special cases, in tarfile's order
            if kind == b"S":
                raise TarFormatError(f"sparse member at offset {where} is not supported", where)
            if kind == b"\0" and name.endswith("/"):
                kind = b"5"
            if kind == b"5":
                name = name.rstrip("/")
        if raw_prefix[0] and kind not in _GNU_TYPES:
            prefix = _nts(raw_prefix)
            if prefix:
                name = prefix + "/" + name
        if global_pax or local_pax:
            if local_pax and any(k.startswith("GNU.sparse") for k in local_pax):
                raise TarFormatError(f"sparse member at offset {where} is not supported", where)
            pax = {**global_pax, **local_pax} if local_pax else global_pax
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
            local_pax = None
        if long_name is not None:
            name = long_name
            long_name = None
        if long_link is not None:
            linkname = long_link
            long_link = None
        if kind == b"5":
            name = name.rstrip("/")
        member = TarMember(name, kind, where, where + BLOCK, size, linkname)
        digest: str | None = None
        if kind in _REGULAR or kind not in _SUPPORTED:
            padded = (size + BLOCK - 1) & -BLOCK
            if pos + padded <= len(buf):  # data and padding in this chunk: hash it in place
                if hash_members and kind in _REGULAR:
                    digest = sha256(buf[pos : pos + size]).hexdigest()
                reader.pos = pos + padded
            else:
                if hash_members and kind in _REGULAR:
                    hasher = sha256()
                    got = reader.feed(size, hasher.update)
                    digest = hasher.hexdigest()
                else:
                    got = reader.feed(size, None)
                if got < size:
                    raise TruncatedTarError(
                        f"archive truncated inside member {name!r}: {got} of {size} bytes at offset "
                        f"{member.offset_data}", member.offset_data,
                    )
                pad = padded - size
                if reader.feed(pad, None) < pad:
                    raise TruncatedTarError(
                        f"archive truncated in the padding after member {name!r}", member.offset_data
                    )
        last = name
        yield member, digest
    reader.drain()
