"""Rendered thumbnails: a bounded pool of render workers and an LRU of results with a byte budget.

Why a bounded pool: a grid page asks for 60 thumbnails at once and each render decodes a JPEG, so an
unbounded number of renders would only thrash the CPUs and memory. :class:`RenderPool` runs at most
``workers`` renders at a time (threads: Pillow releases the GIL while it decodes, resizes and encodes, which
is most of a thumbnail's cost — the README gives the measured figures), queues at most ``max_pending`` more
(then :class:`RenderPoolBusy`: the route answers 503 with ``Retry-After``), and gives concurrent requests for
the same thumbnail one shared render.

Why an LRU with a byte budget: a thumbnail is addressed by the immutable dataset uid, so it never changes
and can be kept; :class:`ThumbnailCache` holds the most recently used ones up to ``budget`` bytes
(``serve --thumbnail-cache``) and evicts the least recently used first.

Example:
    >>> cache = ThumbnailCache(budget=10)
    >>> cache.put("a", b"12345"); cache.put("b", b"12345"); cache.get("a")
    b'12345'
    >>> cache.put("c", b"1234")            # over budget: "b", the least recently used, goes
    >>> cache.get("b") is None, cache.size, len(cache)
    (True, 9, 2)
    >>> pool = RenderPool(workers=2)
    >>> pool.submit("k", lambda: 6 * 7).result()
    42
    >>> pool.close()
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import RenderPoolBusy

__all__ = ["ThumbnailCache", "RenderPool"]

T = TypeVar("T")


class ThumbnailCache:
    """A thread-safe LRU of ``key → bytes`` holding at most ``budget`` bytes of values (0: holds nothing)."""

    def __init__(self, budget: int) -> None:
        if budget < 0:
            raise ValueError(f"thumbnail cache budget must be >= 0 bytes, got {budget}")
        self.budget = budget
        self.size = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> bytes | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            data = self._items.get(key)
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        """Keep ``data`` under ``key``, evicting the least recently used values to stay within the budget;
        a value larger than the whole budget is not kept."""
        if len(data) > self.budget:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self._items[key] = data
            self.size += len(data)
            while self.size > self.budget:
                _, evicted = self._items.popitem(last=False)
                self.size -= len(evicted)


class RenderPool:
    """At most ``workers`` renders at once, at most ``max_pending`` waiting; one render per key at a time."""

    def __init__(self, workers: int, *, max_pending: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"render workers must be >= 1, got {workers}")
        self.workers = workers
        self.max_pending = max_pending if max_pending is not None else 64 * workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="headwater-render")
        self._running: dict[Hashable, Future[Any]] = {}
        self._lock = threading.Lock()

    def submit(self, key: Hashable, job: Callable[[], T]) -> Future[T]:
        """Run ``job`` in the pool, or join the render of ``key`` already under way.

        Raises :class:`RenderPoolBusy` when ``max_pending`` renders are queued or running.
        """
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            if len(self._running) >= self.max_pending:
                raise RenderPoolBusy(f"{len(self._running)} thumbnails are being rendered; try again shortly")
            future: Future[T] = self._executor.submit(job)
            self._running[key] = future
        future.add_done_callback(lambda _: self._forget(key))
        return future

    def _forget(self, key: Hashable) -> None:
        with self._lock:
            self._running.pop(key, None)

    @property
    def pending(self) -> int:
        """Renders queued or running now."""
        return len(self._running)

    def close(self) -> None:
        """Stop taking renders; the queued ones are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
