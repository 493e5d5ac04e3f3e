"""Local stores and atomic writes: old file or whole new one, never a part, no temp file left."""

from __future__ import annotations

import os

import pytest

from headwater.storage import (
    Store,
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
