"""JSON bodies of the datatap wire format, built from catalog records.

Why one module: the embedded client and the HTTP server must produce byte-for-byte the same shapes
that the datatap 0.3.0 client parses (camelCase keys, ``updatedAt`` in ms, a dataset's ``splits`` as a
list of split names), so they share these builders instead of each writing its own. The shapes are also
written down as typed dicts with datatap's names (``JsonUser``, ``JsonDatabase``, ``JsonRepository``,
``JsonDataset`` …), which the endpoint layer (:class:`~headwater.client.ApiEndpoints`) returns.

Example:
    >>> from datetime import datetime, timezone
    >>> from headwater.catalog.records import DatasetRecord
    >>> ds = DatasetRecord("d1", "db1", "acme", "cats", {"kind": "ImageAnnotationTemplate", "classes": {}},
    ...                    {"train": 3, "validation": 1}, {}, datetime(2024, 1, 1, tzinfo=timezone.utc))
    >>> dataset_json(ds)["splits"]
    ['train', 'validation']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from .records import DatabaseRecord, DatasetRecord, RepositoryRecord, TagEvent, TagRecord

if TYPE_CHECKING:
    from .catalog import Catalog

__all__ = [
    "JsonUser", "JsonDatabaseOptions", "JsonDatabase", "JsonSplit", "JsonTag", "JsonTagMove", "JsonTagEvent",
    "JsonRepository", "JsonDatasetRepository", "JsonDataset",
    "database_json", "repository_json", "repositories_json", "tag_json", "tag_move_json", "tag_event_json",
    "dataset_json", "user_json",
]


class JsonUser(TypedDict):
    """``GET /user``: the caller (``defaultDatabase`` is a database uid or null)."""

    uid: str
    username: str
    email: str
    defaultDatabase: str | None


class JsonDatabaseOptions(TypedDict):
    """A database's ``connectionOptions``: never credentials (datatap's said how to reach Neo4j)."""

    kind: str
    public: NotRequired[bool]


class JsonDatabase(TypedDict):
    """One database."""

    uid: str
    name: str
    connectionOptions: JsonDatabaseOptions


class JsonSplit(TypedDict):
    """A split of a tagged dataset and its droplet count."""

    split: str
    annotationCount: int


class JsonTag(TypedDict):
    """A tag: the dataset uid it points at, when it moved there (ms since the epoch), the splits."""

    tag: str
    dataset: str
    updatedAt: int
    splits: list[JsonSplit]


class JsonTagMove(JsonTag):
    """What a tag move answers: the tag, and the dataset it pointed at before (null for a new tag)."""

    previous: str | None


class JsonTagEvent(TypedDict):
    """One move in a tag's history."""

    tag: str
    dataset: str
    previous: str | None
    movedAt: int


class JsonRepository(TypedDict):
    """A repository with its tags."""

    namespace: str
    name: str
    tags: list[JsonTag]


class JsonDatasetRepository(TypedDict):
    """The repository a dataset belongs to."""

    namespace: str
    name: str


class JsonDataset(TypedDict):
    """A dataset: uid, database uid, repository, template, split names — and headwater's ``splitCounts``
    (``{split: count}``) and ``pools`` (``{pool name: URL}``), which datatap ignores."""

    uid: str
    database: str
    repository: JsonDatasetRepository
    template: Mapping[str, Any]
    splits: list[str]
    splitCounts: NotRequired[dict[str, int]]
    pools: NotRequired[dict[str, str]]


def database_json(db: DatabaseRecord) -> dict[str, Any]:
    """``{uid, name, connectionOptions}``; connection options never carry credentials."""
    return {"uid": db.uid, "name": db.name, "connectionOptions": {"kind": "headwater", "public": db.public}}


def tag_json(tag: TagRecord) -> dict[str, Any]:
    """``{tag, dataset, updatedAt, splits: [{split, annotationCount}]}``."""
    return {
        "tag": tag.tag,
        "dataset": tag.dataset,
        "updatedAt": tag.updated_at_ms,
        "splits": [{"split": name, "annotationCount": count} for name, count in tag.splits.items()],
    }


def tag_move_json(tag: TagRecord) -> dict[str, Any]:
    """What a tag move answers: :func:`tag_json` plus ``previous`` (the uid it pointed at, or null)."""
    return {**tag_json(tag), "previous": tag.previous}


def repository_json(repo: RepositoryRecord, tags: Iterable[TagRecord]) -> dict[str, Any]:
    """``{namespace, name, tags: [...]}``."""
    return {"namespace": repo.namespace, "name": repo.name, "tags": [tag_json(t) for t in tags]}


def repositories_json(catalog: Catalog, database: str, namespace: str | None = None,
                      name: str | None = None) -> list[dict[str, Any]]:
    """Every repository of ``database`` (or the one ``namespace/name``) with its tags, as the wire lists them."""
    repos = [catalog.repository(database, namespace, name)] if namespace is not None and name is not None \
        else catalog.repositories(database)
    return [repository_json(r, catalog.tags(database, r.namespace, r.name)) for r in repos]


def tag_event_json(event: TagEvent) -> dict[str, Any]:
    """``{tag, dataset, previous, movedAt}`` (``previous`` None when the tag was created; ``movedAt`` in ms)."""
    return {"tag": event.tag, "dataset": event.dataset, "previous": event.previous, "movedAt": event.moved_at_ms}


def dataset_json(ds: DatasetRecord) -> dict[str, Any]:
    """``{uid, database, repository: {namespace, name}, template, splits: [names], splitCounts, pools}``.

    ``splits`` is a list of names because that is what datatap's client reads; ``splitCounts``
    (``{split: count}``) and ``pools`` (``{pool name: pool URL}``, where ``pool://`` image refs point)
    are headwater additions that datatap ignores.
    """
    return {
        "uid": ds.uid,
        "database": ds.database,
        "repository": {"namespace": ds.namespace, "name": ds.name},
        "template": ds.template,
        "splits": list(ds.splits),
        "splitCounts": dict(ds.splits),
        "pools": dict(ds.pools),
    }


def user_json(uid: str, username: str, email: str, default_database: str | None) -> dict[str, Any]:
    """``{uid, username, email, defaultDatabase}`` (``defaultDatabase`` is a database uid or null)."""
    return {"uid": uid, "username": username, "email": email, "defaultDatabase": default_database}
