"""The stream cache: promotion only when complete, abandoned passes, several processes, LRU budget."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import signal
import time
from collections.abc import Generator, Iterator

import pytest

from headwater.client import CacheEntry, CacheError, StreamCache, StreamKey


def lines_for(n: int, *, width: int = 40, tag: str = "x") -> list[bytes]:
    return [(f'{{"i":{i},"t":"{tag}","pad":"' + "p" * (i % width) + '"}\n').encode() for i in range(n)]


def blocks_of(lines: list[bytes], per_block: int = 7, *, delay: float = 0.0) -> Iterator[bytes]:
    for i in range(0, len(lines), per_block):
        if delay:
            time.sleep(delay)
        yield b"".join(lines[i:i + per_block])


def replayed(cache: StreamCache, key: StreamKey, offset: int = 0) -> bytes:
    """The whole replay of a pass the test expects in the cache."""
    blocks = cache.replay(key, offset)
    assert blocks is not None
    return b"".join(blocks)


def entry_of(cache: StreamCache, key: StreamKey) -> CacheEntry:
    """The entry of a pass the test expects in the cache."""
    entry = cache.lookup(key)
    assert entry is not None
    return entry


def temps(root: str) -> list[str]:
    return [n for n in os.listdir(root) if n.endswith(".tmp")]


KEY = StreamKey("uid-1", "train", chunk=0, nchunks=1)


def test_fill_promotes_only_when_complete(tmp_path):
    cache = StreamCache(tmp_path)
    data = lines_for(50)
    gen = cache.fill(KEY, blocks_of(data))
    first = next(gen)
    assert cache.lookup(KEY) is None  # still filling: nothing visible
    assert len(temps(cache.root)) == 1
    rest = b"".join(gen)
    assert first + rest == b"".join(data)
    entry = cache.lookup(KEY)
    assert entry is not None and entry.lines == 50 and entry.size == len(first + rest)
    assert temps(cache.root) == []
    assert replayed(cache, KEY) == b"".join(data)


def test_abandoned_pass_leaves_nothing_and_next_pass_is_complete(tmp_path):
    cache = StreamCache(tmp_path)
    data = lines_for(100)
    gen = cache.stream(KEY, lambda off: blocks_of(data[off:]))
    assert isinstance(gen, Generator)  # a filling pass
    got = [next(gen) for _ in range(3)]
    assert got
    gen.close()  # abandoned half-way
    assert cache.lookup(KEY) is None
    assert temps(cache.root) == []
    # the next full pass fills from the source, completely, and is promoted
    assert b"".join(cache.stream(KEY, lambda off: blocks_of(data[off:]))) == b"".join(data)
    assert entry_of(cache, KEY).lines == 100
    # and the one after that replays (the source is never called)
    def boom(off: int) -> Iterator[bytes]:
        raise AssertionError("source must not be used on a hit")
    assert b"".join(cache.stream(KEY, boom)) == b"".join(data)


def test_abandoned_by_garbage_collection(tmp_path):
    cache = StreamCache(tmp_path)
    data = lines_for(30)
    gen = cache.fill(KEY, blocks_of(data))
    next(gen)
    del gen  # CPython finalises the generator: lock released, temp removed
    assert temps(cache.root) == []
    assert b"".join(cache.fill(KEY, blocks_of(data))) == b"".join(data)
    assert cache.lookup(KEY) is not None


def test_failing_source_is_not_promoted(tmp_path):
    cache = StreamCache(tmp_path)

    def source() -> Iterator[bytes]:
        yield b'{"a":1}\n'
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        list(cache.fill(KEY, source()))
    assert cache.lookup(KEY) is None and temps(cache.root) == []


def test_block_not_ending_at_line_boundary_is_refused(tmp_path):
    cache = StreamCache(tmp_path)
    with pytest.raises(CacheError, match="line boundary"):
        list(cache.fill(KEY, [b'{"a":1}\n{"a"']))
    assert cache.lookup(KEY) is None and temps(cache.root) == []


@pytest.mark.parametrize("offset", [0, 1, 999, 1000, 5001, 11999, 12000])
def test_replay_from_offset_uses_marks(tmp_path, offset):
    cache = StreamCache(tmp_path)
    data = lines_for(12000, width=60)  # ~800 KB: several index marks
    b"".join(cache.fill(KEY, blocks_of(data, per_block=997)))
    entry = entry_of(cache, KEY)
    assert len(entry.marks) > 2
    assert replayed(cache, KEY, offset) == b"".join(data[offset:])
    assert b"".join(cache.stream(KEY, lambda off: iter(()), offset=offset)) == b"".join(data[offset:])


def test_offset_past_the_end_is_a_miss_and_resume_without_entry_streams(tmp_path):
    cache = StreamCache(tmp_path)
    data = lines_for(10)
    assert cache.replay(KEY, 3) is None
    # a resumed pass (offset > 0) streams from the source and does not fill
    out = b"".join(cache.stream(KEY, lambda off: blocks_of(data[off:]), offset=3))
    assert out == b"".join(data[3:])
    assert cache.lookup(KEY) is None
    b"".join(cache.fill(KEY, blocks_of(data)))
    assert cache.replay(KEY, 11) is None


def test_keys_are_distinct(tmp_path):
    keys = {
        StreamKey("u", "train", 0, 1), StreamKey("u", "train", 0, 2), StreamKey("u", "train", 1, 2),
        StreamKey("u", "val", 0, 1), StreamKey("v", "train", 0, 1), StreamKey("u", "train", 0, 1, 0),
        StreamKey("u", "train", 0, 1, 1), StreamKey("u", "train", 0, 1, None, 10),
    }
    assert len({k.digest for k in keys}) == len(keys)
    cache = StreamCache(tmp_path)
    for i, key in enumerate(sorted(keys, key=lambda k: k.digest)):
        b"".join(cache.fill(key, [f'{{"k":{i}}}\n'.encode()]))
    assert {e.key for e in cache.entries()} == keys


def test_default_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "hw"))
    assert StreamCache().root == str(tmp_path / "hw" / "streams")
    monkeypatch.delenv("HEADWATER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert StreamCache().root == str(tmp_path / "xdg" / "headwater" / "streams")
    monkeypatch.setenv("HEADWATER_STREAM_CACHE_BYTES", "12345")
    assert StreamCache().max_bytes == 12345
    monkeypatch.setenv("HEADWATER_STREAM_CACHE_BYTES", "lots")
    with pytest.raises(CacheError, match="HEADWATER_STREAM_CACHE_BYTES"):
        StreamCache()


def test_lru_eviction_under_budget(tmp_path):
    one = b"".join(lines_for(20))
    cache = StreamCache(tmp_path, max_bytes=int(len(one) * 2.5))
    a, b, c = (StreamKey("u", "train", k, 3) for k in range(3))
    b"".join(cache.fill(a, [one]))
    time.sleep(0.01)
    b"".join(cache.fill(b, [one]))
    time.sleep(0.01)
    assert replayed(cache, a) == one  # a use: a is now more recent than b
    time.sleep(0.01)
    b"".join(cache.fill(c, [one]))  # over budget: the least recently used (b) goes
    assert {e.key for e in cache.entries()} == {a, c}
    assert cache.total_bytes() == 2 * len(one) <= cache.max_bytes
    # an open replay survives eviction of its entry
    reader = cache.replay(a)
    assert reader is not None
    assert cache.evict(0) == [c, a]  # least recently used first (the replay just touched a)
    assert cache.entries() == []
    assert b"".join(reader) == one


def test_pass_bigger_than_budget_streams_but_is_not_kept(tmp_path):
    cache = StreamCache(tmp_path, max_bytes=100)
    data = lines_for(50)
    assert b"".join(cache.fill(KEY, blocks_of(data))) == b"".join(data)
    assert cache.lookup(KEY) is None and temps(cache.root) == []


def test_corrupt_entry_is_a_miss_and_gets_refilled(tmp_path):
    cache = StreamCache(tmp_path)
    data = lines_for(40)
    b"".join(cache.fill(KEY, blocks_of(data)))
    path = entry_of(cache, KEY).path
    with open(path, "r+b") as f:
        f.truncate(100)
    assert cache.lookup(KEY) is None and cache.replay(KEY) is None
    assert b"".join(cache.stream(KEY, lambda off: blocks_of(data[off:]))) == b"".join(data)
    assert entry_of(cache, KEY).size == len(b"".join(data))


def test_two_passes_in_one_process_one_fills_one_streams(tmp_path):
    cache = StreamCache(tmp_path)
    data = lines_for(60)
    g1 = cache.stream(KEY, lambda off: blocks_of(data[off:]))
    g2 = cache.stream(KEY, lambda off: blocks_of(data[off:]))
    out1, out2 = [next(g1)], [next(g2)]
    out1 += list(g1)
    out2 += list(g2)
    assert b"".join(out1) == b"".join(out2) == b"".join(data)
    assert entry_of(cache, KEY).lines == 60
    assert temps(cache.root) == []


# -- several real processes ------------------------------------------------------------------------

def _worker_pass(root: str, n: int, delay: float, start: float, queue: multiprocessing.Queue) -> None:
    while time.time() < start:
        time.sleep(0.001)
    cache = StreamCache(root)
    data = lines_for(n)
    calls = []

    def source(off: int) -> Iterator[bytes]:
        calls.append(off)
        return blocks_of(data[off:], per_block=10, delay=delay)

    out = b"".join(cache.stream(KEY, source))
    queue.put((out == b"".join(data), len(calls)))


def _worker_fill_forever(root: str, ready: multiprocessing.synchronize.Event) -> None:
    cache = StreamCache(root)

    def endless() -> Iterator[bytes]:
        i = 0
        while True:
            yield f'{{"i":{i}}}\n'.encode()
            i += 1
            if i == 100:
                ready.set()
            time.sleep(0.001)

    for _ in cache.fill(KEY, endless()):
        pass


def test_concurrent_processes_fill_and_read_the_same_entry(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    root = str(tmp_path)
    start = time.time() + 1.5  # spawn start-up takes a moment; then all begin together
    procs = [ctx.Process(target=_worker_pass, args=(root, 400, 0.002, start, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert all(ok for ok, _ in results), results
    cache = StreamCache(root)
    assert replayed(cache, KEY) == b"".join(lines_for(400))
    assert temps(root) == []
    # a late reader replays the promoted entry without calling the source
    late = ctx.Process(target=_worker_pass, args=(root, 400, 0.0, 0.0, queue))
    late.start()
    ok, calls = queue.get(timeout=60)
    late.join(timeout=30)
    assert ok and calls == 0


def test_killed_filler_releases_the_lock_and_leaves_no_entry(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    root = str(tmp_path)
    proc = ctx.Process(target=_worker_fill_forever, args=(root, ready))
    proc.start()
    assert ready.wait(60)
    cache = StreamCache(root)
    data = lines_for(25)
    # while the other process holds the key's lock, this pass streams without writing
    assert b"".join(cache.stream(KEY, lambda off: blocks_of(data[off:]))) == b"".join(data)
    assert cache.lookup(KEY) is None
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert len(temps(root)) == 1  # the dead pass's temp file
    assert cache.lookup(KEY) is None
    assert b"".join(cache.stream(KEY, lambda off: blocks_of(data[off:]))) == b"".join(data)
    assert entry_of(cache, KEY).lines == 25
    assert temps(root) == []
