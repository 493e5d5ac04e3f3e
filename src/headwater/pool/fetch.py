"""Execute planned range reads with a bounded number in flight, verifying every member's sha256.

Example:
    >>> import tempfile
    >>> from headwater.storage import open_store
    >>> store = open_store(tempfile.mkdtemp()); store.put_bytes("s.tar", b"0123456789")
    >>> from headwater.pool.planner import Wanted
    >>> [(w.key, bytes(data)) for w, data in fetch_wanted(store, [Wanted("s.tar", 2, 3, "k")], {"s.tar": 10})]
    [('k', b'234')]
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ..storage import Store
from .errors import IntegrityError
from .planner import PlanPolicy, RangeRead, Wanted, plan_reads

__all__ = ["fetch_wanted", "check_sha256"]


def check_sha256(data: bytes | memoryview, expected: str | None, what: str) -> None:
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise IntegrityError(f"{what}: sha256 mismatch (shard corrupt or changed since it was indexed)")


def fetch_wanted(
    store: Store,
    wanted: Sequence[Wanted],
    shard_sizes: Mapping[str, int | None],
    *,
    policy: PlanPolicy = PlanPolicy(),
    max_workers: int = 12,
    process: Callable[[Wanted, memoryview], Any] | None = None,
) -> Iterator[tuple[Wanted, Any]]:
    """Yield ``(item, bytes)`` for every wanted item, or ``(item, error)`` when its read failed.

    With ``process``, each item's bytes are handed to ``process(item, data)`` in the worker thread that
    read them (so checking and writing files runs in parallel, not in the caller) and its result — or
    the exception it raised — is yielded instead of the bytes. At most ``max_workers`` reads run at
    once. Authorisation failures are not yielded per item: they stop the whole fetch (raised).
    """
    reads = plan_reads(wanted, shard_sizes, policy)
    pending = iter(reads)
    running: dict[Future[list[tuple[Wanted, Any]]], RangeRead] = {}
    with ThreadPoolExecutor(max_workers=max_workers) as ex:
        try:
            while True:
                while len(running) < max_workers:
                    read = next(pending, None)
                    if read is None:
                        break
                    running[ex.submit(_read_and_process, store, read, process)] = read
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    read = running.pop(fut)
                    err = fut.exception()
                    if err is not None:
                        if isinstance(err, PermissionError):
                            raise err
                        for item in read.items:
                            yield item, err
                        continue
                    yield from fut.result()
        finally:
            for fut in running:
                fut.cancel()


def _read_and_process(
    store: Store, read: RangeRead, process: Callable[[Wanted, memoryview], Any] | None
) -> list[tuple[Wanted, Any]]:
    data = store.read_range(read.shard, read.start, read.end)
    out: list[tuple[Wanted, Any]] = []
    for item in read.items:
        view = read.slice(data, item)
        if process is None:
            out.append((item, view))
            continue
        try:
            out.append((item, process(item, view)))
        except Exception as err:  # noqa: BLE001 - handed to the caller per item
            out.append((item, err))
    return out
