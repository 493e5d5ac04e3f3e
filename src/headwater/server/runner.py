"""Run the app under uvicorn: in the foreground (``headwater serve``), with several worker processes,
or in a background thread of the current process (tests, benchmarks, notebooks).

Why a factory that reads the environment: uvicorn starts more than one worker only from an import
string, in fresh processes, so the :class:`ServerConfig` travels to them as JSON in
``$HEADWATER_SERVER_CONFIG`` and :func:`app_from_env` rebuilds the app there. The app is stateless
(everything lives in the catalog and the pool stores), so workers need nothing else in common.

The connection limits of the config (:mod:`headwater.server.limits`) reach every process twice: the app's
middleware reads them from the config, uvicorn and the protocol from the options :func:`serve` and
:class:`BackgroundServer` build (``uvicorn.Config`` is pickled to the worker processes).

Example:
    >>> import os, tempfile, urllib.request
    >>> config = ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> with BackgroundServer(config) as server:
    ...     urllib.request.urlopen(server.url + "/healthz").read()
    b'{"ok":true}'
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from contextlib import suppress
from typing import Any

import uvicorn
from fastapi import FastAPI

from .app import ServerConfig, create_app
from .errors import AddressInUseError, ServerConfigError
from .limits import LimitedHTTPProtocol, Limits, uvicorn_options

__all__ = ["serve", "check_port", "listen_url", "app_from_env", "config_to_env", "config_from_env", "BackgroundServer",
           "ENV_VAR", "NoDelayHTTPProtocol"]

ENV_VAR = "HEADWATER_SERVER_CONFIG"
"""Environment variable holding the JSON of a :class:`ServerConfig` for :func:`app_from_env`."""


def config_to_env(config: ServerConfig) -> str:
    """The JSON text :func:`config_from_env` reads back.

    >>> config_from_env({ENV_VAR: config_to_env(ServerConfig("c.sqlite", {"a/b": "/pool"}))}).pools
    {'a/b': '/pool'}
    """
    return json.dumps(dataclasses.asdict(config))


def config_from_env(environ: Any = None) -> ServerConfig:
    """A :class:`ServerConfig` from ``$HEADWATER_SERVER_CONFIG`` (JSON), else from ``$HEADWATER_CATALOG``
    (the catalog alone, other settings at their defaults)."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_VAR)
    if text:
        try:
            fields = json.loads(text)
            return ServerConfig(**fields)
        except (ValueError, TypeError) as exc:
            raise RuntimeError(f"${ENV_VAR} is not a server configuration: {exc}") from None
    catalog = env.get("HEADWATER_CATALOG")
    if not catalog:
        from ..catalog import default_catalog_location

        catalog = default_catalog_location()
    return ServerConfig(catalog=catalog)


def app_from_env() -> FastAPI:
    """uvicorn factory (``headwater.server.runner:app_from_env``): the app for :func:`config_from_env`."""
    return create_app(config_from_env())


class NoDelayHTTPProtocol(LimitedHTTPProtocol):
    """uvicorn's HTTP protocol with headwater's connection limits (:class:`~headwater.server.limits.
    LimitedHTTPProtocol`), and ``TCP_NODELAY`` set on every accepted connection.

    Why: with ``--workers N`` uvicorn binds the listening socket itself as ``socket(family)`` (protocol
    number 0), so asyncio does not recognise the accepted sockets as TCP and leaves Nagle's algorithm on;
    a response written as headers + body then waits for the client's delayed ACK, ~40 ms per request.
    """

    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with suppress(OSError):  # a socket that went away already
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _uvicorn_options(log_level: str, limits: Limits | None = None) -> dict[str, Any]:
    """What ``serve`` and :class:`BackgroundServer` hand ``uvicorn.Config``: ``limits`` (default: the
    defaults of :class:`~headwater.server.limits.Limits`) enforced by :class:`NoDelayHTTPProtocol`."""
    # proxy_headers: behind a load balancer, trust X-Forwarded-* only from 127.0.0.1 (uvicorn's default)
    return {"log_level": log_level, "timeout_graceful_shutdown": 10, "server_header": False,
            **uvicorn_options(limits or Limits(), NoDelayHTTPProtocol)}


