"""Execute planned range reads with a bounded number in flight, verifying every member's sha256.

A shard that ends inside a merged read (truncated, or replaced by a shorter file) does not fail the whole
read: every item wholly inside the bytes that exist is delivered (and checked) as usual, and only the
items the shard cuts off fail, each with a :class:`~headwater.pool.errors.TruncatedMemberError` naming
the shard, the member and how many of its bytes there are.

When the store may answer several ranges in one request (:attr:`~headwater.storage.Store.multi_range` not
False: plain HTTP stores until their server shows otherwise), the plan asks for each shard's members as
separate ranges of one request instead of one range carrying the gaps between them. Members whose range
the answer did not cover (the server turned out not to support it) are read with the single-range plan.

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
from dataclasses import replace
from typing import Any

from ..storage import Store, TruncatedFileError
from .errors import IntegrityError, TruncatedMemberError
from .planner import MultiRangeRead, PlanPolicy, RangeRead, Wanted, plan_reads

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
    reads: Sequence[RangeRead | MultiRangeRead] = plan_reads(wanted, shard_sizes, policy,
                                                             multi_range=store.multi_range is not False)
    if store.multi_range is None:  # ask one multi-range request alone, then plan the rest by its answer
        first = next((read for read in reads if isinstance(read, MultiRangeRead)), None)
        if first is not None:
            outcome, reads = _probe(store, first, reads, process, shard_sizes, policy)
            yield from outcome
    pending = iter(reads)
    running: dict[Future[list[tuple[Wanted, Any]]], RangeRead | MultiRangeRead] = {}
    with ThreadPoolExecutor(max_workers=max_workers) as ex:
        try:
            while True:
                while len(running) < max_workers:
                    read = next(pending, None)
                    if read is None:
                        break
                    running[ex.submit(_read_and_process, store, read, process, shard_sizes, policy)] = read
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


def _probe(
    store: Store, first: MultiRangeRead, reads: Sequence[RangeRead | MultiRangeRead],
    process: Callable[[Wanted, memoryview], Any] | None, shard_sizes: Mapping[str, int | None], policy: PlanPolicy,
) -> tuple[list[tuple[Wanted, Any]], Sequence[RangeRead | MultiRangeRead]]:
    """Read ``first`` (the store learns whether its server does multi-range) and the plan for the rest:
    unchanged if it does; else the single-range plan for every other item and those ``first`` did not
    get, in a request budget one smaller (the probe was one request)."""
    rest = [read for read in reads if read is not first]
    try:
        outcome, missing = _read_multi(store, first, process)
    except PermissionError:
        raise
    except Exception as err:  # noqa: BLE001 - handed to the caller per item, as for any read
        outcome, missing = [(item, err) for item in first.items], []
    if store.multi_range is not False:
        return outcome, rest + ([] if not missing else plan_reads(missing, shard_sizes, policy))
    budget = None if policy.max_requests is None else max(1, policy.max_requests - 1)
    items = missing + [item for read in rest for item in read.items]
    return outcome, plan_reads(items, shard_sizes, replace(policy, max_requests=budget))


def _read_and_process(
    store: Store, read: RangeRead | MultiRangeRead, process: Callable[[Wanted, memoryview], Any] | None,
    shard_sizes: Mapping[str, int | None], policy: PlanPolicy,
) -> list[tuple[Wanted, Any]]:
    if isinstance(read, RangeRead):
        return _read_single(store, read, process)
    out, missing = _read_multi(store, read, process)
    if missing:  # no multi-range after all: the single-range plan for what is left, in this worker
        for sub in plan_reads(missing, {read.shard: shard_sizes.get(read.shard)}, policy):
            assert isinstance(sub, RangeRead)
            out += _read_single(store, sub, process)
    return out


def _read_single(store: Store, read: RangeRead,
                 process: Callable[[Wanted, memoryview], Any] | None) -> list[tuple[Wanted, Any]]:
    """The items of ``read`` from one range read; if the shard ends inside the range, the items wholly
    inside the bytes that exist are served and each other one gets a :class:`TruncatedMemberError`."""
    try:
        data = store.read_range(read.shard, read.start, read.end)
    except TruncatedFileError as err:
        have = read.start + len(err.data)
        whole = [item for item in read.items if item.end <= have]
        out = _serve(RangeRead(read.shard, read.start, have, whole), err.data, process) if whole else []
        ends = f"the shard ends at byte {err.size}" if err.size is not None else "the shard ends before it"
        for item in read.items:
            if item.end > have:
                what = repr(item.name) if item.name else f"at bytes {item.offset}-{item.end}"
                got = min(item.size, max(0, have - item.offset))
                out.append((item, TruncatedMemberError(
                    f"{read.shard}: member {what} is truncated: got {got} of {item.size} bytes ({ends}); the "
                    "shard is damaged: re-pack or re-upload it", item.offset)))
        return out
    return _serve(read, data, process)


def _read_multi(
    store: Store, read: MultiRangeRead, process: Callable[[Wanted, memoryview], Any] | None
) -> tuple[list[tuple[Wanted, Any]], list[Wanted]]:
    """The items of ``read`` served from one multi-range request, and the items its answer missed."""
    out: list[tuple[Wanted, Any]] = []
    missing: list[Wanted] = []
    try:
        datas = store.fetch_ranges(read.shard, [(part.start, part.end) for part in read.parts])
    except TruncatedFileError:  # asked as one plain range: the single-range reads say what is cut off
        return [], read.items
    for part, data in zip(read.parts, datas, strict=True):
        if data is None:
            missing.extend(part.items)
        else:
            out += _serve(part, data, process)
    return out, missing


def _serve(read: RangeRead, data: bytes,
           process: Callable[[Wanted, memoryview], Any] | None) -> list[tuple[Wanted, Any]]:
    """Each item of ``read`` cut from its bytes ``data``, through ``process`` when given."""
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
