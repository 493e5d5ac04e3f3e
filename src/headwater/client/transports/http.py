"""The remote :class:`~headwater.client.transports.Transport`: the datatap API of a headwater server over HTTP.

Why it looks like this:

* **One session.** One :class:`httpx.Client` per transport (per process: it is re-made after a fork
  and after unpickling in a DataLoader worker), so requests reuse pooled keep-alive connections, with
  explicit connect/read timeouts instead of waiting forever on a dead peer.
* **Retries that are safe.** Connection failures, time-outs, 429 and 5xx are retried with capped
  exponential backoff and decorrelated jitter, honouring ``Retry-After``, by the one retry policy of
  headwater (:class:`~headwater.storage.RetryPolicy` and its :class:`~headwater.storage.Backoff`). Reads
  are idempotent, so any of those is retried; so is a publish, which carries an ``Idempotency-Key`` (new
  per publish, the same on each retry): the server commits it at most once and answers a retry of one that
  committed with the same dataset.
* **Patience is a deadline.** A request (and a stream, per stretch without progress) is retried for
  ``retry_for`` seconds — default 60, enough for a rolling restart of the server; ``$HEADWATER_RETRY_FOR``
  or ``Api(retry_for=)`` / ``--retry-for`` change it — however many attempts that takes, with waits of at
  most 5 s so a server that is back is found quickly. Giving up says how long it tried.
* **Clear errors.** ``{"error": msg}`` bodies become :class:`~headwater.client.errors.RemoteNotFoundError`
  (404; also a catalog ``NotFoundError``/``KeyError``, as in embedded mode),
  :class:`~headwater.client.errors.RemoteAuthError` (401/403),
  :class:`~headwater.client.errors.RemoteRequestError` (other 4xx) and
  :class:`~headwater.client.errors.RemoteUnavailableError` (unreachable or still failing after the
  retries) — each naming the server's message, the status and the URL.
* **Streams resume.** A split stream is NDJSON, one droplet a line. The transport yields blocks of
  whole lines only (:class:`~headwater.droplet.ndjson.LineFramer`) and counts them; when the connection
  breaks mid-body (reset, time-out, a cut
  chunked body, or fewer lines than the server's ``X-Headwater-Items`` announced), it reconnects with
  ``offset = start + lines already yielded``. The server's pass is deterministic for the same
  arguments, so the caller sees every droplet exactly once and in order.

Authentication is ``Authorization: Bearer base64(api_key)``, as the datatap client sends it.

Example:
    >>> t = HttpTransport("http://127.0.0.1:8000/", api_key="hw_0123456789ab_secret", timeout=5)
    >>> t.url, t._path("db", "repository", "acme", "cats")
    ('http://127.0.0.1:8000', '/api/database/db/repository/acme/cats')
    >>> t._headers()["Authorization"] == "Bearer " + base64.b64encode(b"hw_0123456789ab_secret").decode()
    True
"""

from __future__ import annotations

import base64
import dataclasses
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, Self, cast
from urllib.parse import quote

import httpx
import msgspec

from ... import __version__
from ...droplet import droplet_from_builtins, encode_droplet
from ...droplet.ndjson import LineFramer, count_lines
from ...publish import Problem, PublishError, Source, check_names, prepare_publish
from ...storage import RetryPolicy
from ..errors import (
    ClientError,
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteRequestError,
    RemoteUnavailableError,
)

