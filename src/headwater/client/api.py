"""The client API, with datatap's names: ``Api → Database → Repository → Dataset → stream_split``.

Code written against ``datatap.Api`` keeps its shape: ``Api.get_current_user``,
``get_database_list``, ``get_default_database``, ``get_database_by_uid``,
``get_database_by_name(name, allow_multiple=False)``; ``Database.get_repository_list``,
``get_repository("ns/name")``, ``get_dataset("ns/name:tag")``; ``Repository.tags``,
``Repository.get_dataset(tag)``; ``Dataset.uid / database / repository / splits / template`` and
``Dataset.stream_split(split, chunk, nchunks)``. What is new:

* **Embedded mode.** ``Api(catalog="path/or/url")`` reads a local catalog directly (no server);
  ``Api(url=..., api_key=...)`` (remote mode) reads the same through a headwater server — the objects
  below only talk to a :class:`~headwater.client.transports.Transport`, so both modes give the same
  droplets in the same order.
* **Writes.** :meth:`Database.publish` and :meth:`Repository.move_tag` work in both modes (remote:
  over the server's authenticated write routes).
* **Streaming** is sharded by the rules of :mod:`headwater.catalog.sharding` (optional seeded
  shuffle, resume at ``offset``) and cached by :mod:`headwater.client.stream_cache` (complete passes
  only, shared between processes, size-bounded). ``raw=True`` yields each droplet's JSON bytes instead.
* :meth:`Dataset.query` filters a split by class names and/or a predicate.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> path = os.path.join(tempfile.mkdtemp(), "catalog.sqlite")
    >>> with Catalog(path) as cat:
    ...     _ = cat.create_database("main")
    ...     lines = [b'{"image":{"paths":["%d.jpg"]},"classes":{"cat":{"instances":[{}]}}}' % i for i in range(5)]
    ...     _ = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate", "classes": {}},
    ...                     splits={"train": lines})
    >>> api = Api(catalog=path)
    >>> dataset = api.get_default_database().get_dataset("acme/cats:latest")
    >>> [d.image.paths[0] for d in dataset.stream_split("train", chunk=1, nchunks=2)]
    ['2.jpg', '3.jpg', '4.jpg']
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, overload

import msgspec

from ..catalog import NotFoundError, chunk_bounds
from ..droplet import (
    ImageAnnotation,
    ImageAnnotationTemplate,
    ImageFetcher,
    decode_droplet_blocks,
    decode_droplet_lines,
    decode_template,
)
from ..droplet.ndjson import iter_lines, join_lines, split_lines
from ..storage import RetryPolicy
from .endpoints import ApiEndpoints
from .errors import ClientError
from .passes import stream_pass
from .session import CacheSpec, Context, open_cache, open_transport
from .stream_cache import StreamCache
from .transports import Transport, Writer

if TYPE_CHECKING:
    from ..catalog import Catalog

__all__ = ["Api", "User", "Database", "Repository", "Tag", "Split", "Dataset", "DatasetRepository",
           "REMOTE_IMAGE_SCHEMES"]

REMOTE_IMAGE_SCHEMES = ("https", "s3", "hf")
"""The URL schemes a remote dataset's images and pools may use by default (besides the server's own URL)."""

class Api:
    """Entry point: a catalog (embedded) or a server URL and an API key (remote).

    ``Api(api_key, uri)`` is datatap's call, and works as it did there (``uri`` is datatap's name for
    ``url``); headwater's own arguments are keywords.

    ``catalog`` is a file path, a ``sqlite:///`` / ``postgresql://`` URL or an open
    :class:`~headwater.catalog.Catalog`. With neither ``catalog`` nor ``url``, the server named by
    ``$HEADWATER_SERVER`` is used when it is set, else :func:`~headwater.catalog.default_catalog_location`.
    ``cache`` is ``True`` (the default stream cache), ``False``/``None`` (no cache), a directory or a
    :class:`~headwater.client.stream_cache.StreamCache`. ``default_database`` (name or uid) decides what
    :meth:`get_default_database` returns in embedded mode. ``url``/``api_key``: a headwater server
    (remote mode, :class:`~headwater.client.transports.HttpTransport`: one pooled HTTP session,
    time-outs, retries, streams that resume; the key defaults to ``$HEADWATER_API_KEY``); ``retry_for``
    (seconds, default ``$HEADWATER_RETRY_FOR``, else 60) is how long an unanswered server is retried before
    giving up, ``retry`` (a :class:`~headwater.storage.RetryPolicy` or a number of attempts) the rest of how
    patient it is. ``transport`` plugs in any
    :class:`~headwater.client.transports.Transport` directly.
    """

    def __init__(self, api_key: str | None = None, uri: str | None = None, *,
                 catalog: Catalog | str | os.PathLike[str] | None = None, url: str | None = None,
                 cache: CacheSpec = True, default_database: str | None = None, retry: RetryPolicy | int | None = None,
                 retry_for: float | None = None, transport: Transport | None = None) -> None:
        if uri is not None and url is not None and uri != url:
            raise ClientError(f"uri={uri!r} and url={url!r}: give the server once")
        if transport is None:
            transport = open_transport(catalog, url or uri, api_key, default_database=default_database, retry=retry,
                                       retry_for=retry_for)
        self.api_key = api_key
        self._ctx = Context(transport, open_cache(cache))

    @property
    def endpoints(self) -> ApiEndpoints:
        """datatap's endpoint layer over the same transport and stream cache (see :class:`ApiEndpoints`)."""
        return ApiEndpoints._of(self._ctx)

    @property
    def transport(self) -> Transport:
        return self._ctx.transport

    @property
    def cache(self) -> StreamCache | None:
        """The stream cache used by :meth:`Dataset.stream_split` (None: caching off)."""
        return self._ctx.cache

    def __repr__(self) -> str:
        return f"Api({self._ctx.transport!r})"

    def get_current_user(self) -> User:
        """The current user (in embedded mode: the local account)."""
        return User.from_json(self._ctx.transport.current_user())

    def get_database_list(self) -> list[Database]:
        """Every database visible to the current user."""
        return [Database.from_json(self._ctx, j) for j in self._ctx.transport.databases()]

    def get_default_database(self) -> Database:
        """The user's default database (ClientError when there is none)."""
        uid = self.get_current_user().default_database
        if uid is None:
            names = [d.name for d in self.get_database_list()]
            raise ClientError(f"no default database: the catalog holds {names or 'no databases'}; pick one "
                              "with get_database_by_name() or Api(default_database=...)")
        return self.get_database_by_uid(uid)

    def publish(self, database: str, repository: str, source: Any, **options: Any) -> Dataset:
        """Publish ``source`` (a JSONL path, a :class:`~headwater.publish.Source` or a list of them) as a new
        dataset of ``repository`` (``"namespace/name"``) in ``database`` (a name or uid) and return it.

        Embedded: :func:`headwater.publish.publish` (local images are packed into a pool;
        ``create_database=True`` creates the database in the same transaction, so a refused publish leaves
        none behind). Remote: validated here, then sent to the server, which validates again and commits
        all or nothing; the images must already be URLs or ``pool://`` references (``pools={name: URL}``).
        Options (``splits``, ``template``, ``tags``, ``pools``, ``silent`` …) are those of
        :func:`~headwater.publish.publish`; no progress bars unless ``silent=False`` or None. Raises
        :class:`~headwater.publish.PublishError` naming every problem by its place in the source; then
        nothing was published.
        """
        return _publish(self._ctx, database, repository, source, options)

    def get_database_by_uid(self, uid: str) -> Database:
        """The database with this uid."""
        return Database.from_json(self._ctx, self._ctx.transport.database(uid))

    @overload
    def get_database_by_name(self, name: str, allow_multiple: Literal[True]) -> list[Database]: ...
    @overload
    def get_database_by_name(self, name: str, allow_multiple: Literal[False] = False) -> Database: ...
    def get_database_by_name(self, name: str, allow_multiple: bool = False) -> Database | list[Database]:
        """The database called ``name`` (a list of all matches with ``allow_multiple=True``)."""
        found = [Database.from_json(self._ctx, j) for j in self._ctx.transport.query_databases(name)]
        if allow_multiple:
            return found
        if not found:
            raise NotFoundError(f"database {name!r} not found")
        if len(found) > 1:
            raise ClientError(f"{len(found)} databases are named {name!r}: pick one by uid")
        return found[0]


