"""The one retry policy: how failures are sorted, Retry-After, which failures are retried (through a real
HTTP store on 127.0.0.1 with injected faults), and the Backoff mechanism."""

from __future__ import annotations

import email.utils
import errno
import time

import pytest

from headwater.storage import (
    HttpStatusError,
    RetryPolicy,
    StorageError,
    Store,
    StoreAuthError,
    StoreNotFoundError,
    StoreUnavailableError,
    classify,
)

from ..support.httpserver import Fault
from .conftest import FAST_RETRY, SHARD


def _status(code: int, headers: dict[str, str] | None = None) -> HttpStatusError:
    return HttpStatusError("http://127.0.0.1/x", code, "reason", headers or {})


@pytest.mark.parametrize(("err", "kind"), [
    (_status(401), "auth"), (_status(403), "auth"), (_status(404), "missing"), (_status(429), "retry"),
    (_status(500), "retry"), (_status(502), "retry"), (_status(503), "retry"), (_status(504), "retry"),
    (_status(599), "retry"), (_status(408), "retry"), (_status(400), "other"), (_status(416), "other"),
    (ConnectionResetError("reset by peer"), "retry"), (ConnectionRefusedError(), "retry"), (TimeoutError(), "retry"),
    (BrokenPipeError(), "retry"), (OSError(errno.ETIMEDOUT, "timed out"), "retry"),
    (OSError(errno.ENOSPC, "disk full"), "other"), (FileNotFoundError("gone"), "missing"),
    (StoreNotFoundError("gone"), "missing"), (PermissionError("denied"), "auth"), (StoreAuthError("no"), "auth"),
    (ValueError("a bug"), "other"),
], ids=lambda v: v if isinstance(v, str) else f"{type(v).__name__}{getattr(v, 'status', '')}")
def test_classify_sorts_failures(err, kind):
    assert classify(err) == kind


def test_retry_policy_honours_retry_after_seconds_and_http_dates():
    policy = RetryPolicy(attempts=3, base_delay=1.0, max_delay=60.0)
    assert policy.delay(0, _status(429, {"Retry-After": "7"})) == 7.0
    assert policy.delay(5, _status(503, {"retry-after": "0"})) == 0.0  # the hint wins over the backoff
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28.0 <= policy.delay(0, _status(503, {"Retry-After": soon})) <= 30.0
    past = email.utils.formatdate(time.time() - 300, usegmt=True)
    assert policy.delay(0, _status(503, {"Retry-After": past})) == 0.0
    assert RetryPolicy(max_delay=5.0).delay(0, _status(429, {"Retry-After": "120"})) == 5.0  # capped
    for attempt in range(4):  # no (or an unreadable) hint: exponential backoff with jitter, capped
        for err in (_status(503), _status(503, {"Retry-After": "soon"}), ConnectionResetError()):
            assert 0.5 * 2**attempt <= policy.delay(attempt, err) <= 2**attempt
    assert RetryPolicy(base_delay=1.0, max_delay=3.0).delay(10, ConnectionResetError()) <= 3.0


def test_a_retry_after_from_the_server_replaces_the_backoff(file_server, blob):
    root, data = blob
    server = file_server(root)
    server.inject(SHARD, Fault.status(503, {"Retry-After": "0.3"}))
    store = Store(server.url, retry=RetryPolicy(attempts=2, base_delay=20.0, max_delay=30.0))
    start = time.monotonic()
    assert store.read_range(SHARD, 10, 20) == data[10:20]
    assert 0.3 <= time.monotonic() - start < 5.0  # the backoff alone would wait 10-20 s
    assert store.stats.requests == 2 and store.stats.retries == 1


