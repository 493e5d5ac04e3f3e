"""Turn a batch of wanted members into few byte-range reads.

Rules, per shard: sort by offset; merge neighbours whose gap is at most ``max_gap`` bytes; when at least
``whole_fraction`` of the shard is wanted, merge everything (read the shard whole); never let one read
span more than ``max_range`` bytes (memory) unless a single member is larger. If the plan still needs
more than ``max_requests`` reads, the smallest remaining gaps are merged first until it fits (or until
only ``max_range`` stops it).

Example:
    >>> wanted = [Wanted("a.tar", 512, 100, "x"), Wanted("a.tar", 1536, 100, "y"), Wanted("b.tar", 512, 10, "z")]
    >>> [(r.shard, r.start, r.end, len(r.items)) for r in plan_reads(wanted, {"a.tar": 10**9, "b.tar": 10**9})]
    [('a.tar', 512, 1636, 2), ('b.tar', 512, 522, 1)]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Wanted", "RangeRead", "PlanPolicy", "plan_reads", "default_policy"]


@dataclass(frozen=True, slots=True)
class Wanted:
    shard: str
    offset: int
    size: int
    key: Any = None

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


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    """Knobs of :func:`plan_reads` (defaults suit HTTP stores where a request costs ~ 1 MB of transfer)."""

    max_gap: int = 1 << 20
    whole_fraction: float = 0.5
    max_range: int = 64 << 20
    max_requests: int | None = None


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


def plan_reads(
    wanted: Iterable[Wanted], shard_sizes: Mapping[str, int | None], policy: PlanPolicy = PlanPolicy()
) -> list[RangeRead]:
    """Group ``wanted`` into range reads, ordered by shard then offset."""
    by_shard: dict[str, list[Wanted]] = defaultdict(list)
    for item in wanted:
        by_shard[item.shard].append(item)
    reads: list[RangeRead] = []
    for shard in sorted(by_shard):
        reads.extend(_merge_shard(by_shard[shard], shard_sizes.get(shard), policy))
    return _fit_budget(reads, policy)
