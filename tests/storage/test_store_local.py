"""Local stores and atomic writes: old file or whole new one, never a part, no temp file left."""

from __future__ import annotations

import os

import pytest

from headwater.storage import (
    RetryPolicy,
    Store,
    TruncatedFileError,
    atomic_path,
    is_temp_name,
    write_bytes_atomic,
)


def test_store_reads_and_atomic_put(tmp_path):
    store = Store(str(tmp_path))
    store.put_bytes("x/y.bin", b"abcdef")
    assert store.read_range("x/y.bin", 1, 4) == b"bcd"
    assert store.stats.requests == 1 and store.stats.bytes_read == 3
    assert store.find(".bin") == ["x/y.bin"]
    with pytest.raises(FileNotFoundError):
        store.read_range("nope.bin", 0, 1)


def test_write_bytes_atomic_leaves_no_temp_file(tmp_path):
    target = tmp_path / "new" / "deep" / "f.bin"  # missing folders are created
    write_bytes_atomic(str(target), memoryview(b"abc"))
    write_bytes_atomic(str(target), b"replaced")
    assert target.read_bytes() == b"replaced"
    (tmp_path / "new" / "dir.bin").mkdir()
    with pytest.raises(OSError):  # the rename onto a directory fails: the temp file goes away
        write_bytes_atomic(str(tmp_path / "new" / "dir.bin"), b"x")
    assert not [n for n in os.listdir(tmp_path / "new") if is_temp_name(n)]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer died"), atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half of the new")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temp file left
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and is_temp_name(tmp)  # beside it: the rename is atomic
        with open(tmp, "wb") as f:
            f.write(b"new")
        assert target.read_bytes() == b"old"  # readers see the old file until the block ends
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.bin"]


def test_a_short_local_read_is_a_truncated_file_reported_at_once(tmp_path):
    """A local file shorter than the range is damaged, not flaky: one read, no retry, the bytes that exist
    and the file's size in the error (so a caller can still deliver what lies wholly inside them)."""
    (tmp_path / "s.tar").write_bytes(bytes(range(100)))
    store = Store(str(tmp_path), retry=RetryPolicy(attempts=6, base_delay=10.0))  # a retry would wait >= 5 s
    with pytest.raises(TruncatedFileError, match=r"s.tar ends at byte 100: asked bytes \[90:120\), got 10 of 30"
                       ) as info:
        store.read_range("s.tar", 90, 120)
    assert info.value.data == bytes(range(90, 100)) and info.value.size == 100
    assert not isinstance(info.value, ConnectionError)
    assert store.stats.requests == 1 and store.stats.retries == 0
    with pytest.raises(TruncatedFileError, match="got 0 of 10") as info:
        store.read_range("s.tar", 150, 160)
    assert info.value.data == b""
