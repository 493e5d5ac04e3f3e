"""The one stand-in HTTP server of the tests and the benchmarks: static files on 127.0.0.1, with ranges.

Why one server: headwater's storage layer talks to plain HTTP stores (object stores, CDNs, static mirrors,
the Hugging Face Hub's ``resolve`` URLs), and every way such a server can answer — honour a range or not,
several ranges as multipart or not, redirect, refuse credentials, throttle, drop the connection, send a
cut or damaged body, answer late — is a case the client must get right. The tests and benchmarks used to
have four hand-written servers, each with a part of those behaviours. Here they are options of one
:class:`FileServer` (standard library ``http.server`` only), so a test says *what kind of server* it needs
in one line and every test gets the same, RFC-correct basics.

Behaviour:

* ``GET`` and ``HEAD`` of the files under ``root``; a missing file, a directory or a path that leaves the
  root (``..``, a symlink out) → ``404``. ``HEAD`` sends the ``GET`` headers without the body and ignores
  ``Range`` (RFC 9110 defines ranges for ``GET`` only).
* HTTP/1.1 keep-alive, ``TCP_NODELAY``, ``Content-Length`` on every answer (errors and redirects
  included); file bodies go out with ``sendfile``, everything else with buffered writes; body bytes are
  counted as they go out.
* ``versioned=True`` (default): ``ETag`` and ``Last-Modified`` on file answers; ``False``: neither, like a
  plain static server behind some proxies.
* ``token="…"``: every request without ``Authorization: Bearer …`` gets ``401`` (JSON ``{"error": …}``).
* ``Range`` with one range (``a-b``, ``a-``, ``-n``; the end clipped to the file) → ``206`` with
  ``Content-Range``; not satisfiable → ``416`` with ``Content-Range: bytes */size``. A malformed header, an
  unknown unit or an invalid range (``5-3``) is ignored → ``200`` (RFC 9110 §14.2 allows it).
* Several ranges → what ``multi_range`` says (:data:`MultiRange`): ``"multipart"`` (default, RFC 9110
  §14.6: ``206 multipart/byteranges``, one part per satisfiable range in the order asked, each with its
  own ``Content-Range``; unsatisfiable ones dropped, ``416`` if none is left), ``"reversed"`` (the same
  parts, last first: a client must match parts by ``Content-Range``), ``"coalesced"`` (one plain ``206``
  from the lowest start to the highest end), ``"first"`` (one plain ``206`` of the first range only),
  ``"ignore"`` (``200``, the whole file — S3 and Hugging Face's CDN) and ``"refuse"`` (``400``, like a
  server that only parses ``bytes=a-b``).
* ``ignore_range=True``: every ``Range`` is ignored, ``200`` with the whole file.
* ``latency_ms``: every request waits that long before it is answered (a stand-in for a remote round trip).
* Faults, queued per path with :meth:`FileServer.inject` and consumed one per request to that path, before
  the credentials are looked at (they stand for the network or a broken front end): see :class:`Fault` —
  a status with headers, a closed connection without an answer, a damaged, short or cut body, a stall,
  a redirect.
* Counters: every request is recorded (method, path, headers; :attr:`FileServer.seen`), whatever its
  answer; derived views :attr:`~FileServer.requests` (per path), :attr:`~FileServer.ranges` (path and
  ``Range`` header), :attr:`~FileServer.by_method`, :attr:`~FileServer.total`, and the body bytes sent.
  :meth:`~FileServer.reset` zeroes them, :meth:`~FileServer.snapshot` copies them.

Three ways to run it:

* in a daemon thread of this process: ``with FileServer(root, …) as server:`` (or ``.start()`` /
  ``.stop()``); the tests' ``file_server`` fixture does this and stops the server after the test;
* in a child process, so that it does not compete with the client for the GIL (benchmarks):
  :func:`start_server_process` returns a :class:`ServerHandle` (``url``, ``reset()``, ``snapshot()``,
  ``stop()``), which a thread-run :class:`FileServer` also is;
* standalone, to serve a directory by hand::

      python -m tests.support.httpserver DIR --port 8000 --latency-ms 20

Example:
    >>> import http.client, pathlib, tempfile
    >>> root = tempfile.mkdtemp()
    >>> _ = pathlib.Path(root, "a.bin").write_bytes(b"0123456789")
    >>> with FileServer(root) as server:
    ...     server.inject("a.bin", Fault.status(503, {"Retry-After": "0"}))
    ...     conn = http.client.HTTPConnection(server.host, server.port)
    ...     for _ in range(2):
    ...         conn.request("GET", "/a.bin", headers={"Range": "bytes=2-4"})
    ...         answer = conn.getresponse()
    ...         print(answer.status, answer.getheader("Content-Range"), answer.read())
    ...     conn.close()
    ...     server.requests["a.bin"], server.ranges[-1]
    503 None b'503 Service Unavailable\\n'
    206 bytes 2-4/10 b'234'
    (2, ('a.bin', 'bytes=2-4'))
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import email.utils
import multiprocessing
import multiprocessing.connection
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol, Self, get_args
from urllib.parse import unquote, urlsplit

__all__ = [
    "Fault",
    "FaultKind",
    "FileServer",
    "MultiRange",
    "Request",
    "ServerHandle",
    "Snapshot",
    "main",
    "parse_range",
    "start_server_process",
]

MultiRange = Literal["multipart", "reversed", "coalesced", "first", "ignore", "refuse"]
"""How a :class:`FileServer` answers a ``Range`` header with several ranges (see the module docstring)."""

FaultKind = Literal["status", "reset", "corrupt", "short", "truncate", "stall", "redirect"]

BOUNDARY = "headwater-test-boundary"
_SPEC = re.compile(r"(\d*)-(\d*)")


@dataclass(frozen=True, slots=True)
class Fault:
    """One misbehaviour for one request; build it with the class methods, queue it with
    :meth:`FileServer.inject`.

    ``status`` answers ``code`` with ``headers`` (a short text body); ``reset`` closes the connection
    without an answer; ``redirect`` answers ``code`` (302) with ``Location: location`` (an absolute URL or a
    path on this server). The others change the file answer the request would have had: ``corrupt`` flips
    the first byte of the file data; ``short`` sends every piece of file data one byte shorter than its
    ``Content-Range`` says, with an exact ``Content-Length`` (a well-framed but wrong answer); ``truncate``
    sends ``keep`` body bytes (default: half) of the announced ``Content-Length``, then closes the
    connection; ``stall`` waits ``seconds`` before answering normally.
    """

    kind: FaultKind
    code: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    location: str = ""
    seconds: float = 0.0
    keep: int | None = None

    @classmethod
    def status(cls, code: int, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer ``code`` with ``headers`` instead of the file (429 with ``Retry-After``, 5xx, 403, …)."""
        return cls("status", code=code, headers=dict(headers or {}))

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without sending anything."""
        return cls("reset")

    @classmethod
    def corrupt(cls) -> Fault:
        """Flip the first byte of the file data (the framing stays right: only a checksum can tell)."""
        return cls("corrupt")

    @classmethod
    def short(cls) -> Fault:
        """Every piece of file data one byte short of its ``Content-Range`` (``Content-Length`` exact)."""
        return cls("short")

    @classmethod
    def truncate(cls, keep: int | None = None) -> Fault:
        """Announce the whole body, send ``keep`` bytes of it (default: half), close the connection."""
        return cls("truncate", keep=keep)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before answering (normally)."""
        return cls("stall", seconds=seconds)

    @classmethod
    def redirect(cls, location: str, code: int = 302) -> Fault:
        """Answer ``code`` with ``Location: location`` (another host's URL, or a path on this one)."""
        return cls("redirect", code=code, location=location)


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the server received it: ``path`` is relative to the root, without the query; ``at``
    is when it arrived (``time.monotonic()``: how long a client waited between attempts)."""

    method: str
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters of a server at one instant (picklable: it crosses the pipe from a child process)."""

    requests: int
    bytes_sent: int
    by_method: dict[str, int]
    by_path: dict[str, int]


