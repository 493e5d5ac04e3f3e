"""Who is looking: the viewer's caller from a Bearer header (scripts, tests) or the sign-in session cookie.

The rules of access are the API's (:mod:`headwater.server.auth`): this module only finds the
:class:`~headwater.catalog.Principal`. A Bearer header wins and is checked exactly as on ``/api/`` (a bad key
is 401). A session cookie that is malformed, forged, expired or names a revoked key counts as no session —
the caller is anonymous and the page says so — never as an error a stranger could probe.

When the server refuses anonymous reads (``serve --no-anonymous``), an anonymous page request is sent to
the sign-in form (:class:`SignInRequired`, answered with a redirect) and an anonymous image request gets 401.

Example:
    >>> import os, tempfile
    >>> from starlette.testclient import TestClient
    >>> from headwater.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "c.sqlite")))
    >>> _ = app.state.catalog.create_user("alice")
    >>> _, secret = app.state.catalog.create_api_key("alice")
    >>> client = TestClient(app, base_url="https://testserver")
    >>> r = client.post("/view/signin", data={"key": secret}, follow_redirects=False)
    >>> r.status_code, secret in r.headers["set-cookie"], "HttpOnly" in r.headers["set-cookie"]
    (303, False, True)
    >>> "alice" in client.get("/view/").text
    True
"""

from __future__ import annotations

from typing import cast

from fastapi import Request

from ...catalog import Principal
from ..auth import principal
from ..state import catalog_of, config_of
from .sessions import COOKIE_NAME
from .state import viewer_of

__all__ = ["SignInRequired", "viewer_principal", "viewer_reader", "session_from_cookie"]


class SignInRequired(Exception):
    """An anonymous caller on a server without anonymous reads: redirect to the sign-in form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def session_from_cookie(request: Request) -> Principal | None:
    """The principal of the request's session cookie, or None (no cookie, or not a live session)."""
    value = request.cookies.get(COOKIE_NAME)
    if not value:
        return None
    key_id = viewer_of(request).signer.key_id(value)
    return None if key_id is None else catalog_of(request).key_principal(key_id)


def viewer_principal(request: Request) -> Principal | None:
    """The caller (None: anonymous): the Bearer key when one is sent (401 if it is bad), else the session.

    Memoised on the request like :func:`headwater.server.auth.principal`.
    """
    if hasattr(request.state, "principal"):
        return cast("Principal | None", request.state.principal)
    if request.headers.get("authorization"):
        return principal(request)
    who = session_from_cookie(request)
    request.state.principal = who
    return who


def viewer_reader(request: Request) -> Principal | None:
    """FastAPI dependency for viewer pages: the caller; :class:`SignInRequired` for an anonymous caller when
    the server refuses anonymous reads."""
    who = viewer_principal(request)
    if who is None and not config_of(request).anonymous_read:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return who
