"""The one retry policy: capped exponential backoff with jitter that honours ``Retry-After``, bounded by a
number of attempts, by a deadline, or both.

Every transient failure in headwater goes through it — store reads (:class:`~headwater.storage.Store`),
the Hub revision lookup, every request of the HTTP client and the resumption of a cut split stream — so
"how patient is headwater" is one object to configure. :class:`Backoff` is the mechanism: it counts the
failures *in a row* of one operation, sleeps before the next attempt and says when to give up; an
operation that makes progress between failures (a stream that received droplets) calls
:meth:`Backoff.reset` so that only stretches without progress count.

Why a deadline: "six attempts from 0.25 s" is about 8 s of patience, shorter than a server's rolling
restart, so every client stream ended with it. A deadline says what the user means ("keep trying for 60 s")
whatever the delays are; the attempts may then be unlimited (``attempts=UNLIMITED``). The last wait is cut to
end at the deadline, so an outage shorter than the deadline is always survived. A server's ``Retry-After``
is honoured up to the deadline (without one, up to ``max_delay``).

Why jitter: clients cut off by the same restart must not come back in lock-step. ``"equal"`` (the
default: 50-100 % of the exponential wait), ``"full"`` (0-100 %) and ``"decorrelated"`` (each wait drawn
between ``base_delay`` and three times the previous one, capped) are the schemes of the AWS
architecture note "Exponential Backoff And Jitter"; ``"none"`` is for tests that count waits.

Errors are sorted into kinds by :func:`classify`: *retry* (429, 5xx, connection resets, time-outs),
*auth* (401/403 — never retried, reported as such), *missing* (404 / no such file). Anything else is
raised unchanged.

Example:
    >>> policy = RetryPolicy(attempts=3, base_delay=0.0)
    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionResetError("reset")
    ...     return "ok"
    >>> policy.call(flaky, what="demo")
    'ok'
    >>> backoff = RetryPolicy(attempts=2, base_delay=0.0).backoff()
    >>> backoff.failed(ConnectionResetError()), backoff.failed(ConnectionResetError())
    (True, False)
    >>> patient = RetryPolicy.lasting(60.0)   # a server: as many attempts as fit in 60 s
    >>> all(0.25 <= patient.delay(n, ConnectionResetError(), previous=4.0) <= 5.0 for n in range(20))
    True
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from .errors import StoreAuthError, StoreNotFoundError, StoreUnavailableError

__all__ = ["RetryPolicy", "Backoff", "Jitter", "UNLIMITED", "classify", "retry_after_seconds"]

T = TypeVar("T")
Kind = Literal["retry", "auth", "missing", "other"]
Jitter = Literal["equal", "full", "decorrelated", "none"]
UNLIMITED = 1 << 62
"""``attempts`` for a policy bounded by its deadline only (an int, so ``policy.attempts`` stays a count)."""

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_RESET_ERRNOS = {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT}


def _status_of(err: BaseException) -> int | None:
    for attr in ("status", "status_code"):
        value = getattr(err, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(err, "response", None)
    if response is not None:
        code = getattr(response, "status_code", None) or getattr(response, "status", None)
        if isinstance(code, int):
            return code
        if isinstance(response, dict):  # botocore ClientError
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int):
                return status
    return None


def _wrapped(err: BaseException) -> BaseException | None:
    """The failure behind a ``FileNotFoundError`` that is not one: fsspec's HTTP ``info``/``size``/``exists``
    raise ``FileNotFoundError(url)`` for *any* failure of their HEAD and GET — a 503, a 429, a refused
    connection — with the real error as its cause."""
    cause = err.__cause__
    if isinstance(err, FileNotFoundError) and cause is not None and not isinstance(cause, FileNotFoundError):
        return cause
    return None


def _headers_of(err: BaseException) -> Mapping[str, str]:
    headers = getattr(err, "headers", None)
    if headers is None:
        response = getattr(err, "response", None)
        headers = getattr(response, "headers", None)
    if headers is None and (cause := _wrapped(err)) is not None:
        return _headers_of(cause)
    return headers or {}


def classify(err: BaseException) -> Kind:
    """Sort an exception raised by a store backend into retry / auth / missing / other."""
    if isinstance(err, StoreAuthError):
        return "auth"
    if (cause := _wrapped(err)) is not None and (kind := classify(cause)) in ("retry", "auth"):
        return kind  # a refused, throttled or failing server, not a missing file
    if isinstance(err, (FileNotFoundError, StoreNotFoundError)):
        return "missing"
    status = _status_of(err)
    if status is not None:
        if status in (401, 403):
            return "auth"
        if status == 404:
            return "missing"
        if status in _RETRY_STATUS or status >= 500:
            return "retry"
        return "other"
    if isinstance(err, PermissionError):
        return "auth"
    if isinstance(err, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return "retry"
    if isinstance(err, OSError) and err.errno in _RESET_ERRNOS:
        return "retry"
    name = type(err).__name__
    if name in {"ServerDisconnectedError", "ClientConnectorError", "ClientOSError", "ClientPayloadError",
                "ServerTimeoutError", "RemoteProtocolError", "ReadTimeout", "ConnectTimeout",
                "ReadError", "EndpointConnectionError", "ConnectionClosedError"}:
        return "retry"
    return "other"


def retry_after_seconds(err: BaseException, now: float | None = None) -> float | None:
    """The server's ``Retry-After`` (seconds or HTTP date) carried by ``err``, if any."""
    value = _headers_of(err).get("Retry-After") or _headers_of(err).get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure.

    ``attempts``: tries per operation (the first one included; :data:`UNLIMITED` with a ``deadline``: as
    many as fit in it). ``deadline``: seconds after the first failure of a run of failures beyond which no further
    attempt starts (None: attempts only); the last wait is shortened to end at the deadline. Waits grow as
    ``base_delay * 2**n``, capped at ``max_delay``, spread by ``jitter`` (module docstring). A
    ``Retry-After`` the server sent replaces the computed wait, capped by the deadline (or, without one,
    by ``max_delay``).
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 30.0
    deadline: float | None = None
    jitter: Jitter = "equal"

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {self.attempts!r}")
        if not (self.base_delay >= 0 and self.max_delay >= 0):  # also refuses NaN
            raise ValueError(f"delays must be >= 0, got base_delay={self.base_delay}, max_delay={self.max_delay}")
        if self.deadline is not None and not 0 <= self.deadline < float("inf"):
            raise ValueError(f"deadline must be a finite number of seconds >= 0 or None, got {self.deadline}")
        if self.jitter not in get_args(Jitter):
            raise ValueError(f"jitter must be one of {', '.join(get_args(Jitter))}, got {self.jitter!r}")

    def delay(self, attempt: int, err: BaseException, *, previous: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failure in a row (0-based); ``previous``: the last wait
        (for decorrelated jitter). The deadline's cut is made by :class:`Backoff`."""
        hinted = retry_after_seconds(err)
        if hinted is not None:
            return hinted if self.deadline is not None else min(hinted, self.max_delay)
        if self.jitter == "decorrelated":
            low = self.base_delay
            high = max(low, 3 * (previous if previous is not None else low))
            return min(self.max_delay, random.uniform(low, high))
        backoff: float = min(self.max_delay, self.base_delay * (2 ** min(attempt, 64)))
        if self.jitter == "full":
            return random.uniform(0.0, backoff)
        if self.jitter == "equal":
            return backoff * (0.5 + random.random() / 2)
        return backoff

    @classmethod
    def lasting(cls, seconds: float) -> RetryPolicy:
        """The policy for a server that may be restarting: retry for ``seconds``, as many attempts as fit,
        waits from 0.25 s up to 5 s (so a server that is back is found quickly) with decorrelated jitter
        (so the clients it cut off do not come back in step)."""
        return cls(attempts=UNLIMITED, base_delay=0.25, max_delay=5.0, deadline=seconds, jitter="decorrelated")

    def backoff(self, *, sleep: Callable[[float], None] = time.sleep) -> Backoff:
        """A fresh :class:`Backoff` for one operation under this policy."""
        return Backoff(self, sleep=sleep)

    def call(self, fn: Callable[[], T], *, what: str, on_retry: Callable[[BaseException], None] | None = None) -> T:
        """Run ``fn``; retry transient failures; turn auth/missing failures into store errors."""
        backoff = self.backoff()
        while True:
            try:
                return fn()
            except (StoreAuthError, StoreNotFoundError):
                raise
            except Exception as err:  # classified below, re-raised otherwise
                kind = classify(err)
                if kind == "auth":
                    raise StoreAuthError(f"access refused for {what}: {err}") from err
                if kind == "missing":
                    raise StoreNotFoundError(f"not found: {what}") from err
                if kind != "retry":
                    raise
                if not backoff.failed(err):
                    raise StoreUnavailableError(f"{what}: {backoff.gave_up()}: {err!r}") from err
                if on_retry is not None:
                    on_retry(err)


class Backoff:
    """The failures in a row of one operation under a :class:`RetryPolicy`.

    Call :meth:`failed` with each transient failure: it returns True after waiting the policy's delay
    (try again), or False at once when the attempts or the deadline are spent (give up; :meth:`gave_up`
    says why, for the error message). :meth:`reset` after progress starts the count again.
    """

    __slots__ = ("policy", "failures", "_first", "_last", "_sleep")

    def __init__(self, policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy
        self.failures = 0
        self._first: float | None = None
        self._last: float | None = None
        self._sleep = sleep

    def reset(self) -> None:
        """Progress was made: the next failure is the first of a new run."""
        self.failures = 0
        self._first = None
        self._last = None

    def failed(self, err: BaseException) -> bool:
        """Record a transient failure; wait and return True to try again, or return False to give up."""
        now = time.monotonic()
        if self._first is None:
            self._first = now
        self.failures += 1
        if self.failures >= self.policy.attempts:
            return False
        pause = self.policy.delay(self.failures - 1, err, previous=self._last)
        deadline = self.policy.deadline
        if deadline is not None:
            remaining = self._first + deadline - now
            if remaining <= 0:
                return False
            pause = min(pause, remaining)  # one more attempt right at the deadline
        self._last = pause
        self._sleep(pause)
        return True

    def gave_up(self) -> str:
        """Why :meth:`failed` returned False, e.g. ``still failing after 6 attempts`` or, under a deadline,
        ``still failing after 14 attempts over 60.0 s (deadline 60 s)``."""
        text = f"still failing after {self.failures} attempt{'s' if self.failures != 1 else ''}"
        if self._first is not None and self.policy.deadline is not None:
            text += f" over {time.monotonic() - self._first:.1f} s (deadline {self.policy.deadline:g} s)"
        return text
