"""One pass over a chunk: replayed from the stream cache, filled into it while streaming, or streamed.

Kept apart from the API objects because the same function serves :meth:`Dataset.stream_split
<headwater.client.Dataset.stream_split>`, :meth:`Dataset.query <headwater.client.Dataset.query>` and the
PyTorch integration, and because it is the hot path: everything moves in blocks of whole NDJSON lines
(one cache write and one decode loop per block, thousands of droplets each), never droplet by droplet.
From a local catalog (:attr:`Transport.read_ahead <headwater.client.transports.Transport.read_ahead>`) the
catalog is read in a thread a block ahead (:mod:`~headwater.client.read_ahead`), so the caller's thread
decodes while the database reads; the cache's own writes run in a thread too (:class:`StreamCache`).

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> from headwater.client.transports import EmbeddedTransport
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_database("main")
    >>> ds = cat.publish("main", "acme", "cats", template={}, splits={"train": [b'{"n":0}', b'{"n":1}']})
    >>> b"".join(stream_pass(EmbeddedTransport(cat), None, database="main", namespace="acme", name="cats",
    ...                      uid=ds.uid, split="train", chunk=0, nchunks=1, offset=1))
    b'{"n":1}\\n'
"""

from __future__ import annotations

from collections.abc import Iterator

from .read_ahead import read_ahead
from .stream_cache import StreamCache, StreamKey
from .transports import Transport

__all__ = ["stream_pass"]


def stream_pass(transport: Transport, cache: StreamCache | None, *, database: str, namespace: str, name: str,
                uid: str, split: str, chunk: int, nchunks: int, shuffle_seed: int | None = None,
                offset: int = 0, truncate: int | None = None) -> Iterator[bytes]:
    """Blocks of the pass (chunk ``chunk`` of ``nchunks``) from line ``offset`` on.

    With a cache: a complete entry is replayed (seeking to ``offset``); otherwise a pass from 0
    fills the entry while it streams (promoted when complete), and a resumed pass streams only.
    """

    def source(start: int) -> Iterator[bytes]:
        blocks = transport.stream_blocks(database, namespace, name, uid, split, chunk, nchunks,
                                         shuffle_seed=shuffle_seed, offset=start, truncate=truncate)
        return read_ahead(blocks) if transport.read_ahead else blocks

    if cache is None:
        return source(offset)
    key = StreamKey(uid, split, chunk, nchunks, shuffle_seed, truncate)
    return cache.stream(key, source, offset=offset)