class User:
    """A user account (``default_database`` is a database uid or None)."""

    def __init__(self, uid: str, *, username: str, email: str, default_database: str | None) -> None:
        self.uid = uid
        self.username = username
        self.email = email
        self.default_database = default_database

    @staticmethod
    def from_json(json: dict[str, Any]) -> User:
        return User(json["uid"], username=json["username"], email=json["email"],
                    default_database=json.get("defaultDatabase"))

    def __repr__(self) -> str:
        return f"User({self.uid!r}, username={self.username!r})"


class Database:
    """A named container of repositories."""

    def __init__(self, ctx: Context, uid: str, *, name: str, connection_options: dict[str, Any]) -> None:
        self._ctx = ctx
        self.uid = uid
        self.name = name
        self.connection_options = connection_options

    @staticmethod
    def from_json(ctx: Context, json: dict[str, Any]) -> Database:
        return Database(ctx, json["uid"], name=json["name"], connection_options=json.get("connectionOptions", {}))

    def __repr__(self) -> str:
        return f"Database({self.uid!r}, name={self.name!r})"

    def get_repository_list(self) -> list[Repository]:
        """Every repository of this database."""
        return [Repository.from_json(self._ctx, self.uid, j) for j in self._ctx.transport.repositories(self.uid)]

    def get_repository(self, *args: str) -> Repository:
        """A repository by slug (``"namespace/name"``) or by ``(namespace, name)``."""
        if len(args) == 1:
            namespace, sep, name = args[0].partition("/")
            if not sep or not namespace or not name or "/" in name:
                raise ClientError(f"repository slug must be 'namespace/name', got {args[0]!r}")
        elif len(args) == 2:
            namespace, name = args
        else:
            raise ClientError("get_repository takes a slug 'namespace/name' or (namespace, name)")
        body = self._ctx.transport.repository(self.uid, namespace, name)
        return Repository.from_json(self._ctx, self.uid, body)

    def get_dataset(self, *args: str) -> Dataset:
        """A dataset by slug (``"namespace/name:tag"``) or by ``(namespace, name, tag)``; the tag may
        also be a dataset uid."""
        if len(args) == 1:
            slug, sep, tag = args[0].rpartition(":")
            if not sep or not slug or not tag:
                raise ClientError(f"dataset slug must be 'namespace/name:tag', got {args[0]!r}")
            repo = self.get_repository(slug)
        elif len(args) == 3:
            namespace, name, tag = args
            repo = self.get_repository(namespace, name)
        else:
            raise ClientError("get_dataset takes a slug 'namespace/name:tag' or (namespace, name, tag)")
        return repo.get_dataset(tag)

    def publish(self, repository: str, source: Any, **options: Any) -> Dataset:
        """Publish ``source`` (a JSONL path, a :class:`~headwater.publish.Source` or a list of them) as a new
        dataset of ``repository`` (``"namespace/name"``) and return it: :meth:`Api.publish` into this
        database."""
        return _publish(self._ctx, self.uid, repository, source, options)


