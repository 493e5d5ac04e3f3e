"""Retry policy for store reads: exponential backoff with jitter that honours ``Retry-After``.

Errors are sorted into three kinds by :func:`classify`: *retry* (429, 5xx, connection resets,
time-outs), *auth* (401/403 — never retried, reported as such), *missing* (404 / no such file).
Anything else is raised unchanged.

Example:
    >>> policy = RetryPolicy(attempts=3, base_delay=0.0)
    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionResetError("reset")
    ...     return "ok"
    >>> policy.call(flaky, what="demo")
    'ok'
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from .errors import StoreAuthError, StoreNotFoundError, StoreUnavailableError

__all__ = ["RetryPolicy", "classify", "retry_after_seconds"]

T = TypeVar("T")
Kind = Literal["retry", "auth", "missing", "other"]

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_RESET_ERRNOS = {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT}


def _status_of(err: BaseException) -> int | None:
    for attr in ("status", "status_code"):
        value = getattr(err, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(err, "response", None)
    if response is not None:
        code = getattr(response, "status_code", None) or getattr(response, "status", None)
        if isinstance(code, int):
            return code
        if isinstance(response, dict):  # botocore ClientError
            meta = response.get("ResponseMetadata", {})
            if isinstance(meta.get("HTTPStatusCode"), int):
                return meta["HTTPStatusCode"]
    return None


def _headers_of(err: BaseException) -> Mapping[str, str]:
    headers = getattr(err, "headers", None)
    if headers is None:
        response = getattr(err, "response", None)
        headers = getattr(response, "headers", None)
    return headers or {}


def classify(err: BaseException) -> Kind:
    """Sort an exception raised by a store backend into retry / auth / missing / other."""
    if isinstance(err, StoreAuthError):
        return "auth"
    if isinstance(err, (FileNotFoundError, StoreNotFoundError)):
        return "missing"
    status = _status_of(err)
    if status is not None:
        if status in (401, 403):
            return "auth"
        if status == 404:
            return "missing"
        if status in _RETRY_STATUS or status >= 500:
            return "retry"
        return "other"
    if isinstance(err, PermissionError):
        return "auth"
    if isinstance(err, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return "retry"
    if isinstance(err, OSError) and err.errno in _RESET_ERRNOS:
        return "retry"
    name = type(err).__name__
    if name in {"ServerDisconnectedError", "ClientConnectorError", "ClientOSError", "ClientPayloadError",
                "ServerTimeoutError", "RemoteProtocolError", "ReadTimeout", "ConnectTimeout",
                "ReadError", "EndpointConnectionError", "ConnectionClosedError"}:
        return "retry"
    return "other"


def retry_after_seconds(err: BaseException, now: float | None = None) -> float | None:
    """The server's ``Retry-After`` (seconds or HTTP date) carried by ``err``, if any."""
    value = _headers_of(err).get("Retry-After") or _headers_of(err).get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 30.0

    def delay(self, attempt: int, err: BaseException) -> float:
        hinted = retry_after_seconds(err)
        if hinted is not None:
            return min(hinted, self.max_delay)
        backoff = min(self.max_delay, self.base_delay * (2 ** attempt))
        return backoff * (0.5 + random.random() / 2)

    def call(self, fn: Callable[[], T], *, what: str, on_retry: Callable[[BaseException], None] | None = None) -> T:
        """Run ``fn``; retry transient failures; turn auth/missing failures into store errors."""
        for attempt in range(self.attempts):
            try:
                return fn()
            except (StoreAuthError, StoreNotFoundError):
                raise
            except Exception as err:  # noqa: BLE001 - classified below, re-raised otherwise
                kind = classify(err)
                if kind == "auth":
                    raise StoreAuthError(f"access refused for {what}: {err}") from err
                if kind == "missing":
                    raise StoreNotFoundError(f"not found: {what}") from err
                if kind != "retry":
                    raise
                if attempt + 1 >= self.attempts:
                    raise StoreUnavailableError(
                        f"{what}: still failing after {self.attempts} attempts: {err!r}"
                    ) from err
                if on_retry is not None:
                    on_retry(err)
                time.sleep(self.delay(attempt, err))
        raise AssertionError("unreachable")  # pragma: no cover
