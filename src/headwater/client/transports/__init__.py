"""The seam between the client objects and where the data is: one :class:`Transport` interface, one module
per backend.

The client API (:mod:`headwater.client.api`) speaks only the datatap wire format — the JSON dicts
the datatap 0.3.0 server returns, plus NDJSON blocks for split streams — through this protocol:

* :mod:`.protocol` — :class:`Transport` (reads) and :class:`Writer` (publish, tags);
* :mod:`.embedded` — :class:`EmbeddedTransport`, over a local :class:`~headwater.catalog.Catalog`;
* :mod:`.http` — :class:`HttpTransport`, over a headwater (or datatap) server's HTTP API.

Both return the same dicts and the same blocks, so nothing above this seam changes between modes.

Two small extensions of the datatap dataset JSON, ignored by datatap itself:
``"splitCounts": {split: count}`` and ``"pools": {pool name: pool URL}`` (where ``pool://`` image
references of the dataset's droplets point).

Stream blocks are ``bytes`` holding whole NDJSON lines, each ending with ``\\n`` (see
:mod:`headwater.droplet.ndjson`) — big blocks, so a consumer pays per block (one write to the cache, one
batch decode), not per droplet.

Example:
    >>> t = HttpTransport("http://127.0.0.1:8000", api_key=None)
    >>> isinstance(t, Transport), isinstance(t, Writer)
    (True, True)
"""

from .embedded import EmbeddedTransport
from .http import HttpTransport
from .protocol import Transport, Writer

__all__ = ["Transport", "Writer", "EmbeddedTransport", "HttpTransport"]
