"""Publish droplets as one immutable dataset of a catalog: validate everything, pack the images, commit once.

Why it is built this way:

* **All or nothing.** Every droplet is read and validated first (:func:`~.validation.prepare_publish`);
  only a clean source reaches the catalog, and then through ONE :meth:`Catalog.publisher
  <headwater.catalog.Catalog.publisher>` transaction — which also creates the database when asked, so a
  refused publish leaves no database behind either. No reader ever sees half a dataset.
* **Images go into a pool.** Droplet image paths that are local files (no ``scheme://``) are packed
  once each into tar shards with hfutils indexes and a pool manifest, as members ``0.jpg``, ``1.png``, …
  in order of first use, and the paths are rewritten to ``pool://{pool_name}/{member}``; URLs and
  existing ``pool://`` refs are kept as they are.
* **No pool left behind, no dataset without its pool.** The shards are staged beside the target
  (:mod:`headwater.archive.staging`). Order of the last steps: droplets inserted (uncommitted) → staging
  renamed onto the target → commit. If the commit fails the renamed pool is removed again. Crash windows:
  a crash before the rename leaves only a ``.{target}.staging-*`` folder (no catalog rows; delete it); a
  crash between rename and commit leaves an orphan pool folder no dataset points at (its
  :data:`POOL_MARKER` names the dataset it was meant for; delete it). The opposite order (commit first)
  could leave a committed dataset whose images do not exist, which readers would hit; an orphan folder
  only costs disk space. For the same reason the staged files and the rename are fsynced before the commit.
* **Two passes, bounded memory**: see :mod:`.validation`.

Example:
    >>> import tempfile, os
    >>> from headwater.catalog import Catalog
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "a.jsonl"), "w") as f:
    ...     _ = f.write('{"kind":"ImageAnnotation","image":{"paths":["https://x/1.jpg"]},"classes":{}}\\n')
    >>> cat = Catalog(os.path.join(d, "catalog.sqlite"))
    >>> record = publish(cat, "demo", "me", "tiny", os.path.join(d, "a.jsonl"), create_database=True, silent=True)
    >>> record.splits, cat.dataset("demo", "me", "tiny", "latest").uid == record.uid
    ({'train': 1}, True)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from ..archive import check_new_pool_dir, move_into_place, stage_pool
from ..catalog import DatasetRecord
from ..droplet import DropletError, droplet_from_builtins, encode_droplet, format_image_ref
from ..errors import HeadwaterError
from .errors import PublishError
from .pool_refs import on_this_machine
from .sources import Source
from .split_rule import SplitRule
from .validation import PublishPlan, check_names, image_paths, is_local_path, prepare_publish

if TYPE_CHECKING:  # imported where used: a remote client imports this layer without loading SQLAlchemy
    from ..catalog import Catalog, Publisher, PublishKey

__all__ = ["POOL_MARKER", "publish"]

POOL_MARKER = "headwater-publish.json"
"""File written into every pool :func:`publish` creates: which dataset it was packed for."""


def publish(
    catalog: Catalog | str | os.PathLike[str],
    database: str,
    namespace: str,
    name: str,
    source: str | os.PathLike[str] | Source | Sequence[Source],
    *,
    images: str | os.PathLike[str] | None = None,
    pool_dir: str | os.PathLike[str] | None = None,
    pool_name: str = "images",
    pools: Mapping[str, str] | None = None,
    splits: str | Mapping[str, float] | SplitRule | None = None,
    split_seed: int = 0,
    default_split: str = "train",
    template: Any = None,
    strict: bool | None = None,
    tags: Iterable[str] = ("latest",),
    max_shard_size: int = 1 << 30,
    max_problems: int = 100,
    create_database: bool = False,
    check_members: Callable[[str], bool] = on_this_machine,
    silent: bool | None = False,
    key: PublishKey | None = None,
) -> DatasetRecord:
    """Validate ``source`` completely, pack its local images into a new pool and publish it as ONE new
    dataset of ``database``/``namespace``/``name``; returns its :class:`~headwater.catalog.DatasetRecord`.

    * ``catalog``: a :class:`~headwater.catalog.Catalog` or its path/URL; ``database`` must exist, unless
      ``create_database`` (then it is created by the same transaction, so a refused publish leaves none).
    * ``source``: a JSONL path (local images relative to ``images``, default the file's folder), a
      :class:`~headwater.publish.Source` (``CocoSource``/``YoloSource``/``open_source``) or a list.
    * ``splits``: None (items without an explicit split go to ``default_split``), one split name, a
      ``{"validation": 0.05}`` mapping (a :class:`~headwater.publish.SplitRule` seeded with ``split_seed``,
      the rest to ``default_split``) or a ``SplitRule``. Explicit per-item splits always win.
    * ``template``: None → the union of the readers' templates (COCO/YOLO list every class) and of what
      the droplets use; else a wire dict / JSON / path / struct that every droplet must satisfy.
      ``strict`` (default: True for a given template, False for an inferred one) also requires every
      field the template promises (datatap's meaning); an inferred template is a union, so only what
      the droplets use is checked against it.
    * ``pool_dir``: the new pool's folder (must not exist, or be empty); default
      ``<catalog folder>/pools/<db>/<ns>/<name>/<UTC time>-<random>`` for a SQLite catalog. Its images
      are referenced as ``pool://{pool_name}/{member}``; ``pools`` adds more name → URL entries for
      ``pool://`` refs already in the droplets. Every ref must name a pool of the dataset and a member it
      holds (:class:`~headwater.publish.pool_refs.PoolRefCheck`); ``check_members(location)`` says which
      of ``pools`` are opened to look (default: those on this machine; a server opens the pools it serves).
    * Each droplet ``uid`` may occur once; a repeat is a problem naming both places.
    * ``silent``: no progress bars (None: bars only when stderr is a terminal).
    * ``key``: an idempotency key (:class:`~headwater.catalog.PublishKey`), recorded in the same transaction;
      if a publish with it committed before, :class:`~headwater.catalog.AlreadyPublishedError` names that
      dataset and nothing is written (the server's ``Idempotency-Key``).

    Raises :class:`~headwater.publish.PublishError` listing up to ``max_problems`` problems with their
    place, and then nothing was written (no catalog rows, no pool folder, no database).
    """
    from ..catalog import Catalog

    if not isinstance(catalog, Catalog):
        with Catalog(os.fspath(catalog)) as opened:
            return publish(opened, database, namespace, name, source, images=images, pool_dir=pool_dir,
                           pool_name=pool_name, pools=pools, splits=splits, split_seed=split_seed,
                           default_split=default_split, template=template, strict=strict, tags=tags,
                           max_shard_size=max_shard_size, max_problems=max_problems,
                           create_database=create_database, check_members=check_members, silent=silent,
                           key=key)
    tags = list(tags)
    check_names(namespace=namespace, repository_name=name, pool_name=[pool_name, *(pools or {})],
                split_name=default_split, tag=tags)
    if create_database:
        check_names(database_name=database)
    else:
        catalog.database(database)  # NotFoundError now, not after an hour of validating and packing
    target = os.path.abspath(os.fspath(pool_dir)) if pool_dir is not None else None
    if target is not None:
        _check_target(target)
    plan = prepare_publish(source, images=images, pools=pools, pool_name=pool_name, splits=splits,
                           split_seed=split_seed, default_split=default_split, template=template, strict=strict,
                           max_problems=max_problems, check_members=check_members, silent=silent,
                           keep_encoded=True)
    try:
        return _publish_plan(catalog, database, namespace, name, plan, target=target, pool_name=pool_name,
                             pools=pools, tags=tags, max_shard_size=max_shard_size,
                             create_database=create_database, silent=silent, key=key)
    finally:
        plan.close()


def _publish_plan(catalog: Catalog, database: str, namespace: str, name: str, plan: PublishPlan, *,
                  target: str | None, pool_name: str, pools: Mapping[str, str] | None, tags: list[str],
                  max_shard_size: int, create_database: bool, silent: bool | None,
                  key: PublishKey | None) -> DatasetRecord:
    """Pack the plan's images and write its droplets in one transaction (see the module docstring)."""
    all_pools = dict(pools or {})
    staging: str | None = None
    if plan.images:
        if target is None:
            target = _default_pool_dir(catalog, database, namespace, name)
            _check_target(target)
        all_pools[pool_name] = target
        marker = {"database": database, "namespace": namespace, "name": name, "tags": tags,
                  "images": len(plan.images), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "note": "packed by headwater publish; if no dataset's pools point here, the publish did "
                          "not commit and this folder can be deleted"}
        files = [(member, path, size) for path, (member, size) in plan.images.items()]
        staging = stage_pool(files, target, max_shard_size=max_shard_size, silent=silent,
                             extra_files={POOL_MARKER: json.dumps(marker, indent=2, sort_keys=True).encode()})

    renamed = False
    try:
        with catalog.publisher(database, namespace, name, template=plan.template, pools=all_pools,
                               create_database=create_database, key=key) as pub:
            written = _write(pub, plan, pool_name, silent)
            if written != plan.counts:
                raise PublishError(f"the source changed while publishing (read {plan.counts}, then {written}); "
                                   "nothing was published")
            for tag in tags:
                pub.tag(tag)
            if staging is not None and target is not None:
                _check_target(target)  # filled while we were packing? then refuse by name, as up front
                move_into_place(staging, target)  # last step before the commit (see the module docstring)
                renamed = True
        record = pub.record
    except BaseException as err:
        if renamed and target is not None:
            shutil.rmtree(target, ignore_errors=True)
        elif staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, DropletError):
            raise PublishError(f"the source changed while publishing: {err}; nothing was published") from err
        raise
    return record


def _check_target(pool_dir: str) -> None:
    try:
        check_new_pool_dir(pool_dir)
    except HeadwaterError as err:
        raise PublishError(str(err)) from None


def _write(pub: Publisher, plan: PublishPlan, pool_name: str, silent: bool | None) -> dict[str, int]:
    """Pass 2: every droplet into the transaction, in source order: the bytes pass 1 kept (JSONL sources), or
    re-read, local image paths rewritten to pool refs, canonicalised (other sources)."""
    counts: dict[str, int] = {}
    with tqdm(total=plan.droplets, desc="Writing", unit=" droplets", disable=silent) as bar:
        for source, kept in zip(plan.sources, plan.encoded or [None] * len(plan.sources), strict=True):
            if kept is not None:
                for split, batch, facts in kept.batches():
                    pub.add_many(split, batch, facts=facts)
                    counts[split] = counts.get(split, 0) + len(batch)
                    bar.update(len(batch))
                continue
            for item in plan.items(source):
                droplet = dict(item.droplet)
                paths = image_paths(droplet)
                if any(is_local_path(p) for p in paths):
                    rewritten = []
                    for path in paths:
                        if is_local_path(path):
                            entry = plan.images.get(item.image_path(path))
                            if entry is None:
                                raise PublishError(f"the source changed while publishing ({item.where}: new "
                                                   f"image {path!r}); nothing was published")
                            path = format_image_ref(pool_name, entry[0])
                        rewritten.append(path)
                    droplet["image"] = {**droplet["image"], "paths": rewritten}
                pub.add(item.split, encode_droplet(droplet_from_builtins(droplet)))
                counts[item.split] = counts.get(item.split, 0) + 1
                bar.update(1)
    return counts


def _default_pool_dir(catalog: Catalog, database: str, namespace: str, name: str) -> str:
    path = catalog.url.database if catalog.backend == "sqlite" else None
    if not path or path == ":memory:":
        raise PublishError("the droplets reference local image files and the catalog is not a local SQLite "
                           "file: give pool_dir (where to write the image pool)")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
    return os.path.join(os.path.dirname(os.path.abspath(path)), "pools", database, namespace, name, stamp)
