"""What every API object shares — a transport and a stream cache — and how they are chosen.

One rule for the entity layer (:class:`~headwater.client.Api`) and the endpoint layer
(:class:`~headwater.client.ApiEndpoints`): an explicit catalog means embedded mode, an explicit server URL
remote mode; with neither, ``$HEADWATER_SERVER`` when it is set (or datatap's ``$DATATAP_BASE_URI``, so
code configured for datatap keeps working), else the default catalog. A remote key is the argument, else
``$HEADWATER_API_KEY``, else ``$DATATAP_API_KEY``.

Example:
    >>> import os, tempfile
    >>> type(open_transport(None, "http://127.0.0.1:8000", "hw_0123456789ab_x")).__name__
    'HttpTransport'
    >>> open_cache(False) is None, type(open_cache(tempfile.mkdtemp())).__name__
    (True, 'StreamCache')
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..catalog import default_catalog_location
from ..storage import RetryPolicy
from .errors import ClientError
from .stream_cache import StreamCache
from .transports import EmbeddedTransport, HttpTransport, Transport

if TYPE_CHECKING:
    from ..catalog import Catalog

__all__ = ["CacheSpec", "Context", "open_cache", "open_transport"]

CacheSpec = StreamCache | str | os.PathLike[str] | bool | None
"""``True`` (the default stream cache), ``False``/``None`` (none), a folder, or a :class:`StreamCache`."""


def open_cache(spec: CacheSpec) -> StreamCache | None:
    """The stream cache a :data:`CacheSpec` names."""
    if spec is None or spec is False:
        return None
    if spec is True:
        return StreamCache()
    if isinstance(spec, StreamCache):
        return spec
    return StreamCache(spec)


def open_transport(catalog: Catalog | str | os.PathLike[str] | None, url: str | None, api_key: str | None, *,
                   default_database: str | None = None, retry: RetryPolicy | int | None = None,
                   retry_for: float | str | None = None) -> Transport:
    """The transport for these arguments (see the module docstring for the rule); ``retry``/``retry_for``
    apply to a server only (:func:`~headwater.client.transports.http.retry_policy`)."""
    if catalog is not None and url is not None:
        raise ClientError("give either a catalog (embedded mode) or a server url (remote mode), not both")
    if catalog is None and url is None:
        url = os.environ.get("HEADWATER_SERVER") or os.environ.get("DATATAP_BASE_URI") or None
    if url is not None:
        key = api_key if api_key is not None else (
            os.environ.get("HEADWATER_API_KEY") or os.environ.get("DATATAP_API_KEY") or None)
        return HttpTransport(url, key, retry=retry, retry_for=retry_for)
    if catalog is None:
        catalog = default_catalog_location()
        if "://" not in catalog and not os.path.exists(catalog):
            raise ClientError(f"no catalog at {catalog}: pass a catalog path or URL, or a server URL, set "
                              "HEADWATER_CATALOG or HEADWATER_SERVER, or publish a dataset there first")
    return EmbeddedTransport(catalog, default_database=default_database)


class Context:
    """What every API object shares: the transport and the stream cache (picklable)."""

    __slots__ = ("transport", "cache")

    def __init__(self, transport: Transport, cache: StreamCache | None) -> None:
        self.transport = transport
        self.cache = cache

    def __getstate__(self) -> tuple[Transport, StreamCache | None]:
        return (self.transport, self.cache)

    def __setstate__(self, state: tuple[Transport, StreamCache | None]) -> None:
        self.transport, self.cache = state
