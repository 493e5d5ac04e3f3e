"""Layer 6 (beside :mod:`headwater.client`): the HTTP server — a stateless ASGI app.

It speaks two contracts so that clients nobody here wrote work unchanged: the datatap 0.3.0 API under
``/api/`` (databases, repositories, datasets, NDJSON split streams) and the Hugging Face Hub's
``/datasets/{owner}/{repo}/resolve/{revision}/{path}`` file contract with byte ranges (pools). All state
lives in the catalog (SQLite or PostgreSQL) and the pool stores, so any number of server processes can
run behind a load balancer.

Example:
    >>> import os, tempfile
    >>> from starlette.testclient import TestClient
    >>> app = create_app(ServerConfig(catalog=os.path.join(tempfile.mkdtemp(), "catalog.sqlite")))
    >>> TestClient(app).get("/healthz").json()
    {'ok': True}
"""

from .app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
