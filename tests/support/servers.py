"""Live headwater servers for tests: a real uvicorn on 127.0.0.1, a free port, a background thread.

Stable API (other test modules rely on it)::

    from .servers import live_server, make_user, bearer

    with live_server(ServerConfig(catalog=path)) as base_url:          # "http://127.0.0.1:PORT"
        httpx.get(base_url + "/api/database", headers=bearer(secret))

    with live_server(config, handle=True) as server:                   # a BackgroundServer
        server.url, server.app.state.catalog

    with live_server(config, public_pools=True, pool_owner="alice"):   # every served pool public, alice's

    with serve_process(catalog_path, "--pool", "acme/px=/dir", "--timeout-header", "1") as server:
        server.url, server.pid, server.fds(), server.rss()               # `headwater serve` in a child process
        server.workers()                                                 # its worker pids (with --workers N)

``make_user(catalog, "alice", permission="write")`` creates a user (if missing) and a key and returns
the secret; ``share_pools(catalog, repos, owner=…, public=…)`` records pools' access settings;
``bearer(secret)`` gives datatap-style headers (base64 of the key), ``bearer(secret,
raw=True)`` Hugging-Face-style headers (the key as it is).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import headwater
from headwater.catalog import Catalog
from headwater.server.app import ServerConfig
from headwater.server.runner import BackgroundServer

from .ports import free_port, wait_ready

__all__ = ["live_server", "serve_process", "ServeProcess", "make_user", "bearer", "share_pools", "BackgroundServer"]


@contextmanager
def live_server(config: ServerConfig | Any, *, handle: bool = False, public_pools: bool = False,
                pool_owner: str | None = None) -> Iterator[Any]:
    """Run a server for ``config`` (a :class:`ServerConfig` or a FastAPI app) for the ``with`` block.

    Yields the base URL (``http://127.0.0.1:PORT``), or the :class:`BackgroundServer` when ``handle``.
    ``public_pools`` / ``pool_owner``: record every served pool as public / owned by that user (created if
    missing) before the server starts — a pool without a record is private and takes no uploads.
    """
    server = BackgroundServer(config)
    if public_pools or pool_owner is not None:
        state = server.app.state
        share_pools(state.catalog, list(state.config.pools), owner=pool_owner, public=public_pools)
    server.start()
    try:
        yield server if handle else server.url
    finally:
        server.stop()


@dataclass
class ServeProcess:
    """A ``headwater serve`` child process; its resources are read from ``/proc/<pid>/`` (Linux)."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Any
    """A temporary file holding the process's stderr."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fds(self) -> int:
        """Open file descriptors of the server process (sockets and files)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss(self) -> int:
        """Resident memory of the server process, in bytes (``VmRSS``)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS in /proc/{self.pid}/status")

    def workers(self) -> list[int]:
        """Pids of the worker processes of ``--workers N`` (the children of the serve process, uvicorn's
        supervisor, except multiprocessing's resource tracker); SIGKILL one to crash a worker."""
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:  # exited meanwhile
                continue
            if ppid == self.pid and b"resource_tracker" not in cmdline:
                out.append(int(entry))
        return sorted(out)

    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        self.log.seek(0)
        return str(self.log.read().decode(errors="replace"))


@contextmanager
def serve_process(catalog: str, *options: str, port: int | None = None) -> Iterator[ServeProcess]:
    """Run ``python -m headwater.cli serve --catalog CATALOG --port <free> OPTIONS…`` with this interpreter
    and this tree's headwater until the block ends; yields once it answers ``/healthz``. Stopped with SIGINT
    (graceful), killed if that takes more than 30 s. stderr goes to a temporary file (a pipe nobody reads
    would block a server that logs a lot). ``port``: listen there instead (a server started again where
    a killed one was)."""
    port = free_port() if port is None else port
    tree = os.path.dirname(os.path.dirname(os.path.abspath(headwater.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the block ends, below
    proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "serve", "--catalog", catalog,
                             "--port", str(port), "--log-level", "warning", *options],
                            stdout=subprocess.DEVNULL, stderr=log, env=env)
    server = ServeProcess(proc, port, log)
    try:
        try:
            wait_ready(server.url, proc)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n{server.stderr()}") from None
        yield server
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        log.close()


def make_user(catalog: Catalog | str, username: str, *, permission: str = "read", email: str = "") -> str:
    """A new API key (its secret) for ``username``, creating the user first if needed."""
    cat = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
    try:
        cat.create_user(username, email=email or f"{username}@example.org", exist_ok=True)
        return cat.create_api_key(username, permission)[1]
    finally:
        if cat is not catalog:
            cat.close()


def bearer(secret: str | None, *, raw: bool = False) -> dict[str, str]:
    """``{"Authorization": "Bearer …"}`` as datatap sends it (base64 of the key) or raw (HF clients)."""
    if secret is None:
        return {}
    token = secret if raw else base64.b64encode(secret.encode("ascii")).decode("ascii")
    return {"Authorization": f"Bearer {token}"}


def share_pools(catalog: Catalog, repos: list[str], *, owner: str | None = None, public: bool = True) -> None:
    """Record ``repos`` as owned by ``owner`` (created if missing; None: no owner) and public or not."""
    if owner is not None:
        catalog.create_user(owner, email=f"{owner}@example.org", exist_ok=True)
    for repo in repos:
        catalog.change_pool_access(repo, owner=owner, public=public)
