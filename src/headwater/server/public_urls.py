"""Pool URLs as clients see them: a dataset's pools that the server serves are shown as its own HTTP URLs.

Why: a dataset maps pool names to pool locations (``{"images": "/srv/pools/acme/cats/2024…"}`` or
``s3://bucket/pool``), written where the publisher stood. A remote client can reach neither a path on the
server's disk nor (usually) its private bucket — but it can reach the server, which serves every pool of
``ServerConfig.pools`` Hub-style at ``/datasets/{owner}/{repo}/resolve/{rev}/{path}``, byte ranges
included, which is all :func:`headwater.pool.open_pool` needs over HTTP. So:

* **on read** (:func:`public_pool_url`): a stored location inside a served pool becomes
  ``{base}/datasets/{owner}/{repo}/resolve/main/{sub/path}`` (the longest matching pool wins); a URL
  (``https://``, ``s3://``, ``hf://`` …) that no served pool holds is returned unchanged; a path on the
  server's own disk that no served pool holds is not shown at all;
* **on write** (:func:`stored_pool_url`): a publisher that names such a server URL (``…/resolve/main/…``
  on *this* server, e.g. after uploading shards into a served pool) has it stored as the pool's own
  location, so the dataset survives the server moving to another host name, and reads map it back.

The catalog keeps locations; the URL a client gets is built on the server's public URL
(:func:`public_base_url`: configured, never taken from a request's ``Host`` header).

Example:
    >>> served = {"acme/images": "/srv/pools/images", "acme/s3": "s3://bucket/pool"}
    >>> public_pool_url("/srv/pools/images/db/cats/2024", served, "http://hw:8000")
    'http://hw:8000/datasets/acme/images/resolve/main/db/cats/2024'
    >>> public_pool_url("s3://bucket/pool", served, "http://hw:8000")
    'http://hw:8000/datasets/acme/s3/resolve/main'
    >>> public_pool_url("https://elsewhere.org/pool", served, "http://hw:8000")
    'https://elsewhere.org/pool'
    >>> public_pool_url("/home/alice/pools/cats", served, "http://hw:8000") is None  # never shown
    True
    >>> stored_pool_url("http://hw:8000/datasets/acme/images/resolve/main/db/cats", served, "http://hw:8000")
    '/srv/pools/images/db/cats'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

from fastapi import Request

from .errors import UnsafeUrlError
from .snapshots import check_repo_path
from .state import config_of

__all__ = ["served_pool_of", "public_pool_url", "public_pools", "stored_pool_url", "stored_pools", "public_base_url",
           "url_problem"]


def _norm(location: str) -> str:
    if "://" in location:
        return location.rstrip("/")
    return os.path.abspath(os.path.expanduser(location))


def _join(root: str, rest: str) -> str:
    if not rest:
        return root
    return f"{root.rstrip('/')}/{rest}" if "://" in root else os.path.join(root, *rest.split("/"))


def served_pool_of(location: str, served: Mapping[str, str]) -> tuple[str, str] | None:
    """``(repo, path inside it)`` of the served pool holding ``location`` (the longest root wins), or None."""
    target = _norm(location)
    best: tuple[int, str, str] | None = None
    for repo, root in served.items():
        root = _norm(root)
        if target == root:
            rest = ""
        elif target.startswith(root.rstrip("/") + "/"):
            rest = target[len(root.rstrip("/")) + 1:]
        else:
            continue
        if best is None or len(root) > best[0]:
            best = (len(root), repo, rest)
    return None if best is None else (best[1], best[2])


def public_pool_url(location: str, served: Mapping[str, str], base_url: str) -> str | None:
    """The URL a client should use for pool ``location`` (see the module docstring); None for a path on the
    server's disk that no served pool holds — no client could open it, and showing it would leak the
    server's file system."""
    found = served_pool_of(location, served)
    if found is None:
        return None if "://" not in location or location.startswith("file://") else location
    repo, rest = found
    url = f"{base_url.rstrip('/')}/datasets/{repo}/resolve/main"
    return f"{url}/{quote(rest)}" if rest else url


def stored_pool_url(url: str, served: Mapping[str, str], base_url: str) -> str:
    """The location to store for a pool a publisher named by ``url`` (see the module docstring).

    Raises :class:`~headwater.server.errors.UnsafePathError` for a server URL whose path is unsafe.
    """
    prefix = f"{base_url.rstrip('/')}/datasets/"
    if not url.startswith(prefix):
        return url
    parts = url[len(prefix):].rstrip("/").split("/", 4)
    if len(parts) < 4 or parts[2] != "resolve" or parts[3] != "main":
        return url  # another route or a pinned commit: kept as given
    repo = f"{parts[0]}/{parts[1]}"
    root = served.get(repo)
    if root is None:
        return url
    rest = unquote(parts[4]) if len(parts) == 5 else ""
    if rest:
        check_repo_path(rest)
    return _join(root, rest)


def public_pools(request: Request, pools: Mapping[str, str]) -> dict[str, str]:
    """A dataset JSON's ``pools`` as this request's client should see them."""
    served = config_of(request).pools
    base = public_base_url(request)
    shown = {name: public_pool_url(url, served, base) for name, url in pools.items()}
    return {name: url for name, url in shown.items() if url is not None}


def stored_pools(request: Request, pools: Mapping[str, str]) -> dict[str, str]:
    """A publisher's ``pools`` as the catalog should store them: :class:`UnsafeUrlError` for a URL readers'
    clients should not be sent to (:func:`url_problem`), UnsafePathError for a bad server path."""
    served = config_of(request).pools
    base = public_base_url(request)
    for name, url in pools.items():
        problem = url_problem(request, url)
        if problem is not None:
            raise UnsafeUrlError(f"pool {name!r}: {problem}")
    return {name: stored_pool_url(url, served, base) for name, url in pools.items()}


def url_problem(request: Request, url: str) -> str | None:
    """Why a publisher may not point readers at ``url`` (None: it may). Readers' clients open the pool URLs
    and image URLs of a dataset, so a publisher could send them to a loopback port or a file on their own
    disk: only this server's own URLs and the schemes ``ServerConfig.pool_url_schemes`` allows are taken."""
    base = public_base_url(request)
    if url.startswith(base + "/datasets/"):
        return None
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    allowed = config_of(request).pool_url_schemes
    if scheme in allowed:
        return None
    what = f"a {scheme}:// URL" if scheme else "not a URL"
    return (f"{url!r} is {what}; this server accepts its own pools ({base}/datasets/…) and "
            f"{', '.join(s + '://' for s in allowed) or 'no other'} URLs (the operator can allow more with "
            "headwater serve --allow-pool-scheme)")


def public_base_url(request: Request) -> str:
    """The URL clients reach this server at: ``ServerConfig.public_url`` (``serve --public-url``), else the
    address ``serve`` listens on, else — only for an app driven in-process, as in tests — the request's.

    Never the ``Host`` header of a request served over the network: behind a shared cache, a client could
    make the server write its own host name into answers other clients receive."""
    configured = config_of(request).public_url or getattr(request.app.state, "listen_url", None)
    return str(configured or request.base_url).rstrip("/")

