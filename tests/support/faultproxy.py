"""A fault-injecting TCP proxy on 127.0.0.1: real clients → proxy → a real server, with the network's faults.

Why a proxy and not faults inside the server: the faults a client must survive (a connection reset in the
middle of a body, a body cut short, a peer that stops sending, a slow link, a front end that answers
429/503 on its own) happen *between* two correct programs. A proxy injects them without touching either, so
the same test runs against ``headwater serve --workers 2`` exactly as deployed, and against any client.

Per request — the proxy follows HTTP/1.1 framing on the way in (``Content-Length`` and chunked bodies), so
every request of a kept-alive connection is seen — it picks at most one fault, from a queue filled by
:meth:`FaultProxy.inject` (deterministic tests; a fault may aim at a path) or else at random with the
probabilities of :class:`FaultPlan`, and applies it to that request's answer:

* ``reset``    — relay the request, relay up to ``cut_after`` bytes of the answer, then abort with a TCP RST;
* ``truncate`` — the same, but close cleanly (FIN): the client sees a body shorter than ``Content-Length``;
* ``stall``    — relay the request, then hold the answer for ``stall_seconds`` before relaying it;
* ``slow``     — relay the answer in ``slow_chunk``-byte pieces, ``slow_delay`` seconds apart;
* ``status``   — never reach the server: answer ``429`` or ``503`` with ``Retry-After: retry_after`` and a
  JSON ``{"error": …}`` body, then close (a rate-limiting or overloaded front end);
* ``upload``   — relay ``cut_after`` bytes of the request (head and body), then abort both connections with a
  RST: the server sees a request cut in the middle of its body (a client that dies while uploading).

``cut_after`` is a number of answer (``upload``: request) bytes, or a ``(lo, hi)`` range drawn from per fault;
a message shorter than that passes whole. For answers the cut happens once
the server has started to answer, so 0 cuts before the first byte of the answer reaches the client but after
the server got (and acted on) the whole request — the case that tests idempotency. ``slow`` lasts for the
rest of the connection; the others end it. Bytes the proxy cannot frame as HTTP/1.1 requests are passed on
unchanged (no more faults on that connection). Counters: :attr:`FaultProxy.connections`,
:attr:`FaultProxy.requests`, :attr:`FaultProxy.faults` (by kind) and :attr:`FaultProxy.cuts` (resets and
truncations that did cut an answer).

Example:
    >>> import http.client, http.server, threading
    >>> class Hello(http.server.BaseHTTPRequestHandler):
    ...     protocol_version = "HTTP/1.1"
    ...     def do_GET(self):
    ...         self.send_response(200); self.send_header("Content-Length", "5"); self.end_headers()
    ...         self.wfile.write(b"hello")
    ...     def log_message(self, *args): pass
    >>> upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    >>> _ = threading.Thread(target=upstream.serve_forever, daemon=True).start()
    >>> with FaultProxy(upstream.server_address[1]) as proxy:
    ...     proxy.inject("status", status=503)
    ...     for _ in range(2):
    ...         conn = http.client.HTTPConnection("127.0.0.1", proxy.port)
    ...         conn.request("GET", "/x")
    ...         answer = conn.getresponse()
    ...         print(answer.status, answer.getheader("Retry-After"), answer.read()[:5])
    ...         conn.close()
    ...     print(proxy.connections, proxy.requests, dict(proxy.faults))
    503 1 b'{"err'
    200 None b'hello'
    2 2 {'status': 1}
    >>> upstream.shutdown(); upstream.server_close()
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import socket
import struct
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["FAULT_KINDS", "ProxyFault", "FaultPlan", "FaultProxy"]

FAULT_KINDS = ("reset", "truncate", "stall", "slow", "status", "upload")
_HEAD_LIMIT = 1 << 20
_PIPE = 64 << 10


@dataclass(frozen=True)
class ProxyFault:
    """One fault to apply to one connection (see the module docstring for the kinds)."""

    kind: str
    cut_after: int | tuple[int, int] = 0
    stall_seconds: float = 1.0
    slow_chunk: int = 1024
    slow_delay: float = 0.005
    status: int | None = None
    """429 or 503 for ``status``; None: either, at random."""
    retry_after: int = 1
    path: str | None = None
    """Only a request whose target contains this string takes the fault (queued faults)."""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (kinds: {', '.join(FAULT_KINDS)})")


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities per connection of each fault kind (their sum at most 1), and the faults' parameters.

    >>> FaultPlan.uniform(0.12).probabilities["reset"]
    0.02
    """

    probabilities: dict[str, float] = field(default_factory=dict)
    template: ProxyFault = ProxyFault("reset", cut_after=(0, 4096))
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.probabilities) - set(FAULT_KINDS)
        if unknown or sum(self.probabilities.values()) > 1 + 1e-9:
            raise ValueError(f"bad fault probabilities {self.probabilities} (kinds: {', '.join(FAULT_KINDS)})")

    @classmethod
    def uniform(cls, total: float, *, seed: int | None = None, **template: Any) -> FaultPlan:
        """``total`` of all connections faulted, spread evenly over the kinds."""
        return cls({k: round(total / len(FAULT_KINDS), 12) for k in FAULT_KINDS},
                   ProxyFault("reset", **{"cut_after": (0, 4096), **template}), seed)

    def draw(self, rng: random.Random) -> ProxyFault | None:
        x = rng.random()
        for kind, p in self.probabilities.items():
            if x < p:
                return replace(self.template, kind=kind)
            x -= p
        return None


class FaultProxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``upstream_host:upstream_port`` in a daemon thread.

    Use as a context manager or :meth:`start` / :meth:`stop`. :attr:`plan` may be replaced at any time.
    """

    def __init__(self, upstream_port: int, plan: FaultPlan | None = None, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan or FaultPlan()
        self.port = 0
        self.connections = 0
        self.requests = 0
        self.log: list[tuple[float, str, str | None]] = []
        """``(time.monotonic(), request line, fault kind or None)`` of every request, in arrival order."""
        self.faults: collections.Counter[str] = collections.Counter()
        self.cuts: collections.Counter[str] = collections.Counter()
        """Faults that cut a message, by kind: resets and truncations of answers, ``upload`` cuts of requests (a
        message shorter than ``cut_after`` passes whole)."""
        self._queue: collections.deque[ProxyFault] = collections.deque()
        self._rng = random.Random(self.plan.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._upstream_ports: set[int] = set()

    # -- control (any thread) ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, kind: str, **options: Any) -> None:
        """Queue one fault for the next connection (whose first request matches ``path``, if given)."""
        with self._lock:
            self._queue.append(ProxyFault(kind, **options))

    def pending(self) -> int:
        """Queued faults not yet applied."""
        with self._lock:
            return len(self._queue)

    def upstream_ports(self) -> set[int]:
        """Local ports of the proxy's open connections to the server (to find which server process holds one)."""
        with self._lock:
            return set(self._upstream_ports)

    def reset_counters(self) -> None:
        with self._lock:
            self.connections = self.requests = 0
            self.faults.clear()
            self.cuts.clear()
            self.log.clear()

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                                              limit=_HEAD_LIMIT))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the proxy (event loop thread) --------------------------------------------------------------------
    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _choose(self, target: str) -> ProxyFault | None:
        with self._lock:
            self.requests += 1
            fault = next((f for f in self._queue if f.path is None or f.path in target), None)
            if fault is not None:
                self._queue.remove(fault)
            else:
                fault = self.plan.draw(self._rng)
            if fault is not None:
                self.faults[fault.kind] += 1
            self.log.append((time.monotonic(), target, fault.kind if fault is not None else None))
            return fault

    def _cut(self, fault: ProxyFault) -> int:
        if isinstance(fault.cut_after, tuple):
            with self._lock:
                return self._rng.randint(*fault.cut_after)
        return fault.cut_after

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self.connections += 1
        upstream: asyncio.StreamWriter | None = None
        port = None
        try:
            head = await _read_head(reader)
            if head is None:
                return
            answer = _Answer()
            if not answer.arm(self._choose(_target(head)), self._cut):
                await self._answer_status(writer, answer.fault)
                return
            up_reader, upstream = await asyncio.open_connection(*self.upstream, limit=_PIPE)
            port = upstream.get_extra_info("sockname")[1]
            with self._lock:
                self._upstream_ports.add(port)
            to_server = asyncio.ensure_future(self._requests(head, reader, _Sink(upstream), writer, answer))
            try:
                await self._answers(up_reader, writer, answer)
            finally:
                to_server.cancel()
                await asyncio.gather(to_server, return_exceptions=True)
        except (ConnectionError, OSError, asyncio.CancelledError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None and not w.is_closing():
                    w.close()
            with self._lock:
                self._upstream_ports.discard(port or 0)
            self._tasks.discard(task)

    async def _requests(self, head: bytes, src: asyncio.StreamReader, dst: _Sink,
                        client: asyncio.StreamWriter, answer: _Answer) -> None:
        """Relay the client's requests one by one, arming each one's fault before it is sent on."""
        try:
            while True:
                dst.budget, answer.upload = answer.upload, None
                dst.write(head)
                await dst.drain()
                framed = await _relay_body(head, src, dst)
                if not framed:  # not HTTP/1.1 as we know it: pass the rest on unchanged
                    while data := await src.read(_PIPE):
                        dst.write(data)
                        await dst.drain()
                    break
                next_head = await _read_head(src)
                if next_head is None:
                    break
                head = next_head
                if not answer.arm(self._choose(_target(head)), self._cut):
                    await self._answer_status(client, answer.fault)
                    client.close()
                    dst.writer.close()
                    return
        except _RequestCut:
            with self._lock:
                self.cuts["upload"] += 1
            with suppress(ConnectionError, OSError):
                await dst.writer.drain()
            self._end(dst.writer, abort=True)
            self._end(client, abort=True)
            return
        if dst.writer.can_write_eof():
            with suppress(OSError):
                dst.writer.write_eof()

    async def _answer_status(self, writer: asyncio.StreamWriter, fault: ProxyFault | None) -> None:
        assert fault is not None
        status = fault.status or self._rng.choice((429, 503))
        reason = "Too Many Requests" if status == 429 else "Service Unavailable"
        body = json.dumps({"error": f"{reason} (injected by the fault proxy); retry after {fault.retry_after} s"})
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Retry-After: {fault.retry_after}\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n{body}".encode())
        with suppress(ConnectionError):
            await writer.drain()

    async def _answers(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, answer: _Answer) -> None:
        """Copy the server's answers to the client until EOF, applying the fault armed for the current one."""
        while True:
            fault = answer.fault
            data = await src.read(fault.slow_chunk if answer.slow and fault is not None else _PIPE)
            if not data:
                if dst.can_write_eof():
                    with suppress(OSError):
                        dst.write_eof()
                return
            fault = answer.fault
            if answer.stall and fault is not None:
                answer.stall = False
                await asyncio.sleep(fault.stall_seconds)
            if answer.budget is not None and fault is not None and len(data) >= answer.budget:
                dst.write(data[: answer.budget])  # the answer is under way: cut it here
                with suppress(ConnectionError):
                    await dst.drain()
                with self._lock:
                    self.cuts[fault.kind] += 1
                self._end(dst, abort=fault.kind == "reset")
                return
            if answer.budget is not None:
                answer.budget -= len(data)
            dst.write(data)
            await dst.drain()
            if answer.slow and fault is not None:
                await asyncio.sleep(fault.slow_delay)

    @staticmethod
    def _end(writer: asyncio.StreamWriter, *, abort: bool) -> None:
        """Close the client's connection: with a RST (``abort``, SO_LINGER 0) or a clean FIN."""
        sock = writer.get_extra_info("socket")
        if abort and sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()


class _Answer:
    """The fault armed for the answer now being relayed on one connection (set by the request side)."""

    __slots__ = ("fault", "budget", "stall", "slow", "upload")

    def __init__(self) -> None:
        self.fault: ProxyFault | None = None
        self.budget: int | None = None
        self.upload: int | None = None
        """Bytes of the next request to relay before cutting it (an ``upload`` fault), taken by the request side."""
        self.stall = self.slow = False

    def arm(self, fault: ProxyFault | None, cut: Any) -> bool:
        """Arm ``fault`` for the next request and its answer; False when the proxy must answer itself."""
        self.upload = None
        if fault is None:
            return True
        self.fault = fault
        if fault.kind == "status":
            return False
        self.upload = cut(fault) if fault.kind == "upload" else None
        self.budget = cut(fault) if fault.kind in ("reset", "truncate") else None
        self.stall = fault.kind == "stall"
        self.slow = self.slow or fault.kind == "slow"
        return True


class _RequestCut(Exception):
    """An ``upload`` fault's budget is spent: the request must be cut here."""


class _Sink:
    """The server side of a connection, which cuts a request after ``budget`` bytes (``upload`` faults)."""

    __slots__ = ("writer", "budget")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.budget: int | None = None

    def write(self, data: bytes) -> None:
        if self.budget is not None:
            if len(data) >= self.budget:
                self.writer.write(data[: self.budget])
                raise _RequestCut
            self.budget -= len(data)
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()


def _target(head: bytes) -> str:
    return head.split(b"\r\n", 1)[0].decode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next request head (through the blank line), or None at end of input or when it is not one."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None


async def _relay_body(head: bytes, src: asyncio.StreamReader, dst: _Sink) -> bool:
    """Relay the body that ``head`` announces; False when its framing is not understood."""
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding", b"").endswith(b"chunked"):
        while True:
            line = await src.readuntil(b"\r\n")
            dst.write(line)
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                return False
            if size == 0:
                while (trailer := await src.readuntil(b"\r\n")) != b"\r\n":
                    dst.write(trailer)
                dst.write(trailer)
                await dst.drain()
                return True
            await _relay_exactly(size + 2, src, dst)
    try:
        length = int(headers.get(b"content-length", b"0"))
    except ValueError:
        return False
    await _relay_exactly(length, src, dst)
    return True


async def _relay_exactly(n: int, src: asyncio.StreamReader, dst: _Sink) -> None:
    while n > 0:
        data = await src.read(min(n, _PIPE))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        dst.write(data)
        await dst.drain()
        n -= len(data)
