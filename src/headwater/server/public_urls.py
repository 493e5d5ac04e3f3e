"""Pool URLs as clients see them: a dataset's pools that the server serves are shown as its own HTTP URLs.

Why: a dataset maps pool names to pool locations (``{"images": "/srv/pools/acme/cats/2024…"}`` or
``s3://bucket/pool``), written where the publisher stood. A remote client can reach neither a path on the
server's disk nor (usually) its private bucket — but it can reach the server, which serves every pool of
``ServerConfig.pools`` Hub-style at ``/datasets/{owner}/{repo}/resolve/{rev}/{path}``, byte ranges
included, which is all :func:`headwater.pool.open_pool` needs over HTTP. So:

* **on read** (:func:`public_pool_url`): a stored location inside a served pool becomes
  ``{base}/datasets/{owner}/{repo}/resolve/main/{sub/path}`` (the longest matching pool wins); anything
  else (a public ``https://`` or ``hf://`` URL, a pool the server does not serve) is returned unchanged;
* **on write** (:func:`stored_pool_url`): a publisher that names such a server URL (``…/resolve/main/…``
  on *this* server, e.g. after uploading shards into a served pool) has it stored as the pool's own
  location, so the dataset survives the server moving to another host name, and reads map it back.

The catalog keeps locations; the URL a client gets depends on the address it used (``request.base_url``,
which honours ``X-Forwarded-*`` when uvicorn trusts the proxy).

Example:
    >>> served = {"acme/images": "/srv/pools/images", "acme/s3": "s3://bucket/pool"}
    >>> public_pool_url("/srv/pools/images/db/cats/2024", served, "http://hw:8000")
    'http://hw:8000/datasets/acme/images/resolve/main/db/cats/2024'
    >>> public_pool_url("s3://bucket/pool", served, "http://hw:8000")
    'http://hw:8000/datasets/acme/s3/resolve/main'
    >>> public_pool_url("https://elsewhere.org/pool", served, "http://hw:8000")
    'https://elsewhere.org/pool'
    >>> stored_pool_url("http://hw:8000/datasets/acme/images/resolve/main/db/cats", served, "http://hw:8000")
    '/srv/pools/images/db/cats'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote, unquote

from fastapi import Request

from .snapshots import check_repo_path
from .state import config_of

__all__ = ["public_pool_url", "public_pools", "stored_pool_url", "stored_pools"]


def _norm(location: str) -> str:
    if "://" in location:
        return location.rstrip("/")
    return os.path.abspath(os.path.expanduser(location))


def _join(root: str, rest: str) -> str:
    if not rest:
        return root
    return f"{root.rstrip('/')}/{rest}" if "://" in root else os.path.join(root, *rest.split("/"))


def public_pool_url(location: str, served: Mapping[str, str], base_url: str) -> str:
    """The URL a client should use for pool ``location`` (see the module docstring)."""
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
    if best is None:
        return location
    _, repo, rest = best
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
    base = str(request.base_url)
    return {name: public_pool_url(url, served, base) for name, url in pools.items()}


def stored_pools(request: Request, pools: Mapping[str, str]) -> dict[str, str]:
    """A publisher's ``pools`` as the catalog should store them (UnsafePathError on a bad server path)."""
    served = config_of(request).pools
    base = str(request.base_url)
    return {name: stored_pool_url(url, served, base) for name, url in pools.items()}

