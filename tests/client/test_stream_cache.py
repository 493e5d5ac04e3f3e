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
from headwater.client.stream_cache import STALE_TEMP_SECONDS


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


def _worker_slow_pass(root: str, n: int, ready: multiprocessing.synchronize.Event) -> None:
    """A pass of the same chunk as the test's, slow enough to be killed half-way (it never completes)."""
    cache = StreamCache(root)
    data = lines_for(n)

    def slow() -> Iterator[bytes]:
        for i, line in enumerate(data):
            if i == 10:
                ready.set()
            yield line
            time.sleep(0.05)

    for _ in cache.stream(KEY, lambda off: slow()):
        pass


def test_a_pass_beside_a_killed_one_leaves_exactly_one_complete_entry(tmp_path):
    """Two processes stream the same chunk; the one that started first (on main: the one holding the fill
    lock) is SIGKILLed half-way; the other completes its pass and must leave the complete entry."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    root = str(tmp_path)
    data = lines_for(300)
    first = ctx.Process(target=_worker_slow_pass, args=(root, 300, ready))
    first.start()
    assert ready.wait(60)
    assert len(temps(root)) == 1  # the first pass is writing its copy
    cache = StreamCache(root)
    killed = []

    def source(off: int) -> Iterator[bytes]:
        for i, block in enumerate(blocks_of(data[off:], per_block=20)):
            if i == 3:  # this pass is under way too: now the first one dies
                assert first.pid is not None
                os.kill(first.pid, signal.SIGKILL)
                first.join(timeout=30)
                killed.append(first.exitcode)
            yield block

    assert b"".join(cache.stream(KEY, source)) == b"".join(data)
    assert killed == [-signal.SIGKILL]
    assert replayed(cache, KEY) == b"".join(data)
    assert [e.key for e in cache.entries()] == [KEY]
    assert [n for n in os.listdir(root) if n.endswith(".ndjson")] == [os.path.basename(entry_of(cache, KEY).path)]
    assert temps(root) == []  # the dead pass's copy was swept when this one was promoted


def _worker_race(root: str, n: int, go: multiprocessing.synchronize.Barrier, die_after: int | None,
                 queue: multiprocessing.Queue, delay: float = 0.01) -> None:
    cache = StreamCache(root)
    data = lines_for(n)

    def source(off: int) -> Iterator[bytes]:
        for i, block in enumerate(blocks_of(data[off:], per_block=5, delay=delay)):
            if die_after is not None and i == die_after:
                os.kill(os.getpid(), signal.SIGKILL)
            yield block

    go.wait(60)  # every pass starts before any can complete (each takes ~0.8 s)
    out = b"".join(cache.stream(KEY, source))
    queue.put(out == b"".join(data))


def test_racing_passes_some_killed_never_show_a_partial_entry(tmp_path):
    """Six processes stream the same chunk at once, two of them are killed half-way; a reader polling the
    cache the whole time only ever sees no entry or the complete one, and one entry is left at the end."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    root = str(tmp_path)
    n = 400
    data = b"".join(lines_for(n))
    go = ctx.Barrier(7)
    dying = [ctx.Process(target=_worker_race, args=(root, n, go, die, queue)) for die in (5, 20)]
    # the last one is slower: the reader keeps polling after the first copy was promoted
    living = [ctx.Process(target=_worker_race, args=(root, n, go, None, queue, delay))
              for delay in (0.01, 0.01, 0.01, 0.03)]
    for p in dying + living:
        p.start()
    go.wait(60)
    cache = StreamCache(root)
    seen = set()
    while any(p.is_alive() for p in living):
        blocks = cache.replay(KEY)
        if blocks is None:
            seen.add("miss")
            continue
        got = b"".join(blocks)
        assert got == data, f"a reader saw {len(got)} of {len(data)} bytes"
        seen.add("complete")
    for p in dying + living:
        p.join(timeout=60)
    assert [p.exitcode for p in dying] == [-signal.SIGKILL] * 2
    assert all(p.exitcode == 0 for p in living)
    assert [queue.get(timeout=10) for _ in living] == [True] * 4
    assert "complete" in seen
    assert [e.key for e in cache.entries()] == [KEY]
    assert replayed(cache, KEY) == data
    StreamCache(root)  # opening the cache again cleans the dead passes' copies
    assert temps(root) == []


def test_the_first_complete_copy_wins_and_later_ones_are_dropped(tmp_path):
    cache = StreamCache(tmp_path)
    data = lines_for(60)
    slow = cache.stream(KEY, lambda off: blocks_of(data[off:]))
    fast = cache.stream(KEY, lambda off: blocks_of(data[off:]))
    head = next(slow)
    assert len(temps(cache.root)) == 1
    assert b"".join(fast) == b"".join(data)  # completes first: its copy is the entry
    winner = os.stat(entry_of(cache, KEY).path).st_ino
    assert len(temps(cache.root)) == 1  # the slow pass's copy, still being written
    assert head + b"".join(slow) == b"".join(data)
    assert os.stat(entry_of(cache, KEY).path).st_ino == winner  # not replaced by the later copy
    assert temps(cache.root) == []


def test_a_sidecar_must_describe_the_data_file_beside_it(tmp_path):
    """A data file replaced behind a sidecar (same size, another inode) is not taken for the entry."""
    cache = StreamCache(tmp_path)
    data = lines_for(20)
    b"".join(cache.fill(KEY, blocks_of(data)))
    path = entry_of(cache, KEY).path
    other = path + ".other"
    with open(other, "wb") as f:
        f.write(b"".join(data).replace(b'"x"', b'"y"'))
    os.replace(other, path)
    assert cache.lookup(KEY) is None and cache.replay(KEY) is None and cache.entries() == []
    assert b"".join(cache.stream(KEY, lambda off: blocks_of(data[off:]))) == b"".join(data)
    assert replayed(cache, KEY) == b"".join(data)


def test_opening_the_cache_removes_temps_of_dead_and_stale_passes_only(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    gone = ctx.Process(target=time.sleep, args=(0,))
    gone.start()
    gone.join(timeout=30)
    root = str(tmp_path)
    StreamCache(root)
    digest = KEY.digest
    from headwater.client.stream_cache import _HOST

    def temp(owner: str, age: float = 0.0) -> str:
        path = os.path.join(root, f".{digest}.{owner}.tmp")
        with open(path, "wb") as f:
            f.write(b'{"i":1}\n')
        if age:
            os.utime(path, (time.time() - age, time.time() - age))
        return os.path.basename(path)

    live = temp(f"{os.getpid()}-{_HOST}-aaaa")
    other_host = temp(f"{gone.pid}-ffffffff-bbbb")
    dead = temp(f"{gone.pid}-{_HOST}-cccc")
    old_format_dead = temp(f"{gone.pid}-dddd")
    stale = temp(f"{os.getpid()}-{_HOST}-eeee", age=STALE_TEMP_SECONDS + 60)
    StreamCache(root)
    left = set(temps(root))
    assert live in left and other_host in left
    assert not left & {dead, old_format_dead, stale}
