"""What one connection may cost a server process: how long it may take to send a request head or the next
piece of a body, how long it may leave a response unread, how large a request head may be, how many
connections are served at once, and how much of a response may wait in memory for a slow client.

What uvicorn (0.54, read from its source) covers and what it does not:

* ``timeout_keep_alive`` is armed when a response is complete and disarmed by the first byte of the next
  request. A connection that sends nothing, or half a request head, is never closed (measured on a live
  ``headwater serve``: 800 such connections held 800 descriptors for as long as the clients liked).
* ``limit_concurrency`` answers 503 to a request that arrives while that many connections or tasks exist.
* h11 (uvicorn's protocol unless httptools is installed; it is not in headwater's environment) refuses a
  head larger than ``h11_max_incomplete_event_size`` (16 KiB) with a 400; uvicorn's httptools protocol has
  no such cap.
* A response-body message is written into the transport whole, and uvicorn waits for the transport to
  drain only *before* the next write; starlette reads the next chunk of a streamed body before that write.
  So a client that stops reading pins up to two 4 MiB chunks of a pool file, for as long as it stays
  connected (measured: 200 clients that requested a 60 MB file and never read: +1.1 GB of server RSS,
  5.7 MB each, and 400 descriptors, forever).

What this module adds, in the two places where each can be enforced:

* On the connection (:class:`LimitedHTTPProtocol`, a subclass of uvicorn's protocol using only what its
  h11 and httptools protocols share): the bytes before the app sees a request and after it handed them over.

  - *Head deadline*: a request head must be complete within ``timeout_header`` seconds of the connection
    being made, or of the previous response being complete on a kept-alive connection; else 408 (when part
    of a head came) or a plain close (nothing came). When a response went out before its request's body had
    all arrived (an early 401 or 413), the rest of the body is discarded by uvicorn under the body's rule
    (no pause over ``timeout_body``, else a plain close), and the head deadline starts after it.
  - *Head size*: a head (request line and headers) longer than ``max_header_size`` bytes → 431 and close,
    counted as the bytes arrive (the first bytes past the limit are refused, not buffered).
  - *Send progress*: while unsent response bytes wait in the transport above its high-water mark (or any
    at all once the connection is closing), some must leave every ``timeout_send`` seconds; else the
    connection is aborted and its buffer dropped (checked every quarter of the timeout: a stalled client is
    cut between 1 and 1.25 × ``timeout_send`` after its last progress).

* In the app, for every route:

  - *Body inactivity* (:class:`BodyTimeout`, ASGI middleware): a ``receive()`` that waits more than
    ``timeout_body`` seconds for the next piece of an unfinished request body ends the request (the route
    is cancelled): 408 with ``Connection: close`` when no response has started, else the connection is
    closed.
  - *Response pacing* (:class:`PacedStreamingResponse`, the streamed pool files and NDJSON splits): a chunk
    is let go of once written, and the next one is read only after the transport has drained. A client that
    stops reading then pins only what the kernel did not take of one chunk (at most one chunk: 4 MiB for a
    pool file, ``range_responses.CHUNK``), until ``timeout_send`` cuts it: at most ~4 MiB per connection
    and ``limit_concurrency`` × 4 MiB per process, for at most 1.25 × ``timeout_send``; plus, while many
    responses start at once, the chunks being read (one per thread of the pool, anyio's 40). Measured on
    loopback (the kernel's socket buffers take part of each chunk): the 200 clients above now cost +237 MB
    at peak, +127 MB after, until cut; 100 clients of a 40 MB file +258 MiB at peak, +681 MiB before.

Example:
    >>> limits = Limits(timeout_header=2)
    >>> limits.timeout_header, limits.timeout_keep_alive, limits.limit_concurrency, limits.max_header_size
    (2, 5.0, 1024, 16384)
    >>> options = uvicorn_options(limits)
    >>> options["limit_concurrency"], options["http"].keywords["limits"] is limits
    (1024, True)
    >>> Limits(timeout_send=0)
    Traceback (most recent call last):
    ...
    ValueError: timeout_send must be > 0, got 0
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from dataclasses import dataclass, fields
from http import HTTPStatus
from typing import Any

import anyio
import anyio.lowlevel
import h11
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["Limits", "LimitedHTTPProtocol", "BodyTimeout", "PacedStreamingResponse", "uvicorn_options", "PACE_ABOVE"]

logger = logging.getLogger("uvicorn.error")  # where uvicorn reports its own refusals (400, 503)

PACE_ABOVE = 64 << 10
"""Streamed chunks larger than this are followed by a wait for the transport to drain. asyncio's default
high-water mark: a smaller chunk overshoots it by no more than its own size, and uvicorn already waits for
the drain before the next write."""

_READ_SIZE = 256 << 10
"""The most one socket read hands a protocol (asyncio's selector transport)."""
_HEAD_END = re.compile(rb"\r?\n\r?\n")
"""Where a request head ends (h11 and httptools accept bare LF line ends too)."""


@dataclass(frozen=True)
class Limits:
    """The limits of one server process. :class:`~headwater.server.app.ServerConfig` carries the same
    fields flat (it travels to worker processes as JSON); ``ServerConfig.limits`` builds this from them."""

    timeout_header: float = 10.0
    """Seconds to send a complete request head, from connecting or from the previous response. Clients of
    this server are programs that write a head in one piece; 10 s absorbs any network hiccup (Go's
    ``ReadHeaderTimeout`` is commonly set to 10 s; nginx's ``client_header_timeout`` is 60 s)."""
    timeout_keep_alive: float = 5.0
    """Seconds an idle kept-alive connection waits for its next request (uvicorn's own timeout and default;
    httpx, which headwater's client uses, expires idle connections after 5 s too). A longer one is capped
    by ``timeout_header``, which also starts when a response is complete."""
    timeout_body: float = 60.0
    """Seconds a request body may pause between two pieces (nginx's ``client_body_timeout`` default)."""
    timeout_send: float = 60.0
    """Seconds a client may leave response bytes unread before the connection is cut (nginx's
    ``send_timeout`` default). Slow readers are fine: any progress resets it."""
    limit_concurrency: int = 1024
    """Open connections (idle ones too) or running requests per process at which further requests get 503
    (uvicorn's ``limit_concurrency``). Well above what the loaders of a training job open against one
    process (a batch download uses 12 connections; spread wider jobs over ``--workers``), and it caps the
    memory stalled clients can pin at ~4 GiB (see the module docstring). Each streamed download also holds
    a descriptor on its file: ``ulimit -n`` should be above 2 × this."""
    max_header_size: int = 16 << 10
    """Bytes of a request head (request line and headers) before 431: h11's own default. A Range header of
    headwater's largest batch (100 ranges) is ~2.5 KB."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{f.name} must be > 0, got {value!r}")


def uvicorn_options(limits: Limits, protocol: Any = None) -> dict[str, Any]:
    """The ``uvicorn.Config`` options that enforce ``limits``: uvicorn's own timeout and concurrency limit,
    and ``protocol`` (a :class:`LimitedHTTPProtocol` subclass; default that class) bound to ``limits``.

    h11's own head cap is set one socket read above ``max_header_size``, so that the protocol's check
    answers first, with 431 (h11's answer is uvicorn's generic 400).
    """
    return {"http": functools.partial(protocol or LimitedHTTPProtocol, limits=limits),
            "timeout_keep_alive": limits.timeout_keep_alive, "limit_concurrency": limits.limit_concurrency,
            "h11_max_incomplete_event_size": limits.max_header_size + _READ_SIZE}


def _refusal(status: int, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class LimitedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]  # a variable: h11's or httptools' class
    """uvicorn's HTTP protocol with the head deadline, head size cap and send-progress deadline of
    :class:`Limits` (module docstring). Uses only what uvicorn's h11 and httptools protocols share:
    ``cycle`` (the current request; a new one appears when a head is complete; ``more_body`` and
    ``response_complete``), ``transport``, ``flow``, ``loop``, ``client``, ``data_received``,
    ``on_response_complete``, ``pause_writing``/``resume_writing`` and ``timeout_keep_alive_handler``; and
    h11's ``conn`` where present, to see the end of a body answered early. ``limits`` comes as a keyword
    (:func:`uvicorn_options` binds it).
    """

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or Limits()
        self._waiting: str | None = None
        """Between requests: "head" (the next request's head is awaited), "body" (the rest of a body whose
        response went out first is arriving, and is discarded by uvicorn), None (a request is running)."""
        self._wait_timer: asyncio.TimerHandle | None = None
        self._wait_after: Any = None
        """The request that was current when the wait began (None on a new connection)."""
        self._head_bytes = 0
        self._head_tail = b""
        """The last bytes received while a head is awaited (its end may be split between two reads)."""
        self._last_data = 0.0
        self._send_timer: asyncio.TimerHandle | None = None
        self._unsent = 0
        self._drained = False
        self._stalled_checks = 0

    # -- between requests: the head, or the rest of a body answered early -------------------------------------
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._wait_for("head")

    def data_received(self, data: bytes) -> None:
        if self._waiting == "head" and not self.transport.is_closing():  # count the head's bytes, not the body's
            seen = self._head_tail + data
            end = _HEAD_END.search(seen)
            size = self._head_bytes + (end.end() - len(self._head_tail) if end else len(data))
            if size > self.limits.max_header_size:
                self._refuse(431, f"request head larger than {self.limits.max_header_size} bytes")
                return
            self._head_bytes, self._head_tail = size, seen[-3:]
        super().data_received(data)
        if self._waiting is None:
            return
        if self.cycle is not self._wait_after:  # a head is complete: a request runs
            self._stop_waiting()
            self._watch_send()
        elif self._waiting == "body":
            self._last_data = self.loop.time()
            if not self._body_left():
                self._wait_for("head")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            self._watch_send()
        elif self.cycle is not None and self.cycle.response_complete:  # no pipelined request started
            self._wait_for("body" if self.cycle.more_body else "head")

    def _body_left(self) -> bool:
        """Whether the rest of a body answered early is still arriving: h11 says so; uvicorn's httptools
        protocol discards it without a trace (the wait for it then ends at the next head, or idle)."""
        conn = getattr(self, "conn", None)
        return conn is None or conn.their_state is h11.SEND_BODY

    def _wait_for(self, what: str) -> None:
        self._stop_waiting()
        self._waiting, self._wait_after = what, self.cycle
        self._head_bytes, self._head_tail, self._last_data = 0, b"", self.loop.time()
        timeout = self.limits.timeout_header if what == "head" else self.limits.timeout_body
        self._wait_timer = self.loop.call_later(timeout, self._wait_expired)

    def _stop_waiting(self) -> None:
        if self._wait_timer is not None:
            self._wait_timer.cancel()
        self._waiting = self._wait_timer = None

    def _wait_expired(self) -> None:
        self._wait_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed, or upgraded
            return
        if self._waiting == "body":  # the body's own rule: no pause longer than timeout_body
            idle = self.loop.time() - self._last_data
            if idle < self.limits.timeout_body:
                self._wait_timer = self.loop.call_later(self.limits.timeout_body - idle, self._wait_expired)
                return
            self._close()
        elif self._head_bytes:
            self._refuse(408, f"request head not complete within {self.limits.timeout_header:g} s")
        else:
            self._close()

    def _close(self) -> None:
        self._waiting = None
        self.transport.close()
        self._watch_send()

    def _refuse(self, status: int, message: str) -> None:
        logger.info("%s: %d %s; closing the connection", self._who(), status, message)
        self.transport.write(_refusal(status, message))
        self._close()

    # -- the response's bytes -----------------------------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_send()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._drained = True

    def timeout_keep_alive_handler(self) -> None:
        super().timeout_keep_alive_handler()
        self._watch_send()

    def _watch_send(self) -> None:
        """Check for send progress every quarter of ``timeout_send`` while a request runs or bytes are unsent."""
        if self._send_timer is None:
            self._unsent = self.transport.get_write_buffer_size()
            self._drained = False
            self._stalled_checks = 0
            self._send_timer = self.loop.call_later(self.limits.timeout_send / 4, self._check_send)

    def _check_send(self) -> None:
        self._send_timer = None
        transport = self.transport
        if transport.get_protocol() is not self:  # upgraded to another protocol
            return
        unsent = transport.get_write_buffer_size()
        waiting_on_client = unsent > 0 and (self.flow.write_paused or transport.is_closing())
        if waiting_on_client and not self._drained and unsent >= self._unsent:
            self._stalled_checks += 1
            if self._stalled_checks >= 4:
                logger.info("%s: %d response bytes unread for %g s; aborting the connection", self._who(), unsent,
                            self.limits.timeout_send)
                transport.abort()
                return
        else:
            self._stalled_checks = 0
        if unsent or (self.cycle is not None and not self.cycle.response_complete):
            self._unsent, self._drained = unsent, False
            self._send_timer = self.loop.call_later(self.limits.timeout_send / 4, self._check_send)

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().connection_lost(exc)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding":
            return True
    return False


class BodyTimeout:
    """ASGI middleware: a request body that pauses for more than ``timeout_body`` seconds ends its request
    (module docstring). Requests that declare no body pass through untouched.

    Example (the test client sends whole bodies, so the deadline does not fire here; ``tests/server/
    test_limits.py`` has a real stalled client):
        >>> from starlette.applications import Starlette
        >>> from starlette.responses import PlainTextResponse
        >>> from starlette.routing import Route
        >>> from starlette.testclient import TestClient
        >>> async def echo(request):
        ...     return PlainTextResponse(await request.body())
        >>> app = BodyTimeout(Starlette(routes=[Route("/", echo, methods=["POST"])]), timeout_body=1)
        >>> TestClient(app).post("/", content=b"hello").text
        'hello'
    """

    def __init__(self, app: ASGIApp, *, timeout_body: float = Limits.timeout_body) -> None:
        self.app = app
        self.timeout_body = timeout_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        started = body_done = stalled = False
        request_scope = anyio.CancelScope()

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        async def timed_receive() -> Message:
            nonlocal body_done, stalled
            if body_done:
                return await receive()
            with anyio.move_on_after(self.timeout_body):
                message = await receive()
                body_done = not (message["type"] == "http.request" and message.get("more_body", False))
                return message
            stalled = True
            request_scope.cancel()
            await anyio.lowlevel.checkpoint()  # the cancellation surfaces here, inside the route
            return {"type": "http.disconnect"}  # (a route that swallowed it sees the client as gone)

        with request_scope:
            await self.app(scope, timed_receive, tracked_send)
        if not stalled:
            return
        client = scope.get("client")
        logger.info("%s: request body paused for %g s; %s", f"{client[0]}:{client[1]}" if client else "a client",
                    self.timeout_body, "closing the connection" if started else "408")
        if not started:  # else: returning mid-response makes uvicorn close the connection
            body = json.dumps({"error": f"request body paused for more than {self.timeout_body:g} s"}).encode()
            await send({"type": "http.response.start", "status": 408,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body, "more_body": False})


class PacedStreamingResponse(StreamingResponse):
    """A streamed body that holds at most one chunk for a slow client: each chunk larger than
    :data:`PACE_ABOVE` is let go of once written, and the next is read only after the transport has drained
    (an empty body message: uvicorn writes it, i.e. returns, only once the transport is below its low-water
    mark). starlette's own loop keeps the chunk it sent while fetching the next, so a client that stops
    reading pins both.

    Example:
        >>> from starlette.testclient import TestClient
        >>> response = PacedStreamingResponse(iter([b"a" * 100_000, b"b"]), media_type="text/plain")
        >>> len(TestClient(response).get("/").content)
        100001
    """

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        chunks = aiter(self.body_iterator)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            body = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode(self.charset)
            del chunk
            large = len(body) > PACE_ABOVE
            await send({"type": "http.response.body", "body": body, "more_body": True})
            del body  # the last reference: what stays is the part the kernel did not take, in the transport
            if large:
                await send({"type": "http.response.body", "body": b"", "more_body": True})  # returns once drained
        await send({"type": "http.response.body", "body": b"", "more_body": False})