class Split:
    """A split of a tagged dataset and its droplet count."""

    def __init__(self, split: str, annotation_count: int) -> None:
        self.split = split
        self.annotation_count = annotation_count

    def __repr__(self) -> str:
        return f"Split({self.split!r}, annotation_count={self.annotation_count})"


class Tag:
    """A movable name pointing at a dataset uid. ``previous`` is set on the tag :meth:`Repository.move_tag`
    returns: the dataset it pointed at before (None for a new tag)."""

    def __init__(self, tag: str, dataset: str, updated_at: datetime, splits: list[Split],
                 previous: str | None = None) -> None:
        self.tag = tag
        self.dataset = dataset
        self.updated_at = updated_at
        self.splits = splits
        self.previous = previous

    @staticmethod
    def from_json(json: dict[str, Any]) -> Tag:
        return Tag(json["tag"], json["dataset"], datetime.fromtimestamp(json["updatedAt"] / 1000, tz=UTC),
                   [Split(s["split"], s["annotationCount"]) for s in json["splits"]], json.get("previous"))

    def __repr__(self) -> str:
        return f"Tag({self.tag!r}, dataset={self.dataset!r})"


class Repository:
    """``namespace/name`` in a database, with its tags."""

    def __init__(self, ctx: Context, database: str, *, namespace: str, name: str, tags: list[Tag]) -> None:
        self._ctx = ctx
        self.database = database
        self.namespace = namespace
        self.name = name
        self.tags = tags

    @staticmethod
    def from_json(ctx: Context, database: str, json: dict[str, Any]) -> Repository:
        return Repository(ctx, database, namespace=json["namespace"], name=json["name"],
                          tags=[Tag.from_json(t) for t in json.get("tags", [])])

    def __repr__(self) -> str:
        return f"Repository('{self.namespace}/{self.name}', tags={[t.tag for t in self.tags]})"

    def get_dataset(self, tag: str) -> Dataset:
        """The dataset ``tag`` points to (or the dataset with that uid)."""
        body = self._ctx.transport.dataset(self.database, self.namespace, self.name, tag)
        return Dataset.from_json(self._ctx, body)

    def move_tag(self, tag: str, dataset: str) -> Tag:
        """Point ``tag`` at ``dataset`` (a uid, or another tag) and return the moved tag; the move is
        recorded in the tag's history (remote mode: needs a write key)."""
        moved = Tag.from_json(_writer(self._ctx.transport).move_tag(self.database, self.namespace, self.name, tag,
                                                                     dataset))
        self.tags = [t for t in self.tags if t.tag != tag] + [moved]
        self.tags.sort(key=lambda t: t.tag)
        return moved

    def tag_history(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Every move of this repository's tags (or of ``tag``), oldest first:
        ``[{tag, dataset, previous, movedAt}]`` (``previous`` None when the tag was created; ms times)."""
        return _writer(self._ctx.transport).tag_history(self.database, self.namespace, self.name, tag)


class DatasetRepository:
    """The repository a dataset belongs to."""

    def __init__(self, *, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name

    def __repr__(self) -> str:
        return f"DatasetRepository('{self.namespace}/{self.name}')"


class Dataset:
    """An immutable published dataset: a template, named splits, and the streams of their droplets.

    Picklable (it carries its transport and cache settings), so it can be handed to DataLoader
    workers as is.
    """

    def __init__(self, ctx: Context, uid: str, *, database: str, repository: DatasetRepository,
                 splits: list[str], template: dict[str, Any], split_counts: dict[str, int] | None = None,
                 pools: dict[str, str] | None = None) -> None:
        self._ctx = ctx
        self.uid = uid
        self.database = database
        self.repository = repository
        self.splits = splits
        self.template_json = template
        self._template: ImageAnnotationTemplate | None = None
        self._counts = dict(split_counts or {})
        self.pools: dict[str, str] = dict(pools or {})
        """Pool name → pool URL, for ``pool://`` image references (see :class:`~headwater.droplet.ImageFetcher`)."""

    @staticmethod
    def from_json(ctx: Context, json: dict[str, Any]) -> Dataset:
        return Dataset(ctx, json["uid"], database=json["database"],
                       repository=DatasetRepository(namespace=json["repository"]["namespace"],
                                                    name=json["repository"]["name"]),
                       splits=list(json["splits"]), template=json["template"],
                       split_counts=json.get("splitCounts"), pools=json.get("pools"))

    @property
    def template(self) -> ImageAnnotationTemplate:
        """The template every droplet of the dataset follows."""
        if self._template is None:
            self._template = decode_template(self.template_json)
        return self._template

    @property
    def cache(self) -> StreamCache | None:
        return self._ctx.cache

    def image_fetcher(self, pools: Mapping[str, Any] | None = None, *,
                      allowed_schemes: Iterable[str] | Literal["default"] | None = "default",
                      **options: Any) -> ImageFetcher:
        """An :class:`~headwater.droplet.ImageFetcher` for this dataset's images (``pools``: the dataset's
        own pool map unless given; ``options`` go to the fetcher).

        For a dataset read from a server, the pool map and the image URLs in its droplets were written by
        whoever published it, so by default the fetcher opens only the server's own URLs and
        :data:`REMOTE_IMAGE_SCHEMES` URLs, never a local file (``allowed_schemes=None`` opens any URL;
        pools given here are trusted). A local catalog's datasets are yours: nothing is refused.
        """
        server = self._ctx.transport.server_url
        given = pools is not None
        pool_map: dict[str, Any] = dict(pools) if pools is not None else dict(self.pools)
        if server is None:
            return ImageFetcher(pool_map, **options)
        schemes = REMOTE_IMAGE_SCHEMES if allowed_schemes == "default" else allowed_schemes
        trusted = [server + "/"] + ([v for v in pool_map.values() if isinstance(v, str)] if given else [])
        options.setdefault("allow_local", False)
        key = getattr(self._ctx.transport, "api_key", None)
        if key:  # the server's own pool URLs serve a private database's images to whoever may read it
            options.setdefault("url_headers", {server + "/": {"Authorization": f"Bearer {key}"}})
        return ImageFetcher(pool_map, allowed_schemes=schemes, trusted_urls=trusted, **options)

    def get_stable_identifier(self) -> str:
        """``namespace/name:uid`` — names this exact dataset forever (tags move, uids do not)."""
        return f"{self.repository.namespace}/{self.repository.name}:{self.uid}"

    def __repr__(self) -> str:
        return f"Dataset({self.get_stable_identifier()!r}, database={self.database!r}, splits={self.splits})"

    def split_count(self, split: str) -> int:
        """How many droplets ``split`` holds."""
        self._check_split(split)
        count = self._counts.get(split)
        if count is None:
            count = self._counts[split] = self._ctx.transport.split_count(
                self.database, self.repository.namespace, self.repository.name, self.uid, split)
        return count

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ClientError(f"dataset {self.get_stable_identifier()} has no split {split!r} "
                              f"(splits: {self.splits})")

    def stream_blocks(self, split: str, chunk: int = 0, nchunks: int = 1, *, shuffle_seed: int | None = None,
                      offset: int = 0, truncate: int | None = None, cache: bool = True) -> Iterator[bytes]:
        """The pass as blocks of whole NDJSON lines (the fastest form; see :meth:`stream_split`)."""
        self._check_split(split)
        total = self.split_count(split)
        if truncate is not None:
            if isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 0:
                raise ClientError(f"truncate must be an int >= 0, got {truncate!r}")
            if truncate >= total:
                truncate = None  # the same pass, so the same cache entry
        start, stop = chunk_bounds(total if truncate is None else truncate, chunk, nchunks)
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= stop - start:
            raise ClientError(f"offset must be in [0, {stop - start}] for chunk {chunk} of {nchunks} of split "
                              f"{split!r}, got {offset!r}")
        if shuffle_seed is not None and (isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int)):
            raise ClientError(f"shuffle_seed must be an int or None, got {shuffle_seed!r}")
        return stream_pass(self._ctx.transport, self._ctx.cache if cache else None, database=self.database,
                           namespace=self.repository.namespace, name=self.repository.name, uid=self.uid,
                           split=split, chunk=chunk, nchunks=nchunks, shuffle_seed=shuffle_seed, offset=offset,
                           truncate=truncate)

    @overload
    def stream_split(self, split: str, chunk: int = 0, nchunks: int = 1, *, shuffle_seed: int | None = None,
                     offset: int = 0, truncate: int | None = None, cache: bool = True,
                     raw: Literal[False] = False) -> Iterator[ImageAnnotation]: ...
    @overload
    def stream_split(self, split: str, chunk: int = 0, nchunks: int = 1, *, shuffle_seed: int | None = None,
                     offset: int = 0, truncate: int | None = None, cache: bool = True,
                     raw: Literal[True]) -> Iterator[bytes]: ...
    def stream_split(self, split: str, chunk: int = 0, nchunks: int = 1, *, shuffle_seed: int | None = None,
                     offset: int = 0, truncate: int | None = None, cache: bool = True,
                     raw: bool = False) -> Iterator[ImageAnnotation] | Iterator[bytes]:
        """Stream chunk ``chunk`` of ``nchunks`` of ``split`` (datatap's signature, plus options).

        Chunk ``k`` of ``n`` is the contiguous run ``[k*N//n, (k+1)*N//n)`` of the split's order —
        or of the seeded permutation of it when ``shuffle_seed`` is given — so the same arguments
        always give the same droplets in the same order, and the chunks of one ``n`` partition the
        split with sizes differing by at most one. ``truncate`` keeps only the first ``truncate``
        droplets of that order before chunking. ``offset`` resumes: the first ``offset`` droplets of
        the chunk are skipped without being read. ``cache=False`` bypasses the stream cache.
        ``raw=True`` yields each droplet's JSON bytes (no newline) instead of decoding it.

        Arguments are checked when called, not when iteration starts.
        """
        blocks = self.stream_blocks(split, chunk, nchunks, shuffle_seed=shuffle_seed, offset=offset,
                                    truncate=truncate, cache=cache)
        return iter_lines(blocks) if raw else decode_droplet_blocks(blocks)

    def query(self, split: str, where: Callable[[ImageAnnotation], bool] | None = None, *,
              classes: str | Iterable[str] | None = None, limit: int | None = None, chunk: int = 0,
              nchunks: int = 1, shuffle_seed: int | None = None, cache: bool = True) -> Iterator[ImageAnnotation]:
        """The droplets of a pass that match, in stream order.

        ``classes``: keep droplets with at least one instance or multi-instance of any of these
        classes (droplets that cannot match are skipped before decoding: the class name must appear
        in the raw JSON). ``where``: a predicate on the decoded droplet. Both: both must hold.
        ``limit``: stop after that many matches. The pass is chosen as in :meth:`stream_split`.

        For instance, the first 10 training droplets with a person or a dog and at least 3 boxes::

            dataset.query("train", lambda d: sum(len(c.instances) for c in d.classes.values()) >= 3,
                          classes=["person", "dog"], limit=10)
        """
        wanted: list[str] | None = None
        if classes is not None:
            wanted = [classes] if isinstance(classes, str) else list(classes)
            if not all(isinstance(c, str) for c in wanted):
                raise ClientError(f"classes must be class names, got {classes!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ClientError(f"limit must be an int >= 0, got {limit!r}")
        if where is not None and not callable(where):
            raise ClientError(f"where must be a callable taking a droplet, got {where!r}")
        blocks = self.stream_blocks(split, chunk, nchunks, shuffle_seed=shuffle_seed, cache=cache)
        found = _filter(blocks, wanted, where)
        return found if limit is None else itertools.islice(found, limit)


def _publish(ctx: Context, database: str, repository: str, source: Any, options: dict[str, Any]) -> Dataset:
    namespace, sep, name = repository.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ClientError(f"repository must be 'namespace/name', got {repository!r}")
    options.setdefault("silent", True)
    body = _writer(ctx.transport).publish_source(database, namespace, name, source, **options)
    return Dataset.from_json(ctx, body)


def _writer(transport: Transport) -> Writer:
    if not isinstance(transport, Writer):
        raise ClientError(f"{transport!r} cannot write: publishing and moving tags need an embedded catalog or a "
                          "headwater server")
    return transport


def _filter(blocks: Iterator[bytes], classes: list[str] | None,
            where: Callable[[ImageAnnotation], bool] | None) -> Iterator[ImageAnnotation]:
    tokens = [msgspec.json.encode(c) for c in classes] if classes is not None else None
    wanted = set(classes) if classes is not None else None
    for block in blocks:
        if tokens is not None:
            block = join_lines(line for line in split_lines(block) if any(t in line for t in tokens))
            if not block:
                continue
        for droplet in decode_droplet_lines(block):
            if wanted is not None and not any(
                name in wanted and (annotation.instances or annotation.multi_instances)
                for name, annotation in droplet.classes.items()
            ):
                continue
            if where is not None and not where(droplet):
                continue
            yield droplet
