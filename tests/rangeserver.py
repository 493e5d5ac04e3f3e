"""A range-capable static file server on 127.0.0.1 for tests, with request counting and fault injection.

Faults are queued per path and consumed one per request: ``("status", code, headers)`` answers with that
status; ``("reset",)`` closes the connection without an answer; ``("corrupt",)`` flips a byte of the body.
``token`` makes every request without ``Authorization: Bearer <token>`` fail with 401.
"""

from __future__ import annotations

import collections
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["RangeServer"]


class RangeServer:
    def __init__(self, root: str, *, token: str | None = None, versioned: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.versioned = versioned  # send ETag (off: like `python -m http.server` behind some proxies)
        self.token = token
        self.requests: collections.Counter[str] = collections.Counter()
        self.ranges: list[tuple[str, str | None]] = []
        self.faults: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _send(self, code: int, headers: dict[str, str], payload: bytes = b"", body: bool = True) -> None:
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body and payload:
                    self.wfile.write(payload)

            def _serve(self, body: bool) -> None:
                rel = unquote(urlsplit(self.path).path).lstrip("/")
                with server._lock:
                    server.requests[rel] += 1
                    server.ranges.append((rel, self.headers.get("Range")))
                    fault = server.faults[rel].pop(0) if server.faults.get(rel) else None
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._send(401, {"Content-Type": "application/json"}, b'{"error": "unauthorized"}', body)
                    return
                if fault and fault[0] == "status":
                    self._send(fault[1], dict(fault[2]) if len(fault) > 2 else {}, b"fault", body)
                    return
                if fault and fault[0] == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                path = os.path.realpath(os.path.join(server.root, rel))
                if not path.startswith(server.root + os.sep) or not os.path.isfile(path):
                    self._send(404, {}, b"not found", body)
                    return
                with open(path, "rb") as f:
                    data = f.read()
                size = len(data)
                headers = {"Accept-Ranges": "bytes"}
                if server.versioned:
                    headers["ETag"] = f'"{size}-{os.path.getmtime(path)}"'

                spec = self.headers.get("Range")
                if spec:
                    m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
                    if not m or (not m.group(1) and not m.group(2)):
                        self._send(400, {}, b"bad range", body)
                        return
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    else:
                        start, end = max(0, size - int(m.group(2))), size - 1
                    if start >= size or end < start:
                        self._send(416, {"Content-Range": f"bytes */{size}"}, b"", body)
                        return
                    part = data[start : end + 1]
                    if fault and fault[0] == "corrupt" and part:
                        part = bytes([part[0] ^ 0xFF]) + part[1:]
                    self._send(206, {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}, part, body)
                    return
                if fault and fault[0] == "corrupt" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self._send(200, headers, data, body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.ranges.clear()