class ServerHandle(Protocol):
    """A running server, in this process or another."""

    url: str

    def reset(self) -> None:
        """Zero the counters."""

    def snapshot(self) -> Snapshot:
        """The counters since the last reset."""

    def stop(self) -> None:
        """Shut the server down and wait for it."""


def parse_range(header: str, size: int) -> tuple[int, list[tuple[int, int]]] | None:
    """``(ranges asked, the satisfiable ones as [start, end) clipped to size)``, or None to ignore it.

    Example:
        >>> parse_range("bytes=0-9, 95-, -3, 200-300", 100)
        (4, [(0, 10), (95, 100), (97, 100)])
        >>> parse_range("bytes=5-3", 100), parse_range("items=0-1", 100), parse_range("bytes=-0", 100)
        (None, None, (1, []))
    """
    unit, equals, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not equals:
        return None
    asked, spans = 0, []
    for spec in specs.split(","):
        if not spec.strip():
            continue  # an empty list element (RFC 9110 §5.6.1)
        m = _SPEC.fullmatch(spec.strip())
        if m is None or not (m.group(1) or m.group(2)):
            return None
        first, last = m.groups()
        asked += 1
        if first:
            start = int(first)
            if last and int(last) < start:
                return None  # an invalid range-spec: the whole header is ignored
            end = min(int(last) + 1, size) if last else size
            if start < size:
                spans.append((start, end))
        elif int(last) > 0 and size > 0:  # suffix: the last n bytes
            spans.append((max(0, size - int(last)), size))
    return (asked, spans) if asked else None


