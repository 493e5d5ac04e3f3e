"""Writes through a transport: publish a dataset, move a tag, read tag history — embedded or remote.

Why a module of its own: the read :class:`~headwater.client.transport.Transport` protocol stays
read-only (any datatap-compatible server can back it), and writes go where they can: straight into
the catalog for an :class:`~headwater.client.transport.EmbeddedTransport`, or to the server's write
routes for an :class:`~headwater.client.http_transport.HttpTransport`. Both return the same wire JSON,
so :class:`~headwater.client.api.Database` and :class:`~headwater.client.api.Repository` do not care.

Remote publishing validates the source **locally first**, with exactly the rules (and messages) of
:func:`headwater.client.publish.publish`, so a bad file is refused before a byte is uploaded; then it
streams the droplets (canonical JSON, split decided here, each tagged with its place in the source) to
the server, which validates them again and commits all or nothing. Images must already live in a pool
the readers can reach (``pool://NAME/KEY`` with ``pools={NAME: URL}``) or be URLs: packing local image
files into a pool on the server is a pool upload (see :mod:`headwater.server.pool_writes`), not part
of the dataset write.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> from headwater.client.transport import EmbeddedTransport
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_database("main")
    >>> a = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate"}, splits={"train": [b'{}']})
    >>> b = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate"}, splits={"train": [b'{}']})
    >>> moved = move_tag(EmbeddedTransport(cat), "main", "acme", "cats", "latest", a.uid)
    >>> moved["dataset"] == a.uid, moved["previous"] == b.uid
    (True, True)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..catalog import check_name, dataset_json, tag_json
from ..droplet import droplet_from_builtins, encode_droplet
from .errors import ClientError, RemoteRequestError
from .http_transport import HttpTransport
from .publish import (
    Problem,
    PublishError,
    Source,
    SplitRule,
    _as_sources,
    _split_chooser,
    _split_key,
    _template_dict,
    _validate,
    _where,
    publish,
)
from .transport import EmbeddedTransport

__all__ = ["move_tag", "publish_dataset", "publish_remote", "tag_history"]


def _writer(transport: Any) -> str:
    if isinstance(transport, EmbeddedTransport):
        return "embedded"
    if isinstance(transport, HttpTransport):
        return "remote"
    raise ClientError(f"{transport!r} cannot write: publishing and moving tags need an embedded catalog or a "
                      "headwater server")


def move_tag(transport: Any, database: str, namespace: str, name: str, tag: str, dataset: str) -> dict[str, Any]:
    """Point ``tag`` at ``dataset`` (a uid, or another tag); returns the tag JSON plus ``previous``."""
    if _writer(transport) == "remote":
        return transport.move_tag(database, namespace, name, tag, dataset)  # type: ignore[no-any-return]
    catalog = transport.catalog
    target = catalog.dataset(database, namespace, name, dataset).uid
    previous = next((t.dataset for t in catalog.tags(database, namespace, name) if t.tag == tag), None)
    return {**tag_json(catalog.move_tag(database, namespace, name, tag, target)), "previous": previous}


def tag_history(transport: Any, database: str, namespace: str, name: str,
                tag: str | None = None) -> list[dict[str, Any]]:
    """Every move of the repository's tags (or of ``tag``), oldest first: ``[{tag, dataset, previous, movedAt}]``."""
    if _writer(transport) == "remote":
        return transport.tag_history(database, namespace, name, tag)  # type: ignore[no-any-return]
    events = transport.catalog.tag_history(database, namespace, name, tag)
    return [{"tag": e.tag, "dataset": e.dataset, "previous": e.previous, "movedAt": e.moved_at_ms} for e in events]


def publish_dataset(transport: Any, database: str, namespace: str, name: str,
                    source: str | os.PathLike[str] | Source | Sequence[Source], **options: Any) -> dict[str, Any]:
    """Publish ``source`` as a new dataset through ``transport``; returns the dataset JSON.

    Options are those of :func:`headwater.client.publish.publish` (embedded) or :func:`publish_remote`.
    """
    if _writer(transport) == "remote":
        return publish_remote(transport, database, namespace, name, source, **options)
    options.setdefault("progress", False)
    return dataset_json(publish(transport.catalog, database, namespace, name, source, **options))


def publish_remote(
    transport: HttpTransport,
    database: str,
    namespace: str,
    name: str,
    source: str | os.PathLike[str] | Source | Sequence[Source],
    *,
    images: str | os.PathLike[str] | None = None,
    pools: Mapping[str, str] | None = None,
    splits: str | Mapping[str, float] | SplitRule | None = None,
    split_seed: int = 0,
    default_split: str = "train",
    template: Any = None,
    strict: bool | None = None,
    tags: Iterable[str] = ("latest",),
    max_problems: int = 100,
    progress: bool = False,
) -> dict[str, Any]:
    """Validate ``source`` here, then publish it on the server as ONE new dataset; returns its JSON.

    The arguments mean what they mean for :func:`headwater.client.publish.publish`. Raises
    :class:`~headwater.client.publish.PublishError` (problems named by their place in *your* source)
    whether the local check or the server refused; then nothing was published.
    """
    tags = list(tags)
    pools = dict(pools or {})
    try:
        for kind, value in (("namespace", namespace), ("repository name", name), ("split name", default_split),
                            *(("tag", t) for t in tags), *(("pool name", p) for p in pools)):
            check_name(kind, value)
    except ValueError as err:
        raise PublishError(str(err)) from None
    sources = _as_sources(source, images)
    rule, fallback = _split_chooser(splits, split_seed, default_split)
    given = _template_dict(template) if template is not None else None
    if strict is None:
        strict = given is not None
    pool_name = next(iter(pools), "images")
    plan = _validate(sources, rule, fallback, given, strict, pools, pool_name, max_problems, progress)
    if plan.total_problems:
        raise PublishError(f"{plan.total_problems} problem(s) in the source; nothing was published:",
                           plan.problems, plan.total_problems)
    if plan.droplets == 0:
        raise PublishError("the source holds no droplets; nothing was published")
    if plan.images:
        example = next(iter(plan.images))
        raise PublishError(f"the droplets name {len(plan.images)} local image file(s) (e.g. {example}); a server "
                           "publish sends annotations only: pack the images into a pool the readers can reach "
                           "(headwater pack, then upload it to a pool the server serves), reference them as "
                           "pool://NAME/KEY and pass pools={NAME: URL}; nothing was published")
    several = len(sources) > 1

    def items() -> Iterator[tuple[str, bytes, str]]:
        for src in sources:
            for item in src.items():
                where = _where(src, item, several)
                if item.droplet is None or item.problems:
                    raise PublishError(f"the source changed while publishing ({where}); nothing was published")
                split = item.split or (rule(_split_key(item.droplet, where)) if rule else fallback)
                yield split, encode_droplet(droplet_from_builtins(item.droplet)), where

    try:
        return transport.publish(database, namespace, name, items, template=plan.template, tags=tags, pools=pools,
                                 strict=strict, max_problems=max_problems)
    except RemoteRequestError as err:
        problems = [Problem(w, m) for w, m in getattr(err, "problems", [])]
        if not problems:
            raise
        summary = err.body.get("error", str(err)) if isinstance(err.body, dict) else str(err)
        raise PublishError(f"the server refused the dataset: {summary}", problems,
                           getattr(err, "total", len(problems))) from None
