"""Request bodies: refused by size before they are read, capped while they stream, read only after the
caller is authenticated.

Why: a server that reads a body before checking who sent it, or reads it whole before checking its size,
lets anyone make it hold gigabytes (a 1 GiB ``POST`` to a small JSON route took the process from 124 MB
to 2.2 GB). So:

* :class:`BodyLimits` (ASGI middleware) gives every route a cap — uploads and publishes the server's
  ``max_upload_bytes``, ``paths-info`` 1 MiB, every other route :data:`SMALL_BODY` — refuses a larger
  ``Content-Length`` with 413 before the app sees the request, and counts the bytes of a chunked body,
  answering 413 as soon as the cap is passed (nothing past it is buffered).
* Routes take no FastAPI ``Body(...)`` parameters (FastAPI reads those before it runs the dependencies
  that authenticate); they read their body themselves, after their dependencies, through
  :func:`read_body` / :func:`read_json`, which also turn malformed or absurdly nested JSON into a 400.

Example:
    >>> limit_for("PUT", "/api/pools/acme/px/files/images/0001.tar", upload=1 << 30)
    1073741824
    >>> limit_for("POST", "/api/database/query", upload=1 << 30)
    65536
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SMALL_BODY", "PATHS_INFO_BODY", "MAX_JSON_DEPTH", "BodyLimits", "limit_for", "read_body", "read_json",
           "decode_json"]

SMALL_BODY = 64 << 10
"""Cap on the body of every route not named below (JSON requests such as a database query, a tag move)."""

PATHS_INFO_BODY = 1 << 20
"""Cap on a Hub ``paths-info`` request (a form or JSON list of paths)."""

MAX_JSON_DEPTH = 64
"""JSON nested deeper than this in a request is refused (decoding and walking it would recurse that deep)."""

_UPLOADS = (
    ("PUT", re.compile(r"/api/pools/[^/]+/[^/]+/files/.+")),
    ("POST", re.compile(r"/api/database/[^/]+/repository/[^/]+/[^/]+/publish")),
)
_PATHS_INFO = re.compile(r"/api/(datasets|models|spaces)/[^/]+/[^/]+/paths-info/.*")


def limit_for(method: str, path: str, *, upload: int) -> int:
    """The most bytes a request body may have on this route."""
    if any(method == m and pattern.fullmatch(path) for m, pattern in _UPLOADS):
        return upload
    if method == "POST" and _PATHS_INFO.fullmatch(path):
        return PATHS_INFO_BODY
    return SMALL_BODY


def _too_large(limit: int, size: int | None = None) -> HTTPException:
    said = f"a request body of {size} bytes is" if size is not None else "the request body is"
    return HTTPException(413, f"{said} over this route's limit of {limit} bytes")


class BodyLimits:
    """ASGI middleware enforcing :func:`limit_for` on every request (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, upload_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"], upload=self.upload_limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, str(_too_large(limit, declared).detail))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, status: int, message: str) -> None:
    body = msgspec.json.encode({"error": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def read_body(request: Request, limit: int = SMALL_BODY) -> bytes:
    """The whole body, at most ``limit`` bytes (413 otherwise, from ``Content-Length`` before reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def decode_json(data: bytes, what: str) -> Any:
    """``data`` as JSON, or a 400 naming ``what`` (malformed, or nested deeper than :data:`MAX_JSON_DEPTH`)."""
    if _depth(data) > MAX_JSON_DEPTH:
        raise HTTPException(400, f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as err:
        raise HTTPException(400, f"{what}: not valid JSON: {err}") from None


async def read_json(request: Request, what: str, limit: int = SMALL_BODY) -> Any:
    """The body as JSON (after the route's dependencies authenticated the caller): 413 over ``limit``,
    400 when it is not JSON or nests too deeply."""
    return decode_json(await read_body(request, limit), what)


def _depth(data: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings are not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest
