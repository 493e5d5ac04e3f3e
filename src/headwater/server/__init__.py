"""Layer 7 (beside :mod:`headwater.client`, never importing it): the HTTP server — a stateless ASGI app.

It speaks two contracts so that clients nobody here wrote work unchanged: the datatap 0.3.0 API under
``/api/`` (databases, repositories, datasets, NDJSON split streams) and the Hugging Face Hub's
``/datasets/{owner}/{repo}/resolve/{revision}/{path}`` file contract with byte ranges (pools). All state
lives in the catalog (SQLite or PostgreSQL) and the pool stores, so any number of server processes can
run behind a load balancer.

* :mod:`.app` — :func:`create_app` and :class:`ServerConfig`; :mod:`.runner` — uvicorn, foreground or not;
* :mod:`.routes` — one router per contract; :mod:`.state` — what the app owns and hands to them;
* :mod:`.auth` — keys, visibility, write access; :mod:`.public_urls` — pool locations as client URLs;
* :mod:`.snapshots` — served pools as Hub repos: commits, revisions, which bytes a path names;
* :mod:`.range_responses` — ``Range`` parsing and file bodies; :mod:`.errors` — the server's own errors;
* :mod:`.limits` — what one connection may cost: timeouts, head size, concurrency, paced response bodies.

Example:
    >>> import os, tempfile
    >>> from starlette.testclient import TestClient
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "catalog.sqlite")))
    >>> TestClient(app).get("/healthz").json()
    {'ok': True}
"""

from .app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