def check_port(host: str, port: int) -> None:
    """Raise :class:`~headwater.server.errors.AddressInUseError` when ``host:port`` cannot be bound (another
    server holds it), before anything else is started — uvicorn would only log it and exit."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn sets: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as err:
            raise AddressInUseError(f"cannot listen on {host}:{port}: {err.strerror or err} (is another server "
                                    "running there? pick another --port)") from None


_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def listen_url(host: str, port: int) -> str:
    """``http://host:port``: the URL clients reach a server listening there at, when no ``--public-url`` says
    otherwise. A wildcard address (``0.0.0.0``, ``::``) names no host a client could use: that needs the
    public URL given (:class:`~headwater.server.errors.ServerConfigError`).

    >>> listen_url("127.0.0.1", 8000), listen_url("::1", 8000)
    ('http://127.0.0.1:8000', 'http://[::1]:8000')
    """
    if host in _WILDCARDS:
        raise ServerConfigError(f"--host {host or '(all)'} listens on every address, so the server cannot tell which "
                                "URL its clients use (it writes it into pool URLs): give --public-url, e.g. "
                                f"--public-url http://data.example.org:{port}")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000, *, workers: int = 1,
          log_level: str = "info") -> None:
    """Serve ``config`` until interrupted (SIGINT/SIGTERM: graceful shutdown). Without
    ``config.public_url`` the listening address is the public URL (see :func:`listen_url`)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if config.public_url is None:
        config = dataclasses.replace(config, public_url=listen_url(host, port))
    options = _uvicorn_options(log_level, config.limits)
    check_port(host, port)
    if workers == 1:
        uvicorn.run(create_app(config), host=host, port=port, **options)
        return
    create_app(config).state.catalog.close()  # fail here, once, on a bad catalog; also migrates before the fork
    os.environ[ENV_VAR] = config_to_env(config)
    uvicorn.run("headwater.server.runner:app_from_env", factory=True, host=host, port=port, workers=workers,
                **options)  # each worker gets the limits twice: in the pickled uvicorn config and in ENV_VAR


class BackgroundServer:
    """A real uvicorn server on ``host`` (a free port unless ``port`` is given) in a daemon thread.

    ``start()`` returns once the server accepts connections (or raises if it failed to start);
    ``stop()`` shuts it down gracefully and waits for the thread. Also a context manager. ``app`` is the
    FastAPI app (``app.state.catalog`` is its catalog); ``url`` is ``http://host:port``.
    """

    def __init__(self, config_or_app: ServerConfig | FastAPI, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning", startup_timeout: float = 30.0) -> None:
        self.app = create_app(config_or_app) if isinstance(config_or_app, ServerConfig) else config_or_app
        self.host = host
        self.port: int = port
        """The port (the one the system chose, once started, when ``port`` was 0)."""
        config = getattr(getattr(self.app, "state", None), "config", None)  # None: not made by create_app (tests)
        limits = config.limits if isinstance(config, ServerConfig) else None
        options = _uvicorn_options(log_level, limits) | {"timeout_graceful_shutdown": 3}
        # uvicorn binds the port itself (port 0: the system picks a free one, no race between tests). Handing
        # it a pre-bound socket instead costs ~40 ms a request here (Nagle + delayed ACK on accepted sockets).
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, lifespan="on", **options))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        """``http://host:port`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc

    def start(self) -> BackgroundServer:
        """Start serving; returns when the server is ready."""
        if self._thread is not None:
            raise RuntimeError("this server was already started")
        self._thread = threading.Thread(target=self._run, name=f"headwater-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start within {self.startup_timeout} s")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        state = getattr(self.app, "state", None)  # None: an ASGI wrapper around the app (tests)
        if state is not None:
            state.listen_url = self.url  # what the app writes into pool URLs unless public_url says otherwise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down (open streams get ``timeout_graceful_shutdown`` seconds) and join the thread."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
