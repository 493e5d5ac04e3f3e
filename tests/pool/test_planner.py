"""Range planner properties (hypothesis) and the retry classification."""

from __future__ import annotations

import email.utils
import itertools
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.pool.planner import MultiRangeRead, PlanPolicy, RangeRead, Wanted, plan_reads
from headwater.storage.retry import RetryPolicy, classify, retry_after_seconds


@st.composite
def batches(draw):
    shards = draw(st.lists(st.sampled_from(["a.tar", "b.tar", "c.tar"]), min_size=1, max_size=3, unique=True))
    sizes = {s: draw(st.integers(10_000, 5_000_000)) for s in shards}
    items: list[Wanted] = []  # like real tar members: disjoint; a member may be wanted twice
    for shard in shards:
        starts = sorted(draw(st.sets(st.integers(0, sizes[shard] // 512 - 1), min_size=1, max_size=25)))
        bounds = [x * 512 for x in starts] + [sizes[shard]]
        for off, nxt in itertools.pairwise(bounds):
            size = draw(st.integers(0, min(20_000, nxt - off)))
            items.append(Wanted(shard, off, size, len(items)))
            if draw(st.booleans()) and draw(st.booleans()):
                items.append(Wanted(shard, off, size, len(items)))
    policy = PlanPolicy(
        max_gap=draw(st.integers(0, 200_000)),
        whole_fraction=draw(st.floats(0.05, 1.5)),
        max_range=draw(st.integers(20_000, 3_000_000)),
        max_requests=draw(st.none() | st.integers(1, 40)),
    )
    return items, sizes, policy


@settings(max_examples=300, deadline=None)
@given(batches())
def test_every_item_served_once_inside_its_read(batch):
    items, sizes, policy = batch
    reads = plan_reads(items, sizes, policy)
    served = sorted(w.key for r in reads for w in r.items)
    assert served == sorted(w.key for w in items)
    for r in reads:
        assert 0 <= r.start <= r.end <= sizes[r.shard]
        for w in r.items:
            assert w.shard == r.shard and r.start <= w.offset and w.end <= r.end
        if len(r.items) > 1:  # merging never builds a read larger than max_range
            assert r.end - r.start <= policy.max_range
    # reads of one shard never overlap
    for shard in sizes:
        spans = sorted((r.start, r.end) for r in reads if r.shard == shard)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


@settings(max_examples=300, deadline=None)
@given(batches(), st.integers(0, 10_000), st.integers(1, 6))
def test_multi_range_plans_serve_every_item_once_without_carrying_gaps(batch, part_gap, max_parts):
    items, sizes, policy = batch
    policy = PlanPolicy(policy.max_gap, policy.whole_fraction, policy.max_range, policy.max_requests,
                        part_gap=part_gap, max_parts=max_parts)
    requests = plan_reads(items, sizes, policy, multi_range=True)
    assert sorted(w.key for r in requests for w in r.items) == sorted(w.key for w in items)
    multi = [r for r in requests if isinstance(r, MultiRangeRead)]
    if multi:  # the multi-range plan was used: it met the budget (else the single-range plan is)
        assert policy.max_requests is None or len(requests) <= policy.max_requests
    for r in multi:
        assert 2 <= len(r.parts) <= max_parts and all(p.shard == r.shard for p in r.parts)
        if len(r.items) > 1:
            assert sum(p.end - p.start for p in r.parts) <= policy.max_range
        for p, q in itertools.pairwise(r.parts):  # ascending, disjoint, separate unless max_range kept them so
            assert p.end <= q.start
            assert q.start - p.end > min(part_gap, policy.max_gap) or q.end - p.start > policy.max_range
    for request in requests:
        for part in request.parts if isinstance(request, MultiRangeRead) else [request]:
            assert isinstance(part, RangeRead) and 0 <= part.start <= part.end <= sizes[part.shard]
            assert all(part.start <= w.offset and w.end <= part.end for w in part.items)


@settings(max_examples=200, deadline=None)
@given(batches())
def test_budget_is_met_when_max_range_allows(batch):
    items, sizes, policy = batch
    roomy = PlanPolicy(policy.max_gap, policy.whole_fraction, max_range=10**9, max_requests=policy.max_requests)
    reads = plan_reads(items, sizes, roomy)
    if policy.max_requests is not None:
        shards = len({w.shard for w in items})
        assert len(reads) <= max(policy.max_requests, shards)


def test_whole_shard_when_most_is_wanted():
    items = [Wanted("a.tar", o, 100, o) for o in range(0, 100_000, 1_000)]  # 10% wanted... of a 100 kB shard
    assert len(plan_reads(items, {"a.tar": 100_000}, PlanPolicy(max_gap=0, whole_fraction=0.1))) == 1
    assert len(plan_reads(items, {"a.tar": 100_000}, PlanPolicy(max_gap=0, whole_fraction=0.5))) == 100


def test_gap_rule():
    items = [Wanted("a.tar", 0, 10, 0), Wanted("a.tar", 110, 10, 1), Wanted("a.tar", 1000, 10, 2)]
    reads = plan_reads(items, {"a.tar": 10**9}, PlanPolicy(max_gap=100))
    assert [(r.start, r.end) for r in reads] == [(0, 120), (1000, 1010)]


class _HTTPError(Exception):
    def __init__(self, status, headers=None):
        self.status, self.headers = status, headers or {}


def test_classify_and_retry_after():
    assert classify(_HTTPError(429)) == "retry"
    assert classify(_HTTPError(503)) == "retry"
    assert classify(_HTTPError(401)) == "auth"
    assert classify(_HTTPError(403)) == "auth"
    assert classify(_HTTPError(404)) == "missing"
    assert classify(_HTTPError(400)) == "other"
    assert classify(ConnectionResetError()) == "retry"
    assert classify(FileNotFoundError()) == "missing"
    assert retry_after_seconds(_HTTPError(429, {"Retry-After": "7"})) == 7.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after_seconds(_HTTPError(503, {"Retry-After": future}))
    assert wait is not None and 25 <= wait <= 31
    assert RetryPolicy(max_delay=5).delay(0, _HTTPError(429, {"Retry-After": "100"})) == 5


def test_retry_policy_honours_retry_after_and_gives_up():
    calls = []

    def always_429():
        calls.append(time.monotonic())
        raise _HTTPError(429, {"Retry-After": "0.2"})

    policy = RetryPolicy(attempts=3, base_delay=0.0, max_delay=1.0)
    try:
        policy.call(always_429, what="x")
    except Exception as err:  # noqa: BLE001 - any error type: the test is about the attempts it names
        assert "3 attempts" in str(err)
    else:  # pragma: no cover
        raise AssertionError("should have given up")
    assert len(calls) == 3 and calls[1] - calls[0] >= 0.19
