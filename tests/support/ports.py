"""Ports and readiness for servers started in another process (headwater's own server, PostgreSQL).

A server in this process binds port 0 and reads its port back (:class:`~tests.support.httpserver.FileServer`
does); a child process must be told a port on its command line, so :func:`free_port` picks one that was
free a moment ago, and :func:`wait_ready` polls the child until it answers.

Example:
    >>> 1024 <= free_port() <= 65535
    True
"""

from __future__ import annotations

import socket
import subprocess
import time

import httpx

__all__ = ["free_port", "wait_ready"]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the child should bind it right away)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, *, path: str = "/healthz",
               timeout: float = 60.0) -> None:
    """Poll ``url + path`` until it answers 200; raise if ``proc`` exits first or the time is up.

    When ``proc`` died and its stderr is a pipe, the error carries what it wrote there.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr is not None else ""
            raise RuntimeError(f"the server process exited with {proc.returncode} before it was ready"
                               + (f":\n{stderr}" if stderr else ""))
        try:
            if httpx.get(url + path, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready within {timeout:g} s")
        time.sleep(0.05)
