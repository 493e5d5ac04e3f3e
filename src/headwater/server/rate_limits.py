"""Requests per second per client: a token bucket per API key and per anonymous client address, answered
with 429, ``Retry-After`` and a JSON message when empty.

Why a token bucket: it allows what real clients do — a burst (a loader opening its 12 connections, a Hub
client's HEAD then GET of each file) — and bounds what one client takes over time. ``rate`` tokens a
second flow into each bucket up to ``burst``; a request takes one, and one that finds none is refused at
once (before routing, before its body is read), with ``Retry-After`` the whole seconds until the next
token is there.

Who is counted: a request carrying ``Authorization`` is counted against its key (one bucket whichever form
the server accepts it in, raw or base64; keyed by a digest, so secrets are not kept); other requests
against the client's address (``scope["client"]``: behind a proxy, uvicorn's ``--proxy-headers`` from
trusted addresses decide it). A key the server refuses (401) also costs its address a token, and keyed
requests from an address whose bucket is empty are refused too: inventing keys does not buy an unlimited
supply. ``/healthz`` is never limited (load balancers poll it).

The buckets live in the memory of one server process: with ``--workers N`` each worker keeps its own,
so a client whose requests spread over the workers can get up to N times the rate (the kernel hands
connections to workers, so one kept-alive connection stays with one worker). The number of buckets is
bounded (:data:`MAX_BUCKETS`; the least recently used are dropped, and a dropped bucket is a full one).

Example:
    >>> limit = RateLimit.parse("2/s,burst=3")
    >>> limit.rate, limit.burst, str(limit)
    (2.0, 3, '2/s,burst=3')
    >>> buckets = TokenBuckets(limit)
    >>> [buckets.take("key:k", now=0.0) for _ in range(4)]
    [0.0, 0.0, 0.0, 0.5]
    >>> buckets.take("key:k", now=0.5)
    0.0
    >>> RateLimit.parse("off") is None, str(RateLimit.parse("600/min"))
    (True, '10/s,burst=20')
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import bearer_token
from .errors import ServerConfigError

__all__ = ["RateLimit", "TokenBuckets", "RateLimits", "DEFAULT_RATE_LIMIT", "MAX_BUCKETS", "LOOPBACK_HOSTS",
           "default_rate_limit"]

DEFAULT_RATE_LIMIT = "100/s,burst=200"
"""What ``headwater serve`` applies when it listens on an address other than loopback and no
``--rate-limit`` is given. Measured on the 2-core dev machine: a cheesechaser batch download of 600 files
with 12 workers sends ~1,650 requests (HEAD + GET per index and file) at ~200/s against a local server;
under this limit it gets a few dozen 429s, which huggingface_hub (under cheesechaser) waits out and retries —
every file arrives, in ~15 s instead of ~8 s. Streams and headwater's own range-merging downloads send far
fewer requests, and HF itself allows ~17/s."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
"""Bind addresses on which rate limiting is off unless asked for (only this machine can connect)."""

MAX_BUCKETS = 100_000
"""Buckets kept per process (one per key or address seen lately); ~200 bytes each."""



def default_rate_limit(host: str) -> str:
    """The limit ``headwater serve`` applies when listening on ``host`` without ``--rate-limit``: off on
    loopback (only this machine's programs can connect, e.g. a training job's loaders), else
    :data:`DEFAULT_RATE_LIMIT`.

    >>> default_rate_limit("127.0.0.1"), default_rate_limit("0.0.0.0")
    ('off', '100/s,burst=200')
    """
    return "off" if host.strip("[]").lower() in LOOPBACK_HOSTS else DEFAULT_RATE_LIMIT


