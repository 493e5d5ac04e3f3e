"""Layer 6 (client): datatap-style ``Api`` over a catalog, sharded streams, and their cache.

* :mod:`.api` — ``Api → Database → Repository → Dataset → stream_split`` (datatap's names);
* :mod:`.sharding` — which droplets chunk ``k`` of ``n`` holds, the seeded shuffle, resume;
* :mod:`.cache` — the persistent, multi-process-safe, size-bounded stream cache;
* :mod:`.transport` — the seam between the API and the catalog (embedded);
* :mod:`.http_transport` — the same seam over HTTP to a headwater server (remote mode);
* :mod:`.writes` — publish / move tags through either transport;
* :mod:`.stream` — one pass: replay, fill while streaming, or stream; batch decoding.

Example:
    >>> chunk_bounds(10, 0, 3)
    (0, 3)
"""

from .api import Api, Database, Dataset, DatasetRepository, Repository, Split, Tag, User
from .cache import DEFAULT_MAX_BYTES, CacheEntry, CacheError, StreamCache, StreamKey
from .errors import (
    ClientError,
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteRequestError,
    RemoteUnavailableError,
)
from .http_transport import HttpTransport
from .sharding import Permutation, ShardPlan, chunk_bounds
from .stream import decode_blocks, pass_blocks
from .transport import PAGE_SIZE, EmbeddedTransport, Transport, iter_lines

__all__ = [
    "Api", "User", "Database", "Repository", "Tag", "Split", "Dataset", "DatasetRepository",
    "StreamCache", "StreamKey", "CacheEntry", "CacheError", "DEFAULT_MAX_BYTES",
    "ClientError", "RemoteError", "RemoteNotFoundError", "RemoteAuthError", "RemoteRequestError",
    "RemoteUnavailableError", "HttpTransport",
    "chunk_bounds", "Permutation", "ShardPlan",
    "pass_blocks", "decode_blocks",
    "Transport", "EmbeddedTransport", "iter_lines", "PAGE_SIZE",
]
