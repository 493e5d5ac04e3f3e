"""HTML pages of the viewer: one Jinja2 environment (autoescaping everything), the static files, links.

Why autoescape with no ``|safe`` anywhere: class names, metadata, uids, tag names and droplet JSON are
written by whoever published a dataset, so every one of them reaches the page as text. The only markup not
written in a template is the statistics' SVG (:mod:`.charts`), built from escaped parts and marked safe
there. Scripts and styles are files under ``static/`` (no inline script or style: the
Content-Security-Policy of :mod:`.headers` forbids them), served with a content hash in their URL so they
can be cached for good.

Example:
    >>> STATIC.url("viewer.css").startswith("/view/static/viewer.css?v=")
    True
    >>> path_of("main", "acme", "cats", "v1", "train")
    '/view/main/acme/cats/v1/train'
    >>> with_query("/view/x", [("class", "<cat>"), ("page", "2")])
    '/view/x?class=%3Ccat%3E&page=2'
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from ...catalog import Principal

__all__ = ["PREFIX", "StaticFiles", "STATIC", "TEMPLATES", "page", "path_of", "with_query", "local_next"]

PREFIX = "/view"
"""Where the viewer is mounted."""


def path_of(*segments: str | int) -> str:
    """The viewer URL of these path segments, each percent-quoted."""
    return PREFIX + "/" + "/".join(quote(str(s), safe="") for s in segments)


def with_query(path: str, params: Iterable[tuple[str, str]]) -> str:
    """``path`` with a query string of ``params`` (none: ``path`` itself)."""
    query = urlencode(list(params))
    return f"{path}?{query}" if query else path


def local_next(target: str | None) -> str:
    """``target`` if it is a viewer path of this server (where to go after signing in), else ``/view/``:
    never an absolute or protocol-relative URL, so the sign-in form cannot send anyone elsewhere."""
    if (not target or not target.startswith(PREFIX + "/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 0x20 for c in target)):
        return PREFIX + "/"
    return target


@dataclass(frozen=True)
class _StaticFile:
    data: bytes
    media_type: str
    etag: str


class StaticFiles:
    """The files of the package's ``static/`` folder, read once; URLs carry a content hash (``?v=``)."""

    def __init__(self, package: str, folder: str) -> None:
        self.files: dict[str, _StaticFile] = {}
        for entry in resources.files(package).joinpath(folder).iterdir():
            if entry.is_file() and not entry.name.startswith("."):
                data = entry.read_bytes()
                media = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
                if media.startswith("text/") or media.endswith("javascript"):
                    media += "; charset=utf-8"
                self.files[entry.name] = _StaticFile(data, media, hashlib.sha256(data).hexdigest()[:16])

    def get(self, name: str) -> _StaticFile | None:
        """The file called ``name``, or None."""
        return self.files.get(name)

    def url(self, name: str) -> str:
        """The URL of static file ``name`` (KeyError if there is none)."""
        return f"{PREFIX}/static/{name}?v={self.files[name].etag}"


STATIC = StaticFiles(__package__ or "headwater.server.viewer", "static")
"""The viewer's scripts, styles and icons."""


def _when(value: datetime | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):  # milliseconds since the epoch
        from datetime import UTC

        value = datetime.fromtimestamp(value / 1000, UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _count(value: int) -> str:
    return f"{value:,}"


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader(__package__ or "headwater.server.viewer", "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.globals.update(static=STATIC.url, path_of=path_of, with_query=with_query)
TEMPLATES.filters.update(when=_when, count=_count)


def page(request: Request, template: str, who: Principal | None, *, status: int = 200,
         headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
    """Render ``template`` for ``who`` (shown in the header, with sign-in or sign-out) as an HTML response."""
    html = TEMPLATES.get_template(template).render(
        user=who, here=request.url.path + (f"?{request.url.query}" if request.url.query else ""), **context)
    response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    response.headers.setdefault("Cache-Control", "no-store" if who is not None else "no-cache")
    return response