@pytest.mark.parametrize(("faults", "error", "requests"), [
    ([Fault.status(401)], StoreAuthError, 1),
    ([Fault.status(403)], StoreAuthError, 1),
    ([Fault.status(404)], StoreNotFoundError, 1),
    ([Fault.status(429, {"Retry-After": "0"})] * 4, StoreUnavailableError, 4),
    ([Fault.status(500)] * 4, StoreUnavailableError, 4),
    ([Fault.status(503)] * 4, StoreUnavailableError, 4),
    ([Fault.reset()] * 4, StoreUnavailableError, 4),
    ([Fault.truncate()] * 4, StoreUnavailableError, 4),
    ([Fault.status(400)], HttpStatusError, 1),  # neither transient nor auth nor missing: raised as it is
], ids=["401", "403", "404", "429", "500", "503", "reset", "truncate", "400"])
def test_http_failures_are_sorted_and_only_transient_ones_retried(file_server, blob, faults, error, requests):
    root, _data = blob
    server = file_server(root)
    server.inject(SHARD, *faults)
    store = Store(server.url, retry=FAST_RETRY)
    with pytest.raises(error) as info:
        store.read_range(SHARD, 0, 100)
    assert server.requests[SHARD] == requests == store.stats.requests
    assert isinstance(info.value, StorageError)  # a 400 too: every failure of a store is a StorageError
    with pytest.raises(StoreNotFoundError):  # a missing file: one request, no retry
        store.read_range("nope.tar", 0, 1)
    assert server.requests["nope.tar"] == 1


@pytest.mark.parametrize("fault", [Fault.status(429, {"Retry-After": "0"}), Fault.status(502), Fault.reset(),
                                   Fault.truncate(), Fault.short(), Fault.stall(0.2)],
                         ids=["429", "502", "reset", "truncate", "short", "stall"])
def test_a_transient_failure_is_retried_and_the_bytes_are_exact(file_server, blob, fault):
    root, data = blob
    server = file_server(root)
    server.inject(SHARD, fault)
    store = Store(server.url, retry=FAST_RETRY)
    assert store.read_range(SHARD, 1_000, 51_000) == data[1_000:51_000]
    retried = fault.kind != "stall"  # a late answer is still an answer
    assert store.stats.retries == int(retried) and server.requests[SHARD] == 1 + int(retried)
    assert store.stats.bytes_read == 50_000


def test_backoff_gives_up_after_its_attempts_or_past_its_deadline_and_starts_again_after_progress():
    slept: list[float] = []
    backoff = RetryPolicy(attempts=3, base_delay=1.0, max_delay=8.0).backoff(sleep=slept.append)
    err = ConnectionResetError("reset")
    assert [backoff.failed(err) for _ in range(3)] == [True, True, False]
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0  # doubling, with jitter
    assert backoff.gave_up() == "still failing after 3 attempts"
    backoff.reset()  # progress: a new run of failures
    assert backoff.failed(err) and backoff.failures == 1
    # a deadline: the last wait ends at it, and no attempt starts after it, however many attempts are left
    deadline = RetryPolicy(attempts=1000, base_delay=0.02, max_delay=0.02, deadline=0.1).backoff()
    start = time.monotonic()
    while deadline.failed(err):
        pass
    assert 0.05 <= time.monotonic() - start <= 0.5 and deadline.failures < 20
    assert "deadline 0.1 s" in deadline.gave_up()
    with pytest.raises(ValueError, match="attempts must be an int >= 1"):
        RetryPolicy(attempts=0)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="deadline must be a finite number of seconds >= 0"):
            RetryPolicy(deadline=bad)


# -- Retry-After beyond the policy's own waits, and under a deadline ------------------------------------------
# waits of at most 0.05 s of its own: a longer pause between two attempts can only be the server's Retry-After
PATIENT = RetryPolicy(attempts=50, base_delay=0.01, max_delay=0.05, deadline=20.0)


def _gap(server, path: str) -> float:
    """Seconds between the first two requests the server received for ``path``."""
    times = [r.at for r in server.seen if r.path == path]
    return times[1] - times[0]


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "date"])
def test_range_reads_wait_as_long_as_retry_after_says_under_a_deadline(file_server, blob, status, form):
    """On main the hint was cut to ``max_delay`` (0.05 s): the retry came back at once."""
    root, data = blob
    server = file_server(root)
    value = "1" if form == "seconds" else email.utils.formatdate(time.time() + 2, usegmt=True)
    server.inject(SHARD, Fault.status(status, {"Retry-After": value}))
    store = Store(server.url, retry=PATIENT)
    assert store.read_range(SHARD, 10, 20) == data[10:20]
    assert _gap(server, SHARD) >= 0.9  # an HTTP date has whole seconds: 1-2 s from now
    assert store.stats.requests == 2 and store.stats.retries == 1  # the 429/503 counted as a retry