__all__ = ["DEFAULT_RETRY", "DEFAULT_RETRY_FOR", "DEFAULT_TIMEOUT", "NDJSON", "RETRY_FOR_ENV", "STREAM_BLOCK_BYTES",
           "HttpTransport", "retry_policy"]

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for a connection, or for the next bytes of a response."""

DEFAULT_RETRY_FOR = 60.0
"""Seconds a request (or a stream without progress) is retried: longer than a rolling restart."""

RETRY_FOR_ENV = "HEADWATER_RETRY_FOR"
"""The environment variable that sets ``retry_for`` when it is not given."""

DEFAULT_RETRY = RetryPolicy.lasting(DEFAULT_RETRY_FOR)
"""Retry for 60 s per request (and per stretch of a stream without progress), waits of 0.25 s up to 5 s."""

STREAM_BLOCK_BYTES = 1 << 20
"""Bytes read from a stream response before the whole lines in them are handed on as one block."""

NDJSON = "application/x-ndjson"

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _Retryable(Exception):
    """A transient failure, carrying the status and headers :meth:`RetryPolicy.delay` reads."""

    def __init__(self, message: str, status: int | None = None, headers: Mapping[str, str] | None = None,
                 error: RemoteError | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        self.error = error


def _seconds(value: object, where: str) -> float:
    """``value`` as a number of seconds >= 0 (a float, an int or their text), or a ClientError naming ``where``."""
    if not isinstance(value, bool):
        try:
            seconds = float(value) if isinstance(value, (int, float, str)) else float("nan")
        except ValueError:
            seconds = float("nan")
        if 0 <= seconds < float("inf"):
            return seconds
    raise ClientError(f"{where} must be a number of seconds >= 0 (how long to retry a server that does not "
                      f"answer), got {value!r}")


def retry_policy(retry: RetryPolicy | int | None = None, retry_for: float | str | None = None) -> RetryPolicy:
    """The retry policy of a remote client: ``retry`` (a policy, or a number of attempts on the default one)
    with its deadline set to ``retry_for`` seconds — else, unless ``retry`` is a policy, to
    ``$HEADWATER_RETRY_FOR`` when set. Bad values raise :class:`~headwater.client.errors.ClientError`.

    Example:
        >>> retry_policy(retry_for=10).deadline, retry_policy(3, 0).attempts
        (10.0, 3)
    """
    if isinstance(retry, bool) or not isinstance(retry, (int, RetryPolicy, type(None))):
        raise ClientError(f"retry must be a RetryPolicy or an int >= 1 (attempts), got {retry!r}")
    if isinstance(retry, int) and retry < 1:
        raise ClientError(f"retry must be >= 1 attempts, got {retry}")
    policy = retry if isinstance(retry, RetryPolicy) else DEFAULT_RETRY
    if isinstance(retry, int):
        policy = dataclasses.replace(policy, attempts=retry)
    if retry_for is not None:
        return dataclasses.replace(policy, deadline=_seconds(retry_for, "retry_for"))
    env = os.environ.get(RETRY_FOR_ENV)
    if env is not None and not isinstance(retry, RetryPolicy):
        return dataclasses.replace(policy, deadline=_seconds(env.strip(), f"${RETRY_FOR_ENV}"))
    return policy


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ClientError(f"expected a non-empty name in a URL path, got {value!r}")
    return quote(value, safe="")


class HttpTransport:
    """A :class:`~headwater.client.transports.Transport` talking to a headwater (or datatap) server.

    ``url``: the server's base URL (``http://host:port``; a trailing ``/api`` is accepted too).
    ``api_key``: sent as ``Bearer base64(key)``; None for anonymous reads of public databases.
    ``timeout``: seconds for connecting and between bytes of a response. ``retry``: a
    :class:`~headwater.storage.RetryPolicy` or a number of attempts; ``retry_for``: seconds to keep
    retrying (default ``$HEADWATER_RETRY_FOR``, else 60; see :func:`retry_policy`). ``verify``: TLS verification
    (as httpx takes it). ``block_bytes``: how much of a stream to gather before yielding its whole lines.
    """

    read_ahead = False  # every socket read would wait for the GIL behind the decoder: see Transport.read_ahead

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 retry: RetryPolicy | int | None = None, retry_for: float | str | None = None,
                 verify: bool | str = True, block_bytes: int = STREAM_BLOCK_BYTES) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ClientError(f"server URL must start with http:// or https://, got {url!r}")
        base = url.rstrip("/")
        base = base.removesuffix("/api")
        self.url = base
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retry = retry_policy(retry, retry_for)
        self.verify = verify
        if block_bytes < 1:
            raise ClientError(f"block_bytes must be >= 1, got {block_bytes}")
        self.block_bytes = int(block_bytes)
        self.server_url: str | None = base
        self._client: httpx.Client | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._datasets: dict[tuple[str, str, str, str], dict[str, Any]] = {}  # by uid: immutable
        self.requests = 0
        """HTTP requests sent (attempts included), for tests and benchmarks."""
        self.retried = 0
        """Attempts that failed transiently and were retried (stream resumes included)."""

    # -- session ---------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"HttpTransport({self.url!r}, api_key={'***' if self.api_key else None})"

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (DataLoader workers): settings only; the session is made again where it is used."""
        return {"url": self.url, "api_key": self.api_key, "timeout": self.timeout, "retry": self.retry,
                "verify": self.verify, "block_bytes": self.block_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["api_key"], timeout=state["timeout"],  # type: ignore[misc]
                      retry=state["retry"], verify=state["verify"], block_bytes=state["block_bytes"])

    @property
    def client(self) -> httpx.Client:
        """This process's session (made on first use; made again in a forked child)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._pid = os.getpid()
                timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 30.0))
                self._client = httpx.Client(base_url=self.url, timeout=timeout, verify=self.verify,
                                            headers=self._headers(), follow_redirects=False,
                                            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
            return self._client

    def close(self) -> None:
        """Close pooled connections (the transport stays usable: a new session is made on demand)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"headwater/{__version__}", "Accept": "application/json"}
        if self.api_key:
            token = base64.b64encode(self.api_key.encode("utf-8")).decode("ascii")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    @staticmethod
    def _path(database: str, *parts: str) -> str:
        return "/api/database/" + "/".join(_segment(p) for p in (database, *parts))

    # -- requests --------------------------------------------------------------------------------
    def _error(self, response: httpx.Response) -> RemoteError:
        """The exception for a non-2xx response (reads the body: call with a read response)."""
        status = response.status_code
        body: Any = None
        with suppress(ValueError, UnicodeDecodeError):
            body = response.json()
        message = body.get("error") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message:
            text = response.text.strip()[:200] if response.content else ""
            message = f"HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
        where = f"{response.request.method} {response.request.url}"
        full = f"{message} (HTTP {status}, {where})"
        kwargs = {"status": status, "url": str(response.request.url), "body": body, "headers": dict(response.headers)}
        if status == 404:
            return RemoteNotFoundError(full, **kwargs)
        if status in (401, 403):
            return RemoteAuthError(full, **kwargs)
        if 400 <= status < 500 and status not in _RETRY_STATUS:
            return RemoteRequestError(full, **kwargs)
        return RemoteUnavailableError(full, **kwargs)

    def _attempts(self, what: str, attempt_once: Callable[[], Any]) -> Any:
        """Run ``attempt_once`` under the retry policy; transient failures raise :class:`_Retryable` or an
        httpx transport error inside it. Every request may be sent again: reads are idempotent, and a
        publish carries its ``Idempotency-Key``."""
        backoff = self.retry.backoff()
        while True:
            try:
                self.requests += 1
                return attempt_once()
            except _Retryable as err:
                last: BaseException = err
            except _RETRY_ERRORS as err:
                last = err
            except httpx.HTTPError as err:  # bad URL, unsupported protocol…: not transient
                raise RemoteUnavailableError(f"{what}: {type(err).__name__}: {err}") from err
            if not backoff.failed(last):
                break
            self.retried += 1
        error = last.error if isinstance(last, _Retryable) else None
        if error is not None:
            raise RemoteUnavailableError(f"{error} — {backoff.gave_up()}", status=error.status, url=error.url,
                                         body=error.body)
        raise RemoteUnavailableError(f"{what}: {backoff.gave_up()}: {type(last).__name__}: {last}")

    def _request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                 content: Callable[[], Iterable[bytes]] | bytes | None = None, headers: Mapping[str, str] | None = None,
                 timeout: httpx.Timeout | None = None) -> Any:
        """One API call: the decoded JSON of a 2xx answer, or the matching ``Remote*`` error."""
        what = f"{method} {self.url}{path}"
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}

        def once() -> Any:
            body = content() if callable(content) else content
            response = self.client.request(method, path, json=json, params=params, content=body, headers=headers,
                                           **extra)
            if response.status_code >= 400:
                error = self._error(response)
                if response.status_code in _RETRY_STATUS:
                    raise _Retryable(str(error), response.status_code, response.headers, error)
                raise error
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise RemoteError(f"{what}: the server answered {response.status_code} with a body that is not "
                                  f"JSON ({response.headers.get('content-type')}); is {self.url} a headwater "
                                  "server?", status=response.status_code, url=str(response.request.url)) from None

        return self._attempts(what, once)

    def request_json(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                     content: Callable[[], Iterable[bytes]] | bytes | None = None,
                     headers: Mapping[str, str] | None = None, read_timeout: float | None = None) -> Any:
        """Any other route of the server (pool uploads, Hub API): the decoded JSON answer, with the same
        session, retries and errors as the datatap calls. The request must be idempotent (it may be sent
        again); ``content`` as a callable is called once per attempt. ``read_timeout``: seconds to wait for
        the answer when the server works long on it (e.g. indexing a big upload)."""
        timeout = None
        if read_timeout is not None:
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 30.0), read=read_timeout)
        return self._request(method, path, params=params, content=content, headers=headers, timeout=timeout)

    def _get(self, path: str, **params: Any) -> Any:  # the JSON answer: callers cast it to the API's shape
        return self._request("GET", path, params=params or None)

    # -- metadata (the Transport protocol) -------------------------------------------------------
    def current_user(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self._get("/api/user"))

    def databases(self) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._get("/api/database"))

    def database(self, uid: str) -> dict[str, Any]:
        return cast("dict[str, Any]", self._get(self._path(uid)))

    def query_databases(self, name: str) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._request("POST", "/api/database/query", json={"name": name}))

    def repositories(self, database: str) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._get(self._path(database, "repository")))

    def repository(self, database: str, namespace: str, name: str) -> dict[str, Any]:
        return cast("dict[str, Any]", self._get(self._path(database, "repository", namespace, name)))

    def dataset(self, database: str, namespace: str, name: str, tag_or_uid: str) -> dict[str, Any]:
        key = (database, namespace, name, tag_or_uid)
        found = self._datasets.get(key)
        if found is None:
            found = self._get(self._path(database, "repository", namespace, name, tag_or_uid))
            if found.get("uid") == tag_or_uid:  # by uid: immutable, remembered (a tag may move)
                if len(self._datasets) >= 1024:
                    self._datasets.clear()
                self._datasets[key] = found
        return found

    def split_count(self, database: str, namespace: str, name: str, uid: str, split: str) -> int:
        body = self.dataset(database, namespace, name, uid)
        counts = body.get("splitCounts")
        if not isinstance(counts, dict):
            raise RemoteError(f"the server at {self.url} does not report split sizes (no 'splitCounts' in the "
                              "dataset JSON): it is not a headwater server")
        if split not in counts:
            raise RemoteNotFoundError(f"split {split!r} not found in dataset {uid!r} (splits: {list(counts)})",
                                      status=404)
        return int(counts[split])

    # -- streams ---------------------------------------------------------------------------------
    def stream_blocks(self, database: str, namespace: str, name: str, uid: str, split: str, chunk: int,
                      nchunks: int, *, shuffle_seed: int | None = None, offset: int = 0,
                      truncate: int | None = None) -> Iterator[bytes]:
        """Blocks of whole NDJSON lines of the chunk, resuming after broken connections (module docstring)."""
        path = self._path(database, "repository", namespace, name, uid, "split", split, "stream")
        params: dict[str, Any] = {"chunk": chunk, "nchunks": nchunks}
        if shuffle_seed is not None:
            params["shuffleSeed"] = shuffle_seed
        if truncate is not None:
            params["truncate"] = truncate
        return self._stream(path, params, offset)

    def _line_blocks(self, response: httpx.Response, framer: LineFramer) -> Iterator[bytes]:
        """Blocks of whole lines of about :attr:`block_bytes` from the body, each copied once from the socket's
        pieces; the partial last line stays in ``framer``."""
        pieces: list[bytes] = []
        size = 0
        for data in response.iter_bytes():
            pieces.append(data)
            size += len(data)
            if size >= self.block_bytes:
                block = framer.push_pieces(pieces)
                pieces, size = [], 0
                if block:
                    yield block
        if pieces and (block := framer.push_pieces(pieces)):
            yield block

    def _stream(self, path: str, params: dict[str, Any], offset: int) -> Iterator[bytes]:
        backoff = self.retry.backoff()  # failures in a row; progress (droplets received) resets it
        seen = 0  # lines yielded so far
        what = f"GET {self.url}{path}"
        while True:
            before = seen
            try:
                self.requests += 1
                with self.client.stream("GET", path, params={**params, "offset": offset + seen},
                                        headers={"Accept": NDJSON}) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = self._error(response)
                        if response.status_code in _RETRY_STATUS:
                            raise _Retryable(str(error), response.status_code, response.headers, error)
                        raise error
                    announced = response.headers.get("x-headwater-items")
                    expected = int(announced) if announced and announced.isdigit() else None
                    got = 0
                    framer = LineFramer()
                    for block in self._line_blocks(response, framer):
                        lines = count_lines(block)
                        if expected is not None and got + lines > expected:
                            raise RemoteError(f"{what}: the server sent more droplets than the "
                                              f"{expected} it announced")
                        got += lines
                        seen += lines
                        backoff.reset()
                        yield block
                    if expected is not None and got < expected:
                        raise _Retryable(f"the response ended after {got} of {expected} droplets")
                    if framer.carry.strip():
                        if expected is not None:
                            raise _Retryable(f"the response ended inside a line after {got} droplets")
                        # a body that did not end with a newline: the last line is whole (datatap's server
                        # may omit the final newline) — the Transport contract wants one
                        seen += 1
                        yield framer.finish()
                    return
            except _Retryable as err:
                last: BaseException = err
            except _RETRY_ERRORS as err:
                last = err
            except httpx.HTTPError as err:
                raise RemoteUnavailableError(f"{what}: {type(err).__name__}: {err}") from err
            if seen > before:
                backoff.reset()  # progress was made: the budget starts again
            if not backoff.failed(last):
                cause = getattr(last, "error", None)
                raise RemoteUnavailableError(
                    f"{what}: {backoff.gave_up()} ({seen} droplets received): "
                    f"{cause or f'{type(last).__name__}: {last}'}",
                    status=getattr(cause, "status", None)) from last
            self.retried += 1

    # -- writes ----------------------------------------------------------------------------------
    def publish(self, database: str, namespace: str, name: str,
                items: Iterable[tuple[Any, ...]] | Callable[[], Iterable[tuple[Any, ...]]], *,
                template: Mapping[str, Any] | None = None, tags: Iterable[str] = ("latest",),
                pools: Mapping[str, str] | None = None, strict: bool | None = None,
                max_problems: int = 100, answer_timeout: float | None = None) -> dict[str, Any]:
        """Publish droplets as one new dataset of ``namespace/name`` in ``database``; returns its JSON.

        ``items``: ``(split, droplet)`` or ``(split, droplet, where)`` tuples — ``droplet`` a wire dict, a
        droplet struct or its JSON bytes; ``where`` names the item in *your* source (``"line 12"``) and is
        what the server's problems then quote. Pass a list, or a zero-argument callable returning the
        items, to let the upload be retried when the server could not be reached (429/503, no connection).
        The body streams (chunked), so the items are never all in memory. The server validates every
        droplet and commits all or nothing; a refusal raises
        :class:`~headwater.client.errors.RemoteRequestError` whose ``problems`` lists ``(where, message)``
        pairs.

        The server answers only once everything is validated and committed, which for millions of
        droplets takes minutes: ``answer_timeout`` bounds that wait (default None: no limit; connecting
        and sending still time out after ``timeout`` seconds). Every attempt carries the same
        ``Idempotency-Key`` (one per call), so a retry after a lost connection or answer is safe: the server
        commits the dataset once and answers the retry with it.
        """
        tags = list(tags)
        header = {"template": dict(template) if template is not None else None, "tags": tags,
                  "pools": dict(pools or {}), "strict": strict, "maxProblems": max_problems}

        sent = [0]

        def body() -> Iterator[bytes]:
            if callable(items):
                return _ndjson_body(header, items())
            if not isinstance(items, Sequence) and sent[0]:  # an iterator can be sent once
                raise RemoteUnavailableError("the upload failed and the items cannot be read again; pass a list "
                                             "or a callable returning them to allow retries")
            sent[0] += 1
            return _ndjson_body(header, items)

        path = self._path(database, "repository", namespace, name, "publish")
        try:
            answer: dict[str, Any] = self._request(
                "POST", path, content=body, headers={"Content-Type": NDJSON, "Idempotency-Key": uuid.uuid4().hex},
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 30.0), read=answer_timeout))
            return answer
        except RemoteRequestError as err:
            raise _with_problems(err) from None

    def publish_source(
        self,
        database: str,
        namespace: str,
        name: str,
        source: str | os.PathLike[str] | Source | Sequence[Source],
        *,
        images: str | os.PathLike[str] | None = None,
        pools: Mapping[str, str] | None = None,
        splits: Any = None,
        split_seed: int = 0,
        default_split: str = "train",
        template: Any = None,
        strict: bool | None = None,
        tags: Iterable[str] = ("latest",),
        max_problems: int = 100,
        silent: bool | None = True,
        **local_only: Any,
    ) -> dict[str, Any]:
        """Validate ``source`` here, then publish it on the server as ONE new dataset; returns its JSON.

        The arguments mean what they mean for :func:`headwater.publish.publish`; a bad source is refused
        with exactly its rules and messages before a byte is sent. Then the droplets stream to the server
        (canonical JSON, split decided here, each tagged with its place in the source), which validates
        them again and commits all or nothing. Images must already live in a pool the readers can reach
        (``pool://NAME/KEY`` with ``pools={NAME: URL}``) or be URLs: packing local files into a pool on the
        server is a pool upload (``headwater upload``), not part of the dataset write. Raises
        :class:`~headwater.publish.PublishError` (problems named by their place in *your* source) whether
        the local check or the server refused; then nothing was published.
        """
        if local_only:
            raise ClientError(f"{', '.join(sorted(local_only))}: only for a publish into a local catalog, not "
                              f"through a server ({self.url})")
        tags = list(tags)
        pools = dict(pools or {})
        check_names(namespace=namespace, repository_name=name, split_name=default_split, tag=tags, pool_name=pools)
        plan = prepare_publish(source, images=images, pools=pools, pool_name=next(iter(pools), "images"),
                               splits=splits, split_seed=split_seed, default_split=default_split, template=template,
                               strict=strict, max_problems=max_problems, silent=silent)
        if plan.images:
            example = next(iter(plan.images))
            raise PublishError(f"the droplets name {len(plan.images)} local image file(s) (e.g. {example}); a server "
                               "publish sends annotations only: pack the images into a pool the readers can reach "
                               "(headwater pack, then headwater upload into a pool the server serves), reference "
                               "them as pool://NAME/KEY and pass pools={NAME: URL}; nothing was published")

        def items() -> Iterator[tuple[str, bytes, str]]:
            for item in plan.items():
                yield item.split, encode_droplet(droplet_from_builtins(item.droplet)), item.where

        try:
            return self.publish(database, namespace, name, items, template=plan.template, tags=tags, pools=pools,
                                strict=plan.strict, max_problems=max_problems)
        except RemoteRequestError as err:
            problems = [Problem(w, m) for w, m in getattr(err, "problems", [])]
            if not problems:
                raise
            summary = err.body.get("error", str(err)) if isinstance(err.body, dict) else str(err)
            raise PublishError(f"the server refused the dataset: {summary}", problems,
                               getattr(err, "total", len(problems))) from None

    def move_tag(self, database: str, namespace: str, name: str, tag: str, dataset: str) -> dict[str, Any]:
        """Point ``tag`` at ``dataset`` (a uid, or another tag); returns the tag JSON plus ``previous``."""
        path = self._path(database, "repository", namespace, name, "tag", tag)
        return cast("dict[str, Any]", self._request("PUT", path, json={"dataset": dataset}))

    def tag_history(self, database: str, namespace: str, name: str, tag: str | None = None) -> list[dict[str, Any]]:
        """Every move of the repository's tags (or of ``tag``), oldest first:
        ``[{tag, dataset, previous, movedAt}]`` (``movedAt`` in ms)."""
        path = self._path(database, "repository", namespace, name, "tags", "history")
        params = {"tag": tag} if tag is not None else None
        return cast("list[dict[str, Any]]", self._request("GET", path, params=params))