# A body: literal bytes, or (offset, length) of the file (sent with sendfile).
_Segment = bytes | tuple[int, int]


class FileServer:
    """Serve ``root`` on 127.0.0.1 (see the module docstring for every option and behaviour).

    The socket is bound when the object is made (``url`` is known at once); :meth:`start` (or ``with``)
    serves from a daemon thread. The options are plain attributes, read at every request.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        token: str | None = None,
        versioned: bool = True,
        multi_range: MultiRange = "multipart",
        ignore_range: bool = False,
        latency_ms: float = 0.0,
        port: int = 0,
    ) -> None:
        if multi_range not in get_args(MultiRange):
            raise ValueError(f"multi_range must be one of {get_args(MultiRange)}, not {multi_range!r}")
        self.root = os.path.realpath(root)
        self.token = token
        self.versioned = versioned
        self.multi_range: MultiRange = multi_range
        self.ignore_range = ignore_range
        self.latency_ms = latency_ms
        self.faults: collections.defaultdict[str, list[Fault]] = collections.defaultdict(list)
        self.seen: list[Request] = []
        self._bytes_sent = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer(("127.0.0.1", port), self)
        self.host, self.port = "127.0.0.1", int(self._httpd.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FileServer({self.root!r} at {self.url})"

    def start(self) -> Self:
        """Serve from a daemon thread; returns the server."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),  # stop() waits <= 20 ms
                                            name=f"file-server-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection (idempotent)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            open_now = list(self._connections)
        for conn in open_now:  # idle keep-alive connections: their handler threads end too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the standalone command)."""
        try:
            self._httpd.serve_forever()
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def inject(self, path: str, *faults: Fault) -> None:
        """Queue ``faults`` for ``path`` (relative to the root): each is consumed by one request to it."""
        with self._lock:
            self.faults[path.lstrip("/")].extend(faults)

    @property
    def requests(self) -> collections.Counter[str]:
        """Requests per path since the last reset (a copy)."""
        with self._lock:
            return collections.Counter(r.path for r in self.seen)

    @property
    def ranges(self) -> list[tuple[str, str | None]]:
        """``(path, Range header or None)`` of every request since the last reset, in order."""
        with self._lock:
            return [(r.path, r.header("Range")) for r in self.seen]

    @property
    def by_method(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(r.method for r in self.seen)

    @property
    def total(self) -> int:
        """Requests since the last reset, whatever their answer."""
        with self._lock:
            return len(self.seen)

    @property
    def bytes_sent(self) -> int:
        """Body bytes sent since the last reset."""
        with self._lock:
            return self._bytes_sent

    def reset(self) -> None:
        """Zero the counters (queued faults stay)."""
        with self._lock:
            self.seen = []
            self._bytes_sent = 0

    def snapshot(self) -> Snapshot:
        with self._lock:
            seen = list(self.seen)
            sent = self._bytes_sent
        return Snapshot(len(seen), sent, dict(collections.Counter(r.method for r in seen)),
                        dict(collections.Counter(r.path for r in seen)))

    def _arrived(self, request: Request) -> Fault | None:
        """Record ``request``; the next fault queued for its path, if any."""
        with self._lock:
            self.seen.append(request)
            queue = self.faults.get(request.path)
            return queue.pop(0) if queue else None

    def _sent(self, n: int) -> None:
        with self._lock:
            self._bytes_sent += n

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _resolve(self, path: str) -> str | None:
        """The regular file ``path`` names under the root, or None (missing, a directory, or outside)."""
        if not path:
            return None
        full = os.path.realpath(os.path.join(self.root, path))
        if not full.startswith(self.root + os.sep) or not os.path.isfile(full):
            return None
        return full


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once; the default backlog of 5 drops SYNs

    def __init__(self, address: tuple[str, int], owner: FileServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exception(), ConnectionError):
            return  # the client went away mid-answer (it read the prefix it wanted, or gave up): not an error
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path).lstrip("/")
        fault = owner._arrived(Request(self.command, path, dict(self.headers.items())))
        if owner.latency_ms > 0:
            time.sleep(owner.latency_ms / 1000.0)
        if fault is not None:
            if fault.kind == "stall":
                time.sleep(fault.seconds)
            elif fault.kind == "reset":
                self._close()
                return
            elif fault.kind == "status":
                self._plain(fault.code, fault.headers)
                return
            elif fault.kind == "redirect":
                self._send(fault.code, {"Location": fault.location}, [])
                return
        if owner.token is not None and self.headers.get("Authorization") != f"Bearer {owner.token}":
            self._send(401, {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
                       [b'{"error": "unauthorized"}'])
            return
        full = owner._resolve(path)
        if full is None:
            self._plain(404)
            return
        st = os.stat(full)
        size = st.st_size
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if owner.versioned:
            headers["ETag"] = f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"'
            headers["Last-Modified"] = email.utils.formatdate(st.st_mtime, usegmt=True)
        status, body = self._plan(size, headers)
        if status >= 400:
            self._plain(status, headers)
            return
        self._send(status, headers, body, full=full, fault=fault)

    def _plan(self, size: int, headers: dict[str, str]) -> tuple[int, list[_Segment]]:
        """Status and body for a file of ``size`` bytes and this request's ``Range``; fills ``headers``."""
        owner = self.server.owner
        whole: list[_Segment] = [(0, size)]
        header = self.headers.get("Range")
        if self.command != "GET" or owner.ignore_range or not header:
            return 200, whole
        parsed = parse_range(header, size)
        if parsed is None:
            return 200, whole
        asked, spans = parsed
        mode = owner.multi_range if asked > 1 else "first"
        if mode == "ignore":
            return 200, whole
        if mode == "refuse":
            return 400, []
        if not spans:
            headers["Content-Range"] = f"bytes */{size}"
            return 416, []
        if mode in ("first", "coalesced"):
            start, end = spans[0] if mode == "first" else (min(a for a, _ in spans), max(b for _, b in spans))
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            return 206, [(start, end - start)]
        body: list[_Segment] = []
        for i, (start, end) in enumerate(reversed(spans) if mode == "reversed" else spans):
            delimiter = ("\r\n" if i else "") + f"--{BOUNDARY}\r\n"  # the first part needs no CRLF before it
            body.append(f"{delimiter}Content-Type: application/octet-stream\r\n"
                        f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n".encode())
            body.append((start, end - start))
        body.append(f"\r\n--{BOUNDARY}--\r\n".encode())
        headers["Content-Type"] = f'multipart/byteranges; boundary="{BOUNDARY}"'
        return 206, body

    def _plain(self, code: int, headers: Mapping[str, str] | None = None) -> None:
        """A short text answer (keeps the connection open: ``send_error`` would close it)."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Status"
        extra = {k: v for k, v in (headers or {}).items() if k.lower() not in ("content-type", "content-length")}
        self._send(code, {"Content-Type": "text/plain", **extra}, [f"{code} {phrase}\n".encode()])

    def _send(self, code: int, headers: Mapping[str, str], body: list[_Segment], *, full: str | None = None,
              fault: Fault | None = None) -> None:
        """Send ``code``, ``headers``, ``Content-Length`` and (for ``GET``) ``body``, as ``fault`` bends it."""
        kind = fault.kind if fault is not None else None
        if kind == "corrupt":
            body = _corrupt(body, full)
        elif kind == "short":
            body = [(piece[0], max(0, piece[1] - 1)) if isinstance(piece, tuple) else piece for piece in body]
        length = sum(len(piece) if isinstance(piece, bytes) else piece[1] for piece in body)
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD" or not length:
            return
        budget = length
        if fault is not None and fault.kind == "truncate":  # always fewer bytes than announced
            budget = min(length - 1, length // 2 if fault.keep is None else fault.keep)
        self._write_body(body, budget, full)
        if kind == "truncate":
            self._close()

    def _write_body(self, body: list[_Segment], budget: int, full: str | None) -> None:
        """Send the first ``budget`` bytes of ``body``: literal pieces written, file pieces with sendfile.

        Each piece is counted before it goes out (a client that has the bytes finds them counted); what a
        client that went away did not get is taken off again.
        """
        owner = self.server.owner
        with open(full, "rb") if full is not None else contextlib.nullcontext() as f:
            for piece in body:
                n = min(len(piece) if isinstance(piece, bytes) else piece[1], budget)
                if n <= 0:
                    continue
                budget -= n
                owner._sent(n)
                done = 0
                try:
                    if isinstance(piece, bytes):
                        self.wfile.write(piece[:n])
                        done = n
                        continue
                    assert f is not None
                    while done < n:
                        step = os.sendfile(self.connection.fileno(), f.fileno(), piece[0] + done, n - done)
                        if step == 0:
                            raise ConnectionAbortedError(f"{full} is shorter than when the answer began")
                        done += step
                finally:
                    if done < n:
                        owner._sent(done - n)

    def _close(self) -> None:
        """Close the connection now (no answer, or the rest of one, will come)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _corrupt(body: list[_Segment], full: str | None) -> list[_Segment]:
    """``body`` with the first byte of its first non-empty file piece flipped."""
    for i, piece in enumerate(body):
        if isinstance(piece, tuple) and piece[1] and full is not None:
            with open(full, "rb") as f:
                f.seek(piece[0])
                data = bytearray(f.read(piece[1]))
            data[0] ^= 0xFF
            return [*body[:i], bytes(data), *body[i + 1:]]
    return body


def _child_main(conn: multiprocessing.connection.Connection, root: str, options: dict[str, Any]) -> None:
    """Body of the child process: serve, and answer the commands arriving on ``conn``."""
    server = FileServer(root, **options).start()
    conn.send(server.url)
    while True:
        command = conn.recv()
        if command == "reset":
            server.reset()
            conn.send(None)
        elif command == "snapshot":
            conn.send(server.snapshot())
        else:  # "stop"
            server.stop()
            conn.send(None)
            return


class _ChildServer:
    """A :class:`FileServer` in a child process, driven over a pipe (a :class:`ServerHandle`)."""

    def __init__(self, root: str, options: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that already runs threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, os.fspath(root), options), daemon=True)
        self._proc.start()
        self.url: str = self._conn.recv()

    def _ask(self, command: str) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def reset(self) -> None:
        self._ask("reset")

    def snapshot(self) -> Snapshot:
        snap: Snapshot = self._ask("snapshot")
        return snap

    def stop(self) -> None:
        if self._proc.is_alive():
            self._ask("stop")
        self._proc.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_server_process(root: str | os.PathLike[str], **options: Any) -> ServerHandle:
    """Serve ``root`` from a child process; ``options`` are :class:`FileServer`'s (faults stay in the child)."""
    return _ChildServer(os.fspath(root), options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.httpserver",
                                     description="Serve a directory on 127.0.0.1 with ranges.")
    parser.add_argument("root", help="directory to serve")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait this long before each answer")
    parser.add_argument("--token", help="require Authorization: Bearer TOKEN")
    parser.add_argument("--multi-range", choices=get_args(MultiRange), default="multipart",
                        help="how to answer several ranges in one request (default: multipart)")
    parser.add_argument("--ignore-range", action="store_true", help="always answer 200 with the whole file")
    parser.add_argument("--unversioned", action="store_true", help="send no ETag or Last-Modified")
    args = parser.parse_args(argv)
    server = FileServer(args.root, port=args.port, latency_ms=args.latency_ms, token=args.token,
                        multi_range=args.multi_range, ignore_range=args.ignore_range, versioned=not args.unversioned)
    print(f"serving {server.root} at {server.url} (latency {args.latency_ms:g} ms); Ctrl-C to stop", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    snap = server.snapshot()
    print(f"{snap.requests} requests, {snap.bytes_sent} body bytes")


if __name__ == "__main__":
    main()
