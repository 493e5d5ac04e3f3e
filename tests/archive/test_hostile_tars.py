"""Hostile tars (issue 8): the tar walker and the indexer on random bytes, and on real tars that were cut
short, bit-flipped or had a header field rewritten (with a checksum that still matches, so the damage gets
past the first check). Whatever the bytes, :func:`walk_tar` / :func:`index_stream` either finish or raise an
:class:`ArchiveError` naming an offset — and meanwhile never read past the end of the file, never go
backwards, describe only bytes that exist, and use memory bounded by the input."""

from __future__ import annotations

import io
import json
import tarfile
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.archive import ArchiveError, IndexFormatError, TarFormatError, decode_index, index_stream, walk_tar
from headwater.archive.tarwalk import BLOCK

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class WatchedFile(io.RawIOBase):
    """A read-only file over ``data`` that records every read: where, how much was asked."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.reads = data, 0, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # io's signature takes any buffer
        self.reads += 1
        assert self.pos <= len(self.data), "read past the end of the file"
        chunk = self.data[self.pos : self.pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def _tar(members: list[tuple[str, bytes]], fmt: int) -> bytes:
    if fmt == tarfile.USTAR_FORMAT and any(len(name.encode()) > 100 for name, _ in members):
        fmt = tarfile.GNU_FORMAT  # ustar cannot hold long names
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _with_checksum(block: bytes) -> bytes:
    """``block`` (512 bytes) with its header checksum field set to match its bytes."""
    head = block[:148] + b" " * 8 + block[156:BLOCK]
    return head[:148] + b"%06o\0 " % sum(head) + head[156:]


real_tars = st.builds(
    _tar,
    st.lists(st.tuples(st.one_of(st.text(min_size=1, max_size=12), st.text(min_size=101, max_size=160)),
                       st.binary(max_size=1500)), min_size=1, max_size=4),
    st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**70).map(lambda n: b"%011o\0" % n if n >= 0 else b"-%o" % -n),
    st.binary(min_size=1, max_size=12).map(lambda b: b"\x80" + b),   # base-256, positive
    st.binary(min_size=1, max_size=11).map(lambda b: b"\xff" + b),   # base-256, negative
    st.binary(max_size=12),
)
FIELDS = {"size": (124, 12), "type": (156, 1), "name": (0, 100), "prefix": (345, 155), "mode": (100, 8)}


@st.composite
def damaged_tars(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(real_tars))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["truncate", "flip", "field", "pax"]))
        if how == "truncate":
            del data[draw(st.integers(0, len(data))):]
        elif how == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how in ("field", "pax") and len(data) >= BLOCK:
            block = draw(st.integers(0, len(data) // BLOCK - 1)) * BLOCK
            head = bytearray(data[block : block + BLOCK])
            if how == "field":
                start, width = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
                value = draw(numbers if width == 12 else st.binary(min_size=1, max_size=width))
            else:  # turn the block into a pax/GNU extended header with a chosen size
                start, width = 156, 1
                value = draw(st.sampled_from([b"x", b"g", b"L", b"K", b"S", b"X"]))
                size = draw(numbers)[:12]
                head[124 : 124 + len(size)] = size
            head[start : start + min(width, len(value))] = value[:width]
            data[block : block + BLOCK] = _with_checksum(bytes(head))
    return bytes(data)


pax_records = st.lists(st.one_of(
    st.tuples(st.sampled_from(["path", "size", "linkpath", "GNU.sparse.size", "hdrcharset", "x"]),
              st.one_of(st.text(max_size=8), st.integers(-(2**40), 2**40).map(str))).map(
        lambda kv: (lambda rec: b"%d %s" % (len(rec) + len(str(len(rec) + 3)) + 1, rec))(
            f"{kv[0]}={kv[1]}\n".encode())),
    st.binary(max_size=20),
    st.sampled_from([b"0 path=x\n", b"5 path=abcdefgh\n", b"99999 size=1\n", b"3 =\n"]),
), max_size=4).map(b"".join)


def pax_tar(records: bytes, body: bytes) -> bytes:
    """A tar whose first member carries exactly ``records`` as its pax extended header."""
    head = bytearray(BLOCK)
    head[0:9] = b"PaxHeader"
    head[100:108] = b"0000644\0"
    head[124:136] = b"%011o\0" % len(records)
    head[156:157] = b"x"
    head[257:263] = b"ustar\0"
    out = _with_checksum(bytes(head)) + records + bytes(-len(records) % BLOCK)
    return out + _tar([("m", body)], tarfile.USTAR_FORMAT)


def check_walk(data: bytes) -> None:
    """Walk and index ``data``: a named error or a description of bytes that exist, read once, forwards."""
    blocks = len(data) // BLOCK + 1
    for chunk_size in (BLOCK, 4096, 1 << 20):
        stream = WatchedFile(data)
        last = -1
        tracemalloc.start()
        try:
            for n, (member, _digest) in enumerate(walk_tar(stream, chunk_size=chunk_size), 1):  # type: ignore[arg-type]
                assert n <= blocks, "more members than header blocks: the walk went backwards"
                assert member.offset > last, "the walk went backwards"
                last = member.offset
                assert member.size >= 0, member
                assert member.offset_data == member.offset + BLOCK or member.offset_data > member.offset
                if member.isreg:
                    assert member.offset_data + member.size <= len(data), member
        except ArchiveError as err:
            assert isinstance(err, TarFormatError) and str(err)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak <= 4 * len(data) + 2 * chunk_size + (1 << 20), (peak, len(data))
        assert stream.pos <= len(data) and stream.reads <= len(data) // chunk_size + 2 + blocks
    try:
        index = index_stream(io.BytesIO(data), len(data), chunk_size=4096)
    except ArchiveError as err:
        assert str(err)
    else:
        for name, entry in index.files.items():
            assert entry.offset >= 0 and entry.offset + entry.size <= len(data) and entry.size >= 0, (name, entry)


@FUZZ
@given(st.binary(max_size=3 * BLOCK))
def test_random_bytes_walk_or_raise_a_named_error(data: bytes) -> None:
    check_walk(data)


@FUZZ
@given(st.binary(min_size=BLOCK, max_size=BLOCK).map(_with_checksum), st.binary(max_size=2 * BLOCK))
def test_random_headers_with_a_valid_checksum_walk_or_raise_a_named_error(header: bytes, rest: bytes) -> None:
    check_walk(header + rest)


@FUZZ
@given(damaged_tars())
def test_damaged_real_tars_walk_or_raise_a_named_error(data: bytes) -> None:
    check_walk(data)


@FUZZ
@given(pax_records, st.binary(max_size=600))
def test_hostile_pax_records_walk_or_raise_a_named_error(records: bytes, body: bytes) -> None:
    check_walk(pax_tar(records, body))


# -- what the fuzzers found, pinned --------------------------------------------------------------------------
def _header(name: bytes, size_field: bytes, kind: bytes = b"0") -> bytes:
    head = bytearray(BLOCK)
    head[0 : len(name)] = name
    head[100:108] = b"0000644\0"
    head[124 : 124 + len(size_field)] = size_field
    head[156:157] = kind
    head[257:265] = b"ustar  \0"
    return _with_checksum(bytes(head))


@pytest.mark.parametrize("size_field", [b"-1000000000\0", b"\xff" + b"\xff" * 10 + b"\xfe"],
                         ids=["octal-minus", "base256-negative"])
@pytest.mark.parametrize("kind", [b"0", b"L", b"x"])
def test_a_negative_member_size_is_a_named_error_not_a_walk_backwards(size_field: bytes, kind: bytes) -> None:
    """Found by the fuzzer: a header whose size field is negative was accepted — a member of size
    -134217728 was listed, and an extended header of negative size moved the reader back over bytes it had
    already read (listing members twice, or looping)."""
    data = _header(b"0", size_field, kind) + _tar([("a.bin", b"x" * 700)], tarfile.GNU_FORMAT)
    with pytest.raises(TarFormatError, match=r"negative member size .* at offset 0"):
        list(walk_tar(io.BytesIO(data)))
    with pytest.raises(TarFormatError, match="negative member size"):
        index_stream(io.BytesIO(data), len(data))


def test_a_negative_pax_size_is_a_named_error() -> None:
    data = pax_tar(b"12 size=-5\n", b"abc")
    with pytest.raises(TarFormatError, match="negative member size -5"):
        list(walk_tar(io.BytesIO(data)))


# -- index JSON from a store: members must lie inside the tar ---------------------------------------------------
entries = st.fixed_dictionaries({"offset": st.integers(-(2**40), 2**40), "size": st.integers(-(2**40), 2**40)},
                                optional={"sha256": st.one_of(st.none(), st.text(max_size=64))})
index_docs = st.fixed_dictionaries({"filesize": st.integers(-10, 2**40), "hash": st.text(max_size=4),
                                    "hash_lfs": st.text(max_size=4),
                                    "files": st.dictionaries(st.text(max_size=8), entries, max_size=4)})


@FUZZ
@given(st.one_of(index_docs.map(lambda d: json.dumps(d).encode()), st.binary(max_size=80)))
def test_an_index_decodes_to_members_inside_the_tar_or_a_named_error(data: bytes) -> None:
    try:
        index = decode_index(data, source="images/0001.json")
    except IndexFormatError as err:
        assert str(err).startswith("images/0001.json: ")
    else:
        for entry in index.files.values():
            assert entry.offset >= 0 and entry.size >= 0 and entry.offset + entry.size <= index.filesize


@pytest.mark.parametrize(("offset", "size"), [(-512, 10), (512, -3), (2048, 10)])
def test_an_index_naming_bytes_outside_its_tar_is_refused(offset: int, size: int) -> None:
    """Found by the fuzzer: an index whose member starts before the tar, has a negative size or ends past
    the end was accepted, so a reader would ask the store for bytes that are not there."""
    doc = {"filesize": 2048, "hash": "h", "hash_lfs": "l", "files": {"1.png": {"offset": offset, "size": size}}}
    with pytest.raises(IndexFormatError, match=r"images/0001\.json: member '1\.png' .* lies outside the 2048-byte"):
        decode_index(json.dumps(doc).encode(), source="images/0001.json")
