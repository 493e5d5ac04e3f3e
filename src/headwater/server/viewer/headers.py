"""Security headers on every viewer response: a Content-Security-Policy that forbids inline scripts and
styles, ``X-Content-Type-Options: nosniff``, no framing, no referrer leaking paths to other sites.

Why a policy and not only escaping: escaping keeps a hostile class name from *being* markup; the policy is
the second wall — even markup that got through could run no script (``script-src 'self'``: only the
viewer's own files, never inline code or ``on…=`` attributes) and load nothing from elsewhere.

Example:
    >>> "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    True
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .pages import PREFIX

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "ViewerHeaders"]

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
"""The viewer's policy: its own scripts, styles and images only; forms post to itself; never framed."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""Set on every response under ``/view`` (a route's own ``Content-Security-Policy`` is kept)."""


class ViewerHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on responses to paths under ``/view``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
