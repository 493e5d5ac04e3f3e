"""A real headwater server in a child process, instrumented for the server benchmarks (127.0.0.1 only).

The child runs exactly what ``headwater serve`` runs with one worker — ``create_app(ServerConfig(…))``
under ``uvicorn.run`` with the runner's options — wrapped in one small ASGI layer that belongs to the
benchmark, not to headwater:

* it **counts** every HTTP request the app receives (by method, and by route family: ``api`` for the datatap
  ``/api/…`` routes, ``hub-api`` for ``/api/datasets/…``, ``resolve`` for ``/datasets/…``, ``other``) and
  every body byte the app sends, whatever the status;
* it optionally **sleeps** ``latency_ms`` (``asyncio.sleep``, so other requests proceed meanwhile) before
  handing each counted request to the app — a stand-in for the round trip to a remote server, like
  the ``latency_ms`` of the tests' ``FileServer`` (``tests/support/httpserver.py``);
* it answers two benchmark-only routes itself, never counted and never delayed:
  ``GET /_bench/stats`` → ``{"requests", "bytes", "by_method", "by_family"}`` and
  ``POST /_bench/reset`` (zero the counters).

:func:`start_hw_server` starts the child (``sys.executable``, so the project venv), waits for
``/healthz`` and returns a handle with ``url``, ``reset()``, ``stats()`` and ``stop()``.

Run by hand::

    .venv/bin/python benchmarks/_hw_server.py --catalog c.sqlite --pool bench/pool=DIR --port 8000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any, Self, cast

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.ports import free_port, wait_ready

__all__ = ["HwServer", "start_hw_server"]


class _Instrument:
    """ASGI wrapper: count requests and body bytes, delay each request, serve ``/_bench/*``."""

    def __init__(self, app: Any, latency_ms: float) -> None:
        self.app = app
        self.latency = latency_ms / 1000.0
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.by_method: dict[str, int] = {}
        self.by_family: dict[str, int] = {}

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "bytes": self.bytes, "by_method": dict(self.by_method),
                "by_family": dict(self.by_family)}

    async def _own(self, scope: Any, send: Any) -> None:
        if scope["path"] == "/_bench/reset":
            self.reset()
        body = json.dumps(self.stats()).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/_bench/"):
            await self._own(scope, send)
            return
        self.requests += 1  # one event loop per worker: no lock needed
        method = scope["method"]
        self.by_method[method] = self.by_method.get(method, 0) + 1
        family = ("hub-api" if path.startswith("/api/datasets") else "api" if path.startswith("/api/")
                  else "resolve" if path.startswith("/datasets/") else "other")
        self.by_family[family] = self.by_family.get(family, 0) + 1
        if self.latency > 0:
            await asyncio.sleep(self.latency)

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.bytes += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting_send)


class HwServer:
    """Handle on the child process: ``url``, ``reset()``, ``stats()``, ``stop()``."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url
        self._client = httpx.Client(timeout=30.0)

    def reset(self) -> None:
        self._client.post(self.url + "/_bench/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        resp = self._client.get(self.url + "/_bench/stats")
        resp.raise_for_status()
        return cast("dict[str, Any]", resp.json())

    def stop(self) -> None:
        self._client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_hw_server(catalog: str, pools: dict[str, str] | None = None, *, latency_ms: float = 0.0,
                    log: str | None = None) -> HwServer:
    """Start the instrumented server for ``catalog`` + ``pools`` in a child process; return once ready.

    The child's stderr (uvicorn's log, warnings and up) goes to ``log`` if given, else is discarded.
    """
    port = free_port()
    cmd = [sys.executable, os.path.abspath(__file__), "--catalog", catalog, "--port", str(port),
           "--latency-ms", str(latency_ms)]
    for repo, url in (pools or {}).items():
        cmd += ["--pool", f"{repo}={url}"]
    err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
    except BaseException:
        proc.kill()
        raise
    return HwServer(proc, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--pool", action="append", default=[], metavar="OWNER/REPO=DIR")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()

    import uvicorn

    from headwater.server import runner
    from headwater.server.app import ServerConfig, create_app

    pools = dict(spec.split("=", 1) for spec in args.pool)
    config = ServerConfig(catalog=args.catalog, pools=pools)
    app = _Instrument(create_app(config), args.latency_ms)
    options = runner._uvicorn_options(args.log_level, config.limits)  # what `headwater serve` passes to uvicorn
    uvicorn.run(app, host="127.0.0.1", port=args.port, lifespan="on", **options)


if __name__ == "__main__":
    main()
