"""The whole-shard digests on their own threads: the same digests as hashlib in one pass, over a real file, a
real pipe and a read-only stream, with reused blocks, and no thread left behind after an error."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
from pathlib import Path

import pytest

from headwater.archive.shard_digests import ShardDigests, git_blob_sha1_prefix


def expected(data: bytes) -> tuple[str, str]:
    return hashlib.sha1(git_blob_sha1_prefix(len(data)) + data).hexdigest(), hashlib.sha256(data).hexdigest()


def digest_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("headwater-sha", "headwater-read"))]


class ReadOnly:
    """A stream with ``read`` only (some remote file objects have no ``readinto``)."""

    def __init__(self, data: bytes) -> None:
        self._raw = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self._raw.read(min(n, 777))  # short reads, as a socket gives


@pytest.mark.parametrize("threads", [True, False])
def test_digests_equal_hashlib_while_blocks_are_reused(tmp_path: Path, threads: bool) -> None:
    data = random.Random(1).randbytes(1_000_003)
    path = tmp_path / "blob"
    path.write_bytes(data)
    for source in ("file", "read-only"):
        with open(path, "rb", buffering=0) as f, ShardDigests(len(data), block_size=64 << 10,
                                                                threads=threads) as digests:
            stream = f if source == "file" else ReadOnly(data)
            seen = bytearray()
            for view in digests.read(stream):  # type: ignore[arg-type]
                seen += view  # each view is read before the next blocks are handed out
            assert digests.hexdigests() == expected(data)
        assert bytes(seen) == data and digests.seen == len(data)
    assert digest_threads() == []


def test_digests_over_a_real_pipe(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb", buffering=0) as out:
            for i in range(0, len(data), 1000):
                out.write(data[i : i + 1000])

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(r, "rb", buffering=0) as stream, ShardDigests(len(data), block_size=4096) as digests:
        assert sum(len(v) for v in digests.read(stream)) == len(data)
        assert digests.hexdigests() == expected(data)
    writer.join()


def test_an_error_mid_way_stops_the_threads() -> None:
    data = os.urandom(200_000)
    with pytest.raises(ZeroDivisionError), ShardDigests(len(data), block_size=4096) as digests:
        for i, _ in enumerate(digests.read(io.BytesIO(data))):
            if i == 5:
                raise ZeroDivisionError
    assert digest_threads() == []


def test_filling_blocks_by_hand_as_the_writer_does() -> None:
    pieces = [os.urandom(n) for n in (10, 5000, 70_000, 1, 300_000)]
    data = b"".join(pieces)
    with ShardDigests(len(data), block_size=8192) as digests:
        for piece in pieces:
            for start in range(0, len(piece), 8192):
                part = piece[start : start + 8192]
                block = digests.block()
                block[: len(part)] = part
                digests.update(block[: len(part)])
        assert digests.hexdigests() == expected(data)


class FailsAfter:
    """A file that fails with a read error after ``good`` bytes (a disk or network error mid-way)."""

    def __init__(self, data: bytes, good: int) -> None:
        self._raw, self._good = io.BytesIO(data), good

    def readinto(self, buffer: memoryview) -> int:
        if self._raw.tell() >= self._good:
            raise OSError(5, "Input/output error")
        return self._raw.readinto(buffer[: self._good - self._raw.tell()])


def test_a_read_error_in_the_reader_thread_is_raised_to_the_caller() -> None:
    data = os.urandom(100_000)
    got = bytearray()
    with pytest.raises(OSError, match="Input/output error"), ShardDigests(len(data), block_size=4096) as digests:
        for view in digests.read(FailsAfter(data, 50_000)):  # type: ignore[arg-type]
            got += view
    assert bytes(got) == data[:50_000]
    assert digest_threads() == []
