"""datatap's endpoint layer, exactly: ``ApiEndpoints`` with its namespaces, signatures and JSON shapes.

Code written against ``datatap.api.endpoints.ApiEndpoints`` (or ``datatap.Api().endpoints``) runs against
headwater by changing its import line — embedded (a catalog, no server) or remote (a headwater server):

====================================================  =========================================================
``user.current()``                                    :class:`~headwater.catalog.wire.JsonUser`
``database.list()``                                   ``list[JsonDatabase]``
``database.query_by_uid(database)``                   ``JsonDatabase``
``database.query_by_name(database_name)``             ``list[JsonDatabase]`` (zero or one)
``repository.list(database_uid)``                     ``list[JsonRepository]``
``repository.query(database_uid, namespace, name)``   ``JsonRepository``
``dataset.query(database_uid, namespace, name, tag)``  ``JsonDataset`` (``tag`` may be a dataset uid)
``dataset.stream_split(*, database_uid, namespace,    the droplets of chunk ``chunk`` of ``nchunks``, as
name, uid, split, chunk, nchunks)``                   :class:`~headwater.droplet.json_types.ImageAnnotationJson`
====================================================  =========================================================

What behaves better than datatap's: ``stream_split`` goes through the same transport (retries, a stream
that resumes exactly after a cut connection) and the same stream cache as the entity layer, whose entry is
promoted only when a pass completes and is then replayed by the next pass (datatap's cache is never
promoted, so every pass goes to the network again); nothing global happens at import (datatap forces the
``spawn`` start method and makes a temp dir). A chunk outside ``[0, nchunks)`` is refused when the call is
made, with datatap's message, as a :class:`~headwater.catalog.ChunkError` (a ``ValueError``).

The key and the server default to ``$HEADWATER_API_KEY`` / ``$HEADWATER_SERVER``, and — so that datatap code
configured through its environment keeps working — to ``$DATATAP_API_KEY`` / ``$DATATAP_BASE_URI`` when
those are not set (:func:`~headwater.client.session.open_transport`). With no server at all, the default
catalog is read (embedded mode).

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> path = os.path.join(tempfile.mkdtemp(), "catalog.sqlite")
    >>> with Catalog(path) as cat:
    ...     db = cat.create_database("main")
    ...     ds = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate", "classes": {}},
    ...                      splits={"train": [b'{"kind":"ImageAnnotation","image":{"paths":["a.jpg"]},"classes":{}}']})
    >>> endpoints = ApiEndpoints(catalog=path, cache=False)
    >>> dataset = endpoints.dataset.query(db.uid, "acme", "cats", "latest")
    >>> [d["image"]["paths"] for d in endpoints.dataset.stream_split(database_uid=db.uid, namespace="acme",
    ...     name="cats", uid=dataset["uid"], split="train", chunk=0, nchunks=1)]
    [['a.jpg']]
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, cast

import msgspec

from ..catalog import check_chunk
from ..catalog.wire import JsonDatabase, JsonDataset, JsonRepository, JsonUser
from ..droplet.json_types import ImageAnnotationJson
from ..droplet.ndjson import iter_lines
from ..storage import RetryPolicy
from .passes import stream_pass
from .session import CacheSpec, Context, open_cache, open_transport

if TYPE_CHECKING:
    from ..catalog import Catalog

__all__ = ["ApiEndpoints", "UserEndpoints", "DatabaseEndpoints", "RepositoryEndpoints", "DatasetEndpoints"]

_DECODER = msgspec.json.Decoder()


class _Namespace:
    """A group of endpoints over the shared transport and cache."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx


class UserEndpoints(_Namespace):
    """``api.endpoints.user``."""

    def current(self) -> JsonUser:
        """The caller (embedded: the local account)."""
        return cast(JsonUser, self._ctx.transport.current_user())


