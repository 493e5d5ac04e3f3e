"""Turn a batch of wanted members into few byte-range reads.

Rules, per shard: sort by offset; merge neighbours whose gap is at most ``max_gap`` bytes; when at least
``whole_fraction`` of the shard is wanted, merge everything (read the shard whole); never let one read
span more than ``max_range`` bytes (memory) unless a single member is larger. If the plan still needs
more than ``max_requests`` reads, the smallest remaining gaps are merged first until it fits (or until
only ``max_range`` stops it).

With ``multi_range`` (a store whose server answers multipart/byteranges), gaps are not carried: members
closer than ``part_gap`` are merged into one range (a multipart part costs ~100 bytes of headers), and
up to ``max_parts`` ranges of one shard (``max_range`` bytes in all) go into one request — a
:class:`MultiRangeRead`. The whole-shard rule still applies. If that plan needs more than
``max_requests`` requests, the single-range plan above is used instead.

Example:
    >>> wanted = [Wanted("a.tar", 512, 100, "x"), Wanted("a.tar", 1536, 100, "y"), Wanted("b.tar", 512, 10, "z")]
    >>> [(r.shard, r.start, r.end, len(r.items)) for r in plan_reads(wanted, {"a.tar": 10**9, "b.tar": 10**9})]
    [('a.tar', 512, 1636, 2), ('b.tar', 512, 522, 1)]
    >>> far = wanted + [Wanted("a.tar", 10**6, 100, "w")]
    >>> multi = plan_reads(far, {"a.tar": 10**9, "b.tar": 10**9}, multi_range=True)
    >>> [(type(m).__name__, m.shard, [(p.start, p.end) for p in getattr(m, "parts", [m])]) for m in multi]
    [('MultiRangeRead', 'a.tar', [(512, 1636), (1000000, 1000100)]), ('RangeRead', 'b.tar', [(512, 522)])]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, overload

__all__ = ["Wanted", "RangeRead", "MultiRangeRead", "PlanPolicy", "plan_reads", "default_policy"]


@dataclass(frozen=True, slots=True)
class Wanted:
    """``size`` bytes at ``offset`` of ``shard``; ``key`` is the caller's, ``name`` (the member's) is for
    error messages."""

    shard: str
    offset: int
    size: int
    key: Any = None
    name: str = ""

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(slots=True)
class RangeRead:
    """One request: bytes ``[start, end)`` of ``shard``, serving ``items``."""

    shard: str
    start: int
    end: int
    items: list[Wanted] = field(default_factory=list)

    def slice(self, data: bytes, item: Wanted) -> memoryview:
        return memoryview(data)[item.offset - self.start : item.end - self.start]


@dataclass(slots=True)
class MultiRangeRead:
    """One request for several ranges of ``shard`` (answered as multipart/byteranges): each of ``parts``
    is one range with the items it serves."""

    shard: str
    parts: list[RangeRead]

    @property
    def items(self) -> list[Wanted]:
        return [item for part in self.parts for item in part.items]


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    """Knobs of :func:`plan_reads` (defaults suit HTTP stores where a request costs ~ 1 MB of transfer)."""

    max_gap: int = 1 << 20
    whole_fraction: float = 0.5
    max_range: int = 64 << 20
    max_requests: int | None = None
    part_gap: int = 4 << 10
    """Multi-range plans: members closer than this share a range (each part costs ~100 bytes of headers)."""
    max_parts: int = 100
    """Multi-range plans: ranges per request. Headwater's server takes 256; 100 keeps the ``Range`` header
    under ~2.5 KB, which proxies with 4–8 KB header limits accept."""


def default_policy(store: Any) -> PlanPolicy:
    """Local reads are cheap seeks: merge only small gaps. Remote requests are rate-limited and cost
    tens of milliseconds (~17 requests/s on a free Hugging Face account), i.e. megabytes of transfer:
    merge gaps up to 4 MiB."""
    return PlanPolicy(max_gap=64 << 10) if getattr(store, "is_local", False) else PlanPolicy(max_gap=4 << 20)


def _merge_shard(items: list[Wanted], shard_size: int | None, policy: PlanPolicy) -> list[RangeRead]:
    items.sort(key=lambda w: (w.offset, w.size))
    wanted_bytes = sum(w.size for w in items)
    gap_limit = policy.max_gap
    if shard_size and wanted_bytes >= policy.whole_fraction * shard_size:
        gap_limit = shard_size
    reads: list[RangeRead] = []
    for item in items:
        last = reads[-1] if reads else None
        if (
            last is not None
            and item.offset - last.end <= gap_limit
            and max(last.end, item.end) - last.start <= policy.max_range
        ):
            last.end = max(last.end, item.end)
            last.items.append(item)
        else:
            reads.append(RangeRead(item.shard, item.offset, item.end, [item]))
    return reads


def _fit_budget(reads: list[RangeRead], policy: PlanPolicy) -> list[RangeRead]:
    budget = policy.max_requests
    if budget is None or len(reads) <= budget:
        return reads
    # Candidate merges: adjacent reads of the same shard, smallest gap first.
    gaps = sorted(
        (reads[i + 1].start - reads[i].end, i)
        for i in range(len(reads) - 1)
        if reads[i].shard == reads[i + 1].shard
    )
    parent = list(range(len(reads)))  # union-find over read positions; a group is a contiguous run
    lo = list(range(len(reads)))
    hi = list(range(len(reads)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    count = len(reads)
    for _, i in gaps:
        if count <= budget:
            break
        a, b = find(i), find(i + 1)
        start, end = reads[lo[a]].start, max(reads[hi[a]].end, reads[hi[b]].end)
        if end - start > policy.max_range:
            continue
        parent[b] = a
        hi[a] = hi[b]
        count -= 1
    merged: list[RangeRead] = []
    for i, read in enumerate(reads):
        root = find(i)
        if lo[root] == i:
            merged.append(RangeRead(read.shard, read.start, read.end, list(read.items)))
        else:
            merged[-1].end = max(merged[-1].end, read.end)
            merged[-1].items.extend(read.items)
    return merged


def _group_parts(parts: list[RangeRead], policy: PlanPolicy) -> list[RangeRead | MultiRangeRead]:
    """Consecutive ranges of one shard packed into requests of ≤ ``max_parts`` ranges and ≤ ``max_range``
    bytes; a request of one range stays a plain :class:`RangeRead`."""
    groups: list[list[RangeRead]] = []
    size = 0
    for part in parts:
        length = part.end - part.start
        if not groups or len(groups[-1]) >= policy.max_parts or size + length > policy.max_range:
            groups.append([])
            size = 0
        groups[-1].append(part)
        size += length
    return [g[0] if len(g) == 1 else MultiRangeRead(g[0].shard, g) for g in groups]


@overload
def plan_reads(
    wanted: Iterable[Wanted], shard_sizes: Mapping[str, int | None], policy: PlanPolicy = ...,
    *, multi_range: Literal[False] = False,
) -> list[RangeRead]: ...


@overload
def plan_reads(
    wanted: Iterable[Wanted], shard_sizes: Mapping[str, int | None], policy: PlanPolicy = ...,
    *, multi_range: bool,
) -> list[RangeRead | MultiRangeRead]: ...


def plan_reads(
    wanted: Iterable[Wanted], shard_sizes: Mapping[str, int | None], policy: PlanPolicy = PlanPolicy(),
    *, multi_range: bool = False,
) -> list[RangeRead] | list[RangeRead | MultiRangeRead]:
    """Group ``wanted`` into requests, ordered by shard then offset (several ranges per request only with
    ``multi_range``)."""
    by_shard: dict[str, list[Wanted]] = defaultdict(list)
    for item in wanted:
        by_shard[item.shard].append(item)
    if multi_range:
        tight = replace(policy, max_gap=min(policy.part_gap, policy.max_gap))
        requests: list[RangeRead | MultiRangeRead] = []
        for shard in sorted(by_shard):
            requests.extend(_group_parts(_merge_shard(by_shard[shard], shard_sizes.get(shard), tight), policy))
        if policy.max_requests is None or len(requests) <= policy.max_requests:
            return requests
    reads: list[RangeRead] = []
    for shard in sorted(by_shard):
        reads.extend(_merge_shard(by_shard[shard], shard_sizes.get(shard), policy))
    return list(_fit_budget(reads, policy))