_ENCODER = msgspec.json.Encoder()
_PIECE = 1 << 20


def _ndjson_body(header: Mapping[str, Any], items: Iterable[tuple[Any, ...]]) -> Iterator[bytes]:
    """The publish body: the header object, then one ``{"split", "droplet", "where"?}`` a line, in ~1 MiB pieces."""
    encode = _ENCODER.encode
    parts = [encode(header), b"\n"]
    size = len(parts[0]) + 1
    for item in items:
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise ClientError(f"publish items are (split, droplet) or (split, droplet, where) tuples, got {item!r}")
        split, droplet = item[0], item[1]
        raw = bytes(droplet) if isinstance(droplet, (bytes, bytearray, memoryview)) else encode(droplet)
        if b"\n" in raw:
            raise ClientError("a droplet's JSON contains a newline; encode it compactly")
        line = b'{"split":' + encode(split) + b',"droplet":' + raw
        if len(item) == 3 and item[2] is not None:
            line += b',"where":' + encode(str(item[2]))
        parts.append(line + b"}\n")
        size += len(line) + 2
        if size >= _PIECE:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


def _with_problems(err: RemoteRequestError) -> RemoteRequestError:
    """Attach the server's ``problems`` (``[(where, message)]``) and ``total`` to a refused publish."""
    body = err.body if isinstance(err.body, dict) else {}
    problems = [(str(p.get("where", "")), str(p.get("message", ""))) for p in body.get("problems", [])
                if isinstance(p, dict)]
    err.problems = problems
    err.total = int(body.get("total", len(problems)))
    return err