_SPEC = re.compile(r"^\s*(?P<rate>\d+(?:\.\d+)?)\s*/\s*(?P<unit>s|sec|second|m|min|minute|h|hour)\s*"
                   r"(?:,\s*burst\s*=\s*(?P<burst>\d+)\s*)?$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_UNLIMITED = ("/healthz",)


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests per second on average, ``burst`` at once (the bucket's size)."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ServerConfigError(f"rate limit: the rate must be > 0 requests per second, got {self.rate!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ServerConfigError(f"rate limit: burst must be an integer >= 1, got {self.burst!r}")

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """``"50/s"``, ``"50/s,burst=100"``, ``"3000/min"`` (per ``s``, ``min`` or ``h``) or ``"off"`` (None).
        Without ``burst`` the bucket holds two seconds' worth (at least 1)."""
        if text.strip().lower() in ("off", "none", "0"):
            return None
        match = _SPEC.match(text)
        if match is None:
            raise ServerConfigError(f"rate limit {text!r}: expected RATE/UNIT[,burst=N] (e.g. 50/s,burst=100 or "
                                    "3000/min) or off")
        rate = float(match["rate"]) / _UNIT_SECONDS[match["unit"].lower()]
        burst = int(match["burst"]) if match["burst"] else max(1, math.ceil(2 * rate))
        return cls(rate, burst)

    def __str__(self) -> str:
        for unit, seconds in (("s", 1), ("min", 60), ("h", 3600)):
            if self.rate * seconds >= 1 or unit == "h":
                return f"{self.rate * seconds:g}/{unit},burst={self.burst}"
        raise AssertionError("unreachable")


class TokenBuckets:
    """One token bucket per client key, thread-safe, at most ``max_buckets`` of them (least recently used
    dropped first)."""

    def __init__(self, limit: RateLimit, *, max_buckets: int = MAX_BUCKETS) -> None:
        self.limit = limit
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.limit.burst), now))
        return min(float(self.limit.burst), tokens + max(0.0, now - at) * self.limit.rate)

    def take(self, key: str, *, now: float | None = None) -> float:
        """Take a token from ``key``'s bucket: 0.0 when there was one, else the seconds until there is one
        (nothing is taken then)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens = self._level(key, now)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0, now)
                return 0.0
            self._store(key, tokens, now)
            return (1.0 - tokens) / self.limit.rate

    def wait(self, key: str, *, now: float | None = None) -> float:
        """Seconds until ``key``'s bucket holds a token (0.0: it holds one now); takes nothing."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens = self._level(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.limit.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)


def _credential(scope: Scope) -> bytes | None:
    """What identifies the caller's key: the key itself whichever way it was sent (raw or base64, as
    :func:`~headwater.server.auth.bearer_token` reads it), else the header as it is; None without one."""
    request = Request(scope)
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        return None
    try:
        token = bearer_token(request)
    except HTTPException:  # malformed: the route answers 401; counted by what was sent
        token = None
    return (token or header).encode("utf-8", "surrogateescape")


class RateLimits:
    """ASGI middleware applying a :class:`RateLimit` per API key and per anonymous client address (see the
    module docstring); ``limit`` None passes everything through.

    Example:
        >>> from starlette.applications import Starlette
        >>> from starlette.responses import PlainTextResponse
        >>> from starlette.routing import Route
        >>> from starlette.testclient import TestClient
        >>> async def hello(request):
        ...     return PlainTextResponse("hi")
        >>> app = RateLimits(Starlette(routes=[Route("/", hello)]), limit=RateLimit(rate=0.01, burst=2))
        >>> client = TestClient(app)
        >>> [client.get("/").status_code for _ in range(3)]
        [200, 200, 429]
        >>> r = client.get("/"); r.headers["retry-after"], r.json()["error"].split(":")[0]
        ('100', 'too many requests from this client')
    """

    def __init__(self, app: ASGIApp, *, limit: RateLimit | None) -> None:
        self.app = app
        self.limit = limit
        self.buckets = TokenBuckets(limit) if limit is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        buckets = self.buckets
        if buckets is None or scope["type"] != "http" or scope["path"] in _UNLIMITED:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = "addr:" + (client[0] if client else "?")
        auth = _credential(scope)
        if auth is None:
            wait = buckets.take(address)
        else:
            wait = buckets.wait(address)  # an address that spent its tokens on refused keys
            if not wait:
                wait = buckets.take("key:" + hashlib.blake2b(auth, digest_size=16).hexdigest())
        if wait:
            await self._refuse(send, wait, "API key" if auth is not None and not buckets.wait(address) else "address")
            return
        if auth is None:
            await self.app(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                buckets.take(address)  # a refused key costs its address
            await send(message)

        await self.app(scope, receive, watch)

    async def _refuse(self, send: Send, wait: float, who: str) -> None:
        seconds = max(1, math.ceil(wait))
        body = json.dumps({"error": f"too many requests from this client: the server allows {self.limit} per {who}; "
                                    f"retry in {seconds} s"}).encode()
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", str(seconds).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
