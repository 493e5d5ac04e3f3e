"""A small range-capable static file server for the benchmarks (127.0.0.1 only).

It stands in for a remote object store / CDN: every request may be delayed by a fixed latency, and every
request (GET or HEAD, whatever its status) is counted, so a benchmark can report exactly how many requests
a client made and how many body bytes it pulled.

Behaviour:

* ``GET`` with no ``Range`` → ``200`` and the whole file.
* ``GET`` with one ``Range: bytes=a-b`` (also ``a-`` and the suffix form ``-n``) → ``206`` with
  ``Content-Range``; the end is clipped to the file. A range starting at or past the end → ``416`` with
  ``Content-Range: bytes */size``. A multi-range or malformed header is ignored (``200``, as RFC 9110
  allows).
* ``HEAD`` → the ``GET`` headers without a body.
* Missing files, directories and paths escaping the root → ``404``.
* HTTP/1.1 keep-alive; ``Content-Length`` on every response (errors included), Nagle disabled, bodies
  sent with ``sendfile``.

Two ways to run it from a benchmark, with the same :class:`ServerHandle` interface (``url``, ``reset()``,
``snapshot()``, ``stop()``): :func:`start_server` (a daemon thread in the calling process) and
:func:`start_server_process` (a child process, so the server does not compete with the client for the GIL).

Run standalone to serve a directory by hand::

    .venv/bin/python benchmarks/_range_server.py DIR --port 8000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import email.utils
import multiprocessing
import multiprocessing.connection
import os
import posixpath
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

__all__ = ["RequestCounter", "RangeServer", "ServerHandle", "start_server", "start_server_process"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class RequestCounter:
    """Requests and body bytes served; thread-safe."""

    requests: int = 0
    bytes_sent: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, method: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_method[method] = self.by_method.get(method, 0) + 1

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.bytes_sent = 0
            self.by_method = {}

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        """``(requests, bytes_sent, requests by method)`` at this instant."""
        with self._lock:
            return self.requests, self.bytes_sent, dict(self.by_method)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: RangeServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
        pass

    # -- helpers -------------------------------------------------------------------------------------
    def _resolve(self) -> str | None:
        """The local file the URL names, or ``None`` if there is none (or it would escape the root)."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        rel = posixpath.normpath("/" + path).lstrip("/")
        if not rel or rel == ".":
            return None
        full = os.path.realpath(os.path.join(self.server.root, *rel.split("/")))
        if not full.startswith(self.server.root + os.sep) or not os.path.isfile(full):
            return None
        return full

    def _plain(self, status: HTTPStatus, extra: dict[str, str] | None = None) -> None:
        """A short text response that keeps the connection open (``send_error`` would close it)."""
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, send_body: bool) -> None:
        self.server.counter.add(self.command)
        if self.server.latency > 0:
            time.sleep(self.server.latency)
        path = self._resolve()
        if path is None:
            self._plain(HTTPStatus.NOT_FOUND)
            return
        st = os.stat(path)
        size = st.st_size
        start, end = 0, size  # [start, end)
        status = HTTPStatus.OK
        header = self.headers.get("Range") if send_body else None
        if header is not None and (match := _RANGE.match(header.strip())) is not None:
            first, last = match.groups()
            if first == "" and last == "":
                pass  # "bytes=-": malformed, ignore
            elif first == "":  # suffix: the last n bytes
                n = int(last)
                if n == 0:
                    self._plain(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"})
                    return
                start, end, status = max(0, size - n), size, HTTPStatus.PARTIAL_CONTENT
            else:
                a = int(first)
                b = int(last) + 1 if last else size
                if a >= size or b <= a:
                    self._plain(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"})
                    return
                start, end, status = a, min(b, size), HTTPStatus.PARTIAL_CONTENT
        length = end - start
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if not send_body or length == 0:
            return
        with open(path, "rb") as f:
            sent = self.connection.sendfile(f, start, length)
        self.server.counter.add_bytes(sent)

    # -- methods -------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._serve(send_body=False)


class RangeServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` serving ``root`` with ranges, a per-request latency and a counter."""

    daemon_threads = True
    request_queue_size = 256  # many clients connect at once; the default backlog of 5 drops SYNs

    def __init__(self, root: str, port: int = 0, latency_ms: float = 0.0) -> None:
        self.root = os.path.realpath(root)
        self.latency = latency_ms / 1000.0
        self.counter = RequestCounter()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class ServerHandle(Protocol):
    """A running server, in this process or another."""

    url: str

    def reset(self) -> None:
        """Zero the request and byte counters."""

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        """``(requests, body bytes sent, requests by method)`` since the last reset."""

    def stop(self) -> None:
        """Shut the server down and wait for it."""


class _ThreadHandle:
    def __init__(self, server: RangeServer) -> None:
        self.server = server
        self.url = server.url
        self._thread = threading.Thread(target=server.serve_forever, name="range-server", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        self.server.counter.reset()

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        return self.server.counter.snapshot()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def start_server(root: str, *, port: int = 0, latency_ms: float = 0.0) -> ServerHandle:
    """Serve ``root`` on 127.0.0.1 from a daemon thread of this process."""
    return _ThreadHandle(RangeServer(root, port, latency_ms))


def _child_main(conn: multiprocessing.connection.Connection, root: str, port: int, latency_ms: float) -> None:
    """Body of the child process: serve, and answer counter commands arriving on ``conn``."""
    handle = _ThreadHandle(RangeServer(root, port, latency_ms))
    conn.send(handle.url)
    while True:
        command = conn.recv()
        if command == "reset":
            handle.reset()
            conn.send(None)
        elif command == "snapshot":
            conn.send(handle.snapshot())
        else:  # "stop"
            handle.stop()
            conn.send(None)
            return


class _ProcessHandle:
    def __init__(self, root: str, port: int, latency_ms: float) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that already runs threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, root, port, latency_ms), daemon=True)
        self._proc.start()
        self.url: str = self._conn.recv()

    def _ask(self, command: str) -> object:
        self._conn.send(command)
        return self._conn.recv()

    def reset(self) -> None:
        self._ask("reset")

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        return self._ask("snapshot")  # type: ignore[return-value]

    def stop(self) -> None:
        if self._proc.is_alive():
            self._ask("stop")
        self._proc.join(timeout=5)


def start_server_process(root: str, *, port: int = 0, latency_ms: float = 0.0) -> ServerHandle:
    """Serve ``root`` on 127.0.0.1 from a child process (the counters are read over a pipe)."""
    return _ProcessHandle(root, port, latency_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="directory to serve")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="sleep this long before each response")
    args = parser.parse_args()
    server = RangeServer(args.root, args.port, args.latency_ms)
    print(f"serving {server.root} at {server.url} (latency {args.latency_ms:g} ms); Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(f"{server.counter.requests} requests, {server.counter.bytes_sent} body bytes")


if __name__ == "__main__":
    main()