class DatabaseEndpoints(_Namespace):
    """``api.endpoints.database``."""

    def list(self) -> list[JsonDatabase]:
        """Every database the caller can read."""
        return cast("list[JsonDatabase]", self._ctx.transport.databases())

    def query_by_uid(self, database: str) -> JsonDatabase:
        """One database, by uid."""
        return cast(JsonDatabase, self._ctx.transport.database(database))

    def query_by_name(self, database_name: str) -> builtins.list[JsonDatabase]:  # `list` is the method above
        """The databases named ``database_name`` (zero or one)."""
        return cast("builtins.list[JsonDatabase]", self._ctx.transport.query_databases(database_name))


class RepositoryEndpoints(_Namespace):
    """``api.endpoints.repository``."""

    def list(self, database_uid: str) -> list[JsonRepository]:
        """Every repository of a database, with its tags."""
        return cast("list[JsonRepository]", self._ctx.transport.repositories(database_uid))

    def query(self, database_uid: str, namespace: str, name: str) -> JsonRepository:
        """One repository, with its tags."""
        return cast(JsonRepository, self._ctx.transport.repository(database_uid, namespace, name))


class DatasetEndpoints(_Namespace):
    """``api.endpoints.dataset``."""

    def query(self, database_uid: str, namespace: str, name: str, tag: str) -> JsonDataset:
        """The dataset ``tag`` points to (or the dataset with that uid) in ``namespace/name``."""
        return cast(JsonDataset, self._ctx.transport.dataset(database_uid, namespace, name, tag))

    def stream_split(self, *, database_uid: str, namespace: str, name: str, uid: str, split: str, chunk: int,
                     nchunks: int) -> Generator[ImageAnnotationJson, None, None]:
        """The droplets of chunk ``chunk`` of ``nchunks`` of ``split`` of dataset ``uid``, as dicts.

        The chunk is checked now (``ChunkError``, datatap's message); the pass is cached (see the module
        docstring), so a second pass over the same chunk replays it instead of reading it again.
        """
        check_chunk(chunk, nchunks)
        blocks = stream_pass(self._ctx.transport, self._ctx.cache, database=database_uid, namespace=namespace,
                             name=name, uid=uid, split=split, chunk=chunk, nchunks=nchunks)
        return _decoded(blocks)


def _decoded(blocks: Iterator[bytes]) -> Generator[ImageAnnotationJson, None, None]:
    decode = _DECODER.decode
    for line in iter_lines(blocks):
        yield cast(ImageAnnotationJson, decode(line))


class ApiEndpoints:
    """datatap's endpoint layer (see the module docstring): ``user``, ``database``, ``repository``,
    ``dataset``.

    ``ApiEndpoints(api_key=None, uri=None)`` as datatap's; ``catalog=`` (a path, URL or
    :class:`~headwater.catalog.Catalog`) reads a local catalog instead of a server. ``cache`` is the
    stream cache (``True``: the default one; ``False``: none; a folder), ``retry_for`` (seconds) and
    ``retry`` how patient a remote transport is (as for :class:`~headwater.client.Api`).
    """

    user: UserEndpoints
    database: DatabaseEndpoints
    repository: RepositoryEndpoints
    dataset: DatasetEndpoints

    def __init__(self, api_key: str | None = None, uri: str | None = None, *,
                 catalog: Catalog | str | os.PathLike[str] | None = None, cache: CacheSpec = True,
                 retry: RetryPolicy | int | None = None, retry_for: float | None = None) -> None:
        self._bind(Context(open_transport(catalog, uri, api_key, retry=retry, retry_for=retry_for),
                           open_cache(cache)))

    @classmethod
    def _of(cls, ctx: Context) -> ApiEndpoints:
        """The endpoints over an existing context (``Api(...).endpoints``)."""
        endpoints = cls.__new__(cls)
        endpoints._bind(ctx)
        return endpoints

    def _bind(self, ctx: Context) -> None:
        self._ctx = ctx
        self.user = UserEndpoints(ctx)
        self.database = DatabaseEndpoints(ctx)
        self.repository = RepositoryEndpoints(ctx)
        self.dataset = DatasetEndpoints(ctx)

    def __repr__(self) -> str:
        return f"ApiEndpoints({self._ctx.transport!r})"

    def __getstate__(self) -> Context:
        return self._ctx

    def __setstate__(self, ctx: Any) -> None:
        self._bind(ctx)
