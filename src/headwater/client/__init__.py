"""Layer 7 (client): datatap's ``Api`` over a catalog or a server, sharded streams, and their cache.

* :mod:`.api` — ``Api → Database → Repository → Dataset → stream_split`` (datatap's entity layer);
* :mod:`.endpoints` — :class:`ApiEndpoints` (datatap's endpoint layer: plain JSON dicts, same transport and cache);
* :mod:`.session` — what both share: a transport and a stream cache, chosen from arguments and environment;
* :mod:`.transports` — where the data is: :class:`EmbeddedTransport` (a local catalog) or
  :class:`HttpTransport` (a headwater server), behind one :class:`Transport` interface;
* :mod:`.passes` — one pass: replayed from the cache, filled into it while streaming, or streamed;
* :mod:`.stream_cache` — the persistent, multi-process-safe, size-bounded stream cache;
* :mod:`.upload` — a local pool's shards into a served pool, resumably;
* :mod:`.errors` — what a client call can raise.

Importing this package for remote use loads neither SQLAlchemy nor Alembic (``tests/test_structure.py``).

Example:
    >>> api = Api(url="http://127.0.0.1:8000", api_key="hw_0123456789ab_secret", cache=False)
    >>> type(api.transport).__name__
    'HttpTransport'
"""

from .api import Api, Database, Dataset, DatasetRepository, Repository, Split, Tag, User
from .endpoints import ApiEndpoints
from .errors import (
    CacheError,
    ClientError,
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteRequestError,
    RemoteUnavailableError,
)
from .passes import stream_pass
from .stream_cache import DEFAULT_MAX_BYTES, CacheEntry, StreamCache, StreamKey
from .transports import EmbeddedTransport, HttpTransport, Transport, Writer
from .upload import LocalShard, UploadReport, local_shards, upload_pool

__all__ = [
    "Api", "User", "Database", "Repository", "Tag", "Split", "Dataset", "DatasetRepository", "ApiEndpoints",
    "StreamCache", "StreamKey", "CacheEntry", "CacheError", "DEFAULT_MAX_BYTES",
    "ClientError", "RemoteError", "RemoteNotFoundError", "RemoteAuthError", "RemoteRequestError",
    "RemoteUnavailableError",
    "Transport", "Writer", "EmbeddedTransport", "HttpTransport",
    "stream_pass",
    "LocalShard", "UploadReport", "local_shards", "upload_pool",
]
