"""The two whole-shard digests an index holds — git-blob SHA-1 (``hash``) and SHA-256 (``hash_lfs``) — each
on a thread of its own, fed from a small ring of reused blocks while the caller walks (or writes) the shard.

Why: an index needs three hashes of the same bytes (the two of the whole file, and SHA-256 of every member).
One after the other on one core, they cap indexing at a third of one core's hashing speed. :mod:`hashlib`
releases the GIL while it hashes a buffer of more than 2 KiB, so with the whole-file digests on two threads
the caller's own pass (headers, member hashes) runs beside them, and every core works.

Why a ring of blocks: the bytes are read once (``readinto``) into one of a few fixed blocks that all three
hashers read in place; a block is handed out again only when both digest threads are done with it. A fresh
``bytes`` per read cost page faults and a copy that were a visible share of the time, and an ``mmap`` would
turn a shard truncated while it is read into a crash (``SIGBUS``) instead of an error (and its page faults
cost about as much as the copy from the page cache). Blocks of 1 MiB used a little less CPU than 4 MiB
(they stay in the caches between the three passes) and hold 4 MiB per shard in flight.

Small inputs (under two blocks) are hashed inline: a thread is not worth starting for them.

Example:
    >>> import hashlib, io
    >>> data = b"x" * 5000
    >>> with ShardDigests(len(data), block_size=1024) as digests:
    ...     chunks = [bytes(view) for view in digests.read(io.BytesIO(data))]
    ...     git, lfs = digests.hexdigests()
    >>> b"".join(chunks) == data, lfs == hashlib.sha256(data).hexdigest(), digests.seen
    (True, True, 5000)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from queue import SimpleQueue
from types import TracebackType
from typing import Any, BinaryIO

__all__ = ["ShardDigests", "git_blob_sha1_prefix"]

_BLOCKS = 6  # the caller holds views of two blocks, the reader fills up to four ahead, the digests follow


def git_blob_sha1_prefix(size: int) -> bytes:
    """The header git hashes before a blob's bytes; with it, sha1 gives the file's git object id."""
    return f"blob {size}\0".encode()


def _hash_blocks(hasher: Any, todo: SimpleQueue[memoryview | None], done: SimpleQueue[None]) -> None:
    """A digest thread: hash each view in order, say so after each; ``None`` ends it."""
    while (view := todo.get()) is not None:
        hasher.update(view)
        done.put(None)


class ShardDigests:
    """git-blob SHA-1 and SHA-256 of a whole shard of ``filesize`` bytes, fed block by block, in order.

    Use as a context manager (leaving it stops the threads, also on an error or Ctrl-C). Either let it read a
    stream (:meth:`read`), or fill its blocks yourself: :meth:`block` hands out the next block, :meth:`update`
    hashes the filled part of it. A block's bytes stay valid until ``_BLOCKS - 1`` more blocks were handed out.
    """

    def __init__(self, filesize: int, *, block_size: int = 1 << 20, threads: bool | None = None) -> None:
        self.seen = 0
        self._hashers = (hashlib.sha1(git_blob_sha1_prefix(filesize)), hashlib.sha256())
        self._block_size = min(block_size, max(filesize, 64 << 10))
        self._threaded = filesize >= 2 * block_size if threads is None else threads
        self._blocks: list[memoryview] = []
        self._handed = 0  # blocks handed out so far
        self._submitted = 0  # updates sent to the threads
        self._completed = 0  # updates both threads have finished
        self._used_by: list[int] = []  # per block: the count of updates that includes its last one
        self._todo: list[SimpleQueue[memoryview | None]] = []
        self._done: list[SimpleQueue[None]] = []
        self._threads: list[threading.Thread] = []
        self._reader: threading.Thread | None = None  # read(): the thread reading ahead of the caller
        self._credits = threading.Semaphore(_BLOCKS)  # blocks the reader may fill that the caller has not let go
        self._stop = threading.Event()

    def __enter__(self) -> ShardDigests:
        if self._threaded:
            for hasher in self._hashers:
                todo: SimpleQueue[memoryview | None] = SimpleQueue()
                done: SimpleQueue[None] = SimpleQueue()
                thread = threading.Thread(target=_hash_blocks, args=(hasher, todo, done), daemon=True,
                                          name=f"headwater-{hasher.name}")
                thread.start()
                self._todo.append(todo)
                self._done.append(done)
                self._threads.append(thread)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads: the reader after its current read, the digest threads once they have hashed what
        they were given (a few blocks at most)."""
        self._stop_reader()
        for todo in self._todo:
            todo.put(None)
        for thread in self._threads:
            thread.join()
        self._todo, self._done, self._threads = [], [], []

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._stop.set()
            self._credits.release(_BLOCKS)  # wake it if it waits for a block the caller holds
            self._reader.join()
            self._reader = None

    def _wait(self, upto: int) -> None:
        """Until both threads have finished the first ``upto`` updates."""
        while self._completed < upto:
            for done in self._done:
                done.get()
            self._completed += 1

    def block(self) -> memoryview:
        """The next block to fill (``block_size`` bytes); waits until the digest threads are done with it."""
        slot = self._handed % _BLOCKS
        self._handed += 1
        if slot == len(self._blocks):
            self._blocks.append(memoryview(bytearray(self._block_size)))
            self._used_by.append(0)
        else:
            self._wait(self._used_by[slot])
        return self._blocks[slot]

    def update(self, view: memoryview) -> None:
        """Hash ``view`` (the filled part of the block last handed out) into both digests."""
        self.seen += len(view)
        if not self._threaded:
            for hasher in self._hashers:
                hasher.update(view)
            return
        if not self._threads:
            raise RuntimeError("ShardDigests.update outside its `with` block")
        self._submitted += 1
        self._used_by[(self._handed - 1) % _BLOCKS] = self._submitted
        for todo in self._todo:
            todo.put(view)

    def read(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Read ``stream`` to its end into the blocks, hashing each; yields each filled view, in order.

        The caller may keep using a view until it has taken the next two. With threads, a reader thread
        reads ahead (up to ``_BLOCKS - 2`` blocks) while the caller works on what it was given, so waiting
        for the disk, and the copy out of the page cache, no longer add to the caller's thread."""
        if not self._threaded:
            yield from self._fill(stream)
            return
        ready: SimpleQueue[memoryview | BaseException | None] = SimpleQueue()
        self._reader = threading.Thread(target=self._read_ahead, args=(stream, ready), daemon=True,
                                        name="headwater-read")
        self._reader.start()
        held = 0  # views yielded that the caller may still use
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                if held == 2:  # the caller asked for this one: it is done with the one before the last
                    self._credits.release()
                    held = 1
                held += 1
                yield item
        finally:
            self._stop_reader()

    def _read_ahead(self, stream: BinaryIO, ready: SimpleQueue[memoryview | BaseException | None]) -> None:
        """The reader thread: fill blocks as the caller lets go of them, hand each over through ``ready``,
        then ``None`` at the end (or the error that stopped it)."""
        try:
            for view in self._fill(stream):
                ready.put(view)
            ready.put(None)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread, which raises it
            ready.put(err)

    def _fill(self, stream: BinaryIO) -> Iterator[memoryview]:
        readinto = getattr(stream, "readinto", None)
        while True:
            if self._threaded:
                self._credits.acquire()
                if self._stop.is_set():
                    return
            block = self.block()
            if readinto is not None:
                n = readinto(block) or 0
            else:  # a file-like object with read() only
                data = stream.read(len(block))
                n = len(data)
                block[:n] = data
            if not n:
                return
            view = block[:n]
            self.update(view)
            yield view

    def hexdigests(self) -> tuple[str, str]:
        """``(git-blob sha1, sha256)`` of everything hashed so far, once the threads caught up."""
        self._wait(self._submitted)
        return self._hashers[0].hexdigest(), self._hashers[1].hexdigest()