def test_a_retry_after_past_the_deadline_is_cut_to_it_and_tried_once_more(file_server, blob):
    """On main a hint longer than the time left ended the read at once, without waiting at all."""
    root, data = blob
    server = file_server(root)
    server.inject(SHARD, Fault.status(429, {"Retry-After": "3600"}))
    store = Store(server.url, retry=RetryPolicy(attempts=50, base_delay=0.01, max_delay=0.05, deadline=1.0))
    assert store.read_range(SHARD, 10, 20) == data[10:20]
    assert 0.9 <= _gap(server, SHARD) < 60  # waited out the deadline, not the hour
    server.inject(SHARD, *[Fault.status(503, {"Retry-After": "3600"})] * 3)
    with pytest.raises(StoreUnavailableError, match=r"still failing after 2 attempts over 1\.\d s \(deadline 1 s\)"):
        store.read_range(SHARD, 10, 20)


def test_jitter_schemes_stay_within_their_bounds_and_spread():
    err = ConnectionResetError()
    full = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter="full")
    draws = [full.delay(2, err) for _ in range(400)]
    assert all(0.0 <= d <= 4.0 for d in draws) and min(draws) < 1.0 < 3.0 < max(draws)  # 0-100 % of 1 * 2**2
    assert RetryPolicy(base_delay=1.0, max_delay=8.0, jitter="none").delay(2, err) == 4.0
    assert RetryPolicy(base_delay=1.0, max_delay=8.0, jitter="none").delay(10, err) == 8.0  # capped
    decorrelated = RetryPolicy.lasting(60.0)
    assert decorrelated.deadline == 60.0 and decorrelated.jitter == "decorrelated"
    draws = [decorrelated.delay(0, err, previous=p) for p in (None, 0.25, 1.0, 4.0, 5.0) for _ in range(100)]
    assert all(0.25 <= d <= 5.0 for d in draws) and len({round(d, 3) for d in draws}) > 100
    # a Backoff feeds each wait back as the previous one: waits grow from 0.25 s and never pass the cap
    slept: list[float] = []
    backoff = RetryPolicy(attempts=40, base_delay=0.25, max_delay=5.0, jitter="decorrelated").backoff(
        sleep=slept.append)
    while backoff.failed(err):
        pass
    assert len(slept) == 39 and all(0.25 <= s <= 5.0 for s in slept) and max(slept) > 2.0
    with pytest.raises(ValueError, match="jitter must be one of"):
        RetryPolicy(jitter="random")  # type: ignore[arg-type]
    for bad in (float("nan"), -1.0):
        with pytest.raises(ValueError, match="delays must be >= 0"):
            RetryPolicy(base_delay=bad)


def test_a_failing_server_behind_fsspecs_file_not_found_is_retried_not_missing(file_server, blob):
    """fsspec's HTTP ``info`` turns any failure of its HEAD and GET into ``FileNotFoundError``: on main a 503
    (or a refused connection) on a pool's manifest read as "no manifest", and was never retried."""
    root, _ = blob
    server = file_server(root)
    server.inject(SHARD, Fault.status(503, {"Retry-After": "1"}), Fault.status(503, {"Retry-After": "1"}))
    store = Store(server.url, retry=PATIENT)
    assert store.info(SHARD)["size"] == 100_000
    assert [r.method for r in server.seen] == ["HEAD", "GET", "HEAD"]  # fsspec: HEAD, then GET; then retried
    assert server.seen[2].at - server.seen[1].at >= 0.9 and store.stats.retries == 1  # as long as Retry-After said
    with pytest.raises(StoreNotFoundError):  # a real 404 stays "not found", at once
        store.info("nothing.tar")
    assert store.stats.retries == 1
    closed = Store(f"http://127.0.0.1:{server.port}", retry=RetryPolicy(attempts=2, base_delay=0.0))
    server.stop()
    with pytest.raises(StoreUnavailableError, match="still failing after 2 attempts"):
        closed.size(SHARD)
    assert classify(_wrapped_in_fnf(_status(429))) == "retry"
    assert classify(_wrapped_in_fnf(_status(403))) == "auth" and classify(_wrapped_in_fnf(_status(404))) == "missing"


def _wrapped_in_fnf(err: BaseException) -> FileNotFoundError:
    try:
        raise FileNotFoundError("http://127.0.0.1/x") from err
    except FileNotFoundError as wrapped:
        return wrapped
