"""Publish droplets as one immutable dataset: validate everything, pack the images, commit once.

Why it is built this way:

* **All or nothing.** Every droplet is read and validated before anything is written; every problem
  is collected with its place in the source (``line 12``, ``image id 397133``, ``labels/a.txt line 3``)
  and raised together as one :class:`PublishError`. Only a clean source reaches the catalog, and then
  through ONE :meth:`Catalog.publisher` transaction: no reader ever sees half a dataset.
* **Images go into a pool.** Droplet image paths that are local files (no ``scheme://``) are packed
  once each (the same file named twice is packed once) into tar shards with hfutils indexes and a pool
  manifest (:mod:`headwater.archive`), as members ``0.jpg``, ``1.png``, … in order of first use, and
  the paths are rewritten to ``pool://{pool_name}/{member}``; URLs and existing ``pool://`` refs are
  kept as they are.
* **No pool left behind, no dataset without its pool.** The shards are written into a staging folder
  beside the target (same file system, so the final rename is atomic). Order of the last steps:
  droplets inserted (uncommitted) → staging renamed onto the target → commit. If the commit fails the
  renamed pool is removed again. Crash windows: a crash before the rename leaves only a
  ``.{target}.staging-*`` folder (no catalog rows; delete it); a crash between rename and commit leaves
  an orphan pool folder no dataset points at (its ``headwater-publish.json`` names the dataset it was
  meant for; delete it). The opposite order (commit first) could leave a committed dataset whose
  images do not exist, which readers would hit; an orphan folder only costs disk space. For the same
  reason the staged files and the rename are fsynced before the commit.
* **Two passes, bounded memory.** Pass 1 validates and plans (image keys, split counts, template);
  pass 2 re-reads the source and streams the rewritten droplets into the transaction, so a 10M-droplet
  source never sits in memory. Sources must therefore be re-iterable (files are).
* **Deterministic splits.** A droplet without an explicit split is placed by :class:`SplitRule`: a
  keyed hash of (seed, droplet uid — else image uid, else its first image path) mapped to [0, 1), so an
  item keeps its split when other items are added or removed.

Example:
    >>> rule = SplitRule({"validation": 0.25}, seed=7)
    >>> [rule(f"img-{i}") for i in range(6)] == [rule(f"img-{i}") for i in range(6)]
    True
    >>> sorted(set(rule(f"img-{i}") for i in range(200)))
    ['train', 'validation']
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import msgspec
from tqdm import tqdm

from ..archive.pack import plan_shards
from ..archive.pool_files import rebuild_manifest
from ..archive.writer import ShardWriter, archive_size, member_footprint
from ..catalog import Catalog, DatasetRecord, check_name
from ..droplet import (
    DropletError,
    ImageRefError,
    decode_template,
    droplet_from_builtins,
    encode_droplet,
    encode_template,
    format_image_ref,
    infer_template,
    parse_image_ref,
    validate_droplet,
)
from ..errors import HeadwaterError
from ..storage import atomic_path

__all__ = [
    "PublishError", "Problem", "SourceItem", "Source", "JsonlSource", "SplitRule", "publish",
    "is_local_path", "merge_templates", "POOL_MARKER",
]

POOL_MARKER = "headwater-publish.json"
"""File written into every pool :func:`publish` creates: which dataset it was packed for."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EXT = re.compile(r"\.[A-Za-z0-9]{1,10}")


# -- errors ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a source: where (``line 3``, ``image id 17``…) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class PublishError(HeadwaterError, ValueError):
    """Publishing was refused; nothing was written. ``problems`` lists the first ones found (up to the
    cap given to :func:`publish`), ``total`` how many there were in all."""

    def __init__(self, message: str, problems: Sequence[Problem] = (), total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        self.summary = message
        text = message
        if self.problems:
            text += "\n  " + "\n  ".join(str(p) for p in self.problems)
            if self.total > len(self.problems):
                text += f"\n  … and {self.total - len(self.problems)} more"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.summary, self.problems, self.total))


# -- sources -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SourceItem:
    """One droplet as a source reader produced it.

    ``droplet`` is the datatap wire JSON as a dict (None when the reader could not build one; then
    ``problems`` says why). Image paths without a scheme are local files relative to the source's
    ``images_root``. ``split`` is an explicit split (a YOLO ``images/val`` folder, a JSONL ``"split"``
    field, a COCO file given as one split); it wins over the seeded rule.
    """

    where: str
    droplet: Mapping[str, Any] | None
    split: str | None = None
    problems: tuple[str, ...] = ()


@runtime_checkable
class Source(Protocol):
    """What :func:`publish` reads: re-iterable items, where local images live, an optional template.

    ``template`` is the datatap wire JSON of an ``ImageAnnotationTemplate`` (COCO and YOLO readers know
    every class, even unused ones) or None to infer it from the droplets.
    """

    name: str
    images_root: str | None
    template: Mapping[str, Any] | None

    def items(self) -> Iterator[SourceItem]:
        """Yield every item; called twice by :func:`publish` (validate, then write)."""
        ...


class JsonlSource:
    """Droplets from a JSONL file (one datatap ``ImageAnnotation`` a line; ``.gz`` is read too).

    Blank lines are skipped; line numbers in problems are 1-based and count every line. A top-level
    ``"split"`` string (not a droplet field) names the line's split and is removed before validation.
    Local image paths resolve against ``images`` (default: the file's folder).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "d.jsonl")
        >>> _ = open(path, "w").write('{"kind": "ImageAnnotation", "image": {"paths": ["a.png"]}, '
        ...                           '"classes": {}, "split": "val"}\\n\\n[1]\\n')
        >>> [(i.where, i.split, i.problems) for i in JsonlSource(path).items()]
        [('line 1', 'val', ()), ('line 3', None, ('expected a JSON object, got list',))]
    """

    template: Mapping[str, Any] | None = None

    def __init__(self, path: str | os.PathLike[str], images: str | os.PathLike[str] | None = None, *,
                 split_field: str | None = "split") -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self.images_root = os.path.abspath(os.fspath(images) if images is not None
                                           else os.path.dirname(os.path.abspath(self.path)))
        self.split_field = split_field

    def _open(self) -> io.BufferedIOBase:
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rb")  # type: ignore[return-value]
        return open(self.path, "rb")

    def items(self) -> Iterator[SourceItem]:
        decoder = msgspec.json.Decoder()
        with self._open() as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"line {number}"
                try:
                    obj = decoder.decode(line)
                except msgspec.DecodeError as err:
                    yield SourceItem(where, None, problems=(f"invalid JSON: {err}",))
                    continue
                if not isinstance(obj, dict):
                    yield SourceItem(where, None, problems=(f"expected a JSON object, got {type(obj).__name__}",))
                    continue
                split = obj.pop(self.split_field, None) if self.split_field else None
                if split is not None and not isinstance(split, str):
                    yield SourceItem(where, None, problems=(f"{self.split_field!r} must be a string, got {split!r}",))
                    continue
                yield SourceItem(where, obj, split=split)


# -- split rule --------------------------------------------------------------------------------------
class SplitRule:
    """Seeded, per-item split assignment: ``fractions`` in the given order cover [0, sum), the rest of
    [0, 1) goes to ``rest``.

    An item's position is ``blake2b(seed, key) / 2**64``, independent of every other item, so adding or
    removing items never moves the others, and growing the first fraction only moves items from
    ``rest`` into it. Raises :class:`PublishError` for negative fractions or a sum above 1.

    Example:
        >>> rule = SplitRule({"validation": 0.05}, seed=0)
        >>> counts = {}
        >>> for i in range(4000):
        ...     counts[rule(str(i))] = counts.get(rule(str(i)), 0) + 1
        >>> 150 < counts["validation"] < 250, counts["validation"] + counts["train"]
        (True, 4000)
    """

    def __init__(self, fractions: Mapping[str, float], *, seed: int = 0, rest: str = "train") -> None:
        self.seed = int(seed)
        self.rest = rest
        self.fractions = dict(fractions)
        bounds: list[tuple[float, str]] = []
        total = 0.0
        for name, frac in self.fractions.items():
            if not isinstance(frac, (int, float)) or not 0.0 <= float(frac) <= 1.0:
                raise PublishError(f"split fraction for {name!r} must lie in [0, 1], got {frac!r}")
            total += float(frac)
            bounds.append((total, name))
        if total > 1.0 + 1e-9:
            raise PublishError(f"split fractions add up to {total:g}, more than 1: {self.fractions}")
        self._bounds = bounds
        self._prefix = f"{self.seed}\x00".encode()

    def position(self, key: str) -> float:
        """Where ``key`` falls in [0, 1) (stable across processes and Python versions)."""
        digest = hashlib.blake2b(self._prefix + key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def __call__(self, key: str) -> str:
        pos = self.position(key)
        for upper, name in self._bounds:
            if pos < upper:
                return name
        return self.rest

    def names(self) -> list[str]:
        """Every split this rule can produce."""
        return list(dict.fromkeys([*self.fractions, self.rest]))

    def __repr__(self) -> str:
        return f"SplitRule({self.fractions!r}, seed={self.seed}, rest={self.rest!r})"


# -- helpers -----------------------------------------------------------------------------------------
def is_local_path(path: str) -> bool:
    """True for an image path to pack (no ``scheme://``): ``a/b.jpg``, ``/data/x.png``.

    Example:
        >>> is_local_path("a/b.jpg"), is_local_path("pool://images/3"), is_local_path("https://x/y.png")
        (True, False, False)
    """
    return not _SCHEME.match(path)


def _split_key(droplet: Mapping[str, Any], where: str) -> str:
    uid = droplet.get("uid")
    if isinstance(uid, str) and uid:
        return uid
    image = droplet.get("image")
    if isinstance(image, Mapping):
        if isinstance(image.get("uid"), str) and image["uid"]:
            return str(image["uid"])
        paths = image.get("paths")
        if isinstance(paths, list) and paths and isinstance(paths[0], str):
            return paths[0]
    return where


def _merge_bool(a: Mapping[str, Any], b: Mapping[str, Any], out: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if a.get(key) or b.get(key):
            out[key] = True


def merge_templates(templates: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The union of several ``ImageAnnotationTemplate`` wire dicts (classes, fields, keypoint names
    and attribute values), so droplets of every input validate against the result.

    Example:
        >>> a = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"boundingBox": True}}}}
        >>> b = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"keypoints": ["nose"]}},
        ...                                                      "dog": {}}}
        >>> merge_templates([a, b])["classes"]
        {'cat': {'instances': {'boundingBox': True, 'keypoints': ['nose']}}, 'dog': {}}
    """
    classes: dict[str, dict[str, Any]] = {}
    for template in templates:
        for name, cls in (template.get("classes") or {}).items():
            merged = classes.setdefault(name, {})
            if "instances" in cls:
                old, new = merged.get("instances", {}), cls["instances"] or {}
                inst: dict[str, Any] = {}
                _merge_bool(old, new, inst, ("id", "boundingBox", "segmentation"))
                kps = list(dict.fromkeys([*old.get("keypoints", []), *new.get("keypoints", [])]))
                if kps:
                    inst["keypoints"] = kps
                attrs: dict[str, list[str]] = {k: list(v) for k, v in old.get("attributes", {}).items()}
                for key, values in (new.get("attributes") or {}).items():
                    attrs[key] = list(dict.fromkeys([*attrs.get(key, []), *values]))
                if attrs:
                    inst["attributes"] = attrs
                merged["instances"] = inst
            if "multiInstances" in cls:
                old, new = merged.get("multiInstances", {}), cls["multiInstances"] or {}
                multi: dict[str, Any] = {}
                _merge_bool(old, new, multi, ("boundingBox", "segmentation", "count"))
                merged["multiInstances"] = multi
    return {"kind": "ImageAnnotationTemplate", "classes": classes}


def _as_sources(source: Any, images: str | os.PathLike[str] | None) -> list[Source]:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise PublishError(f"source {path!r} is not a file: a JSONL file of droplets is expected here "
                               "(COCO files and YOLO folders: pass headwater.integrations.open_source(path))")
        return [JsonlSource(path, images)]
    if isinstance(source, Source):
        return [source]
    if isinstance(source, Sequence) and source and all(isinstance(s, Source) for s in source):
        return list(source)
    raise PublishError(f"cannot publish from {source!r}: give a JSONL path, a Source, or a list of Sources")


def _split_chooser(splits: Any, seed: int, default_split: str) -> tuple[SplitRule | None, str]:
    if splits is None:
        return None, default_split
    if isinstance(splits, str):
        return None, splits
    if isinstance(splits, SplitRule):
        return splits, splits.rest
    if isinstance(splits, Mapping):
        return SplitRule(splits, seed=seed, rest=default_split), default_split
    raise PublishError(f"splits must be None, a split name, a {{name: fraction}} mapping or a SplitRule; "
                       f"got {splits!r}")


# -- the plan (pass 1) -------------------------------------------------------------------------------
@dataclass
class _Plan:
    template: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    images: dict[str, tuple[str, int]] = field(default_factory=dict)  # abs path → (member name, size)
    problems: list[Problem] = field(default_factory=list)
    total_problems: int = 0
    droplets: int = 0


class _Collector:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.shown: list[Problem] = []
        self.total = 0

    def add(self, where: str, message: str) -> None:
        self.total += 1
        if len(self.shown) < self.cap:
            self.shown.append(Problem(where, message))


def _where(source: Source, item: SourceItem, several: bool) -> str:
    return f"{source.name} {item.where}" if several else item.where


def _image_paths(droplet: Mapping[str, Any]) -> list[str]:
    image = droplet.get("image")
    paths = image.get("paths") if isinstance(image, Mapping) else None
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def _resolve(root: str | None, path: str) -> str:
    return os.path.abspath(os.path.join(root or os.getcwd(), path))


def _member_name(index: int, path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return f"{index}{ext if _EXT.fullmatch(ext) else ''}"


# -- the pool ----------------------------------------------------------------------------------------
def _check_target(pool_dir: str) -> None:
    if os.path.lexists(pool_dir) and not (os.path.isdir(pool_dir) and not os.listdir(pool_dir)):
        raise PublishError(f"pool folder {pool_dir!r} already exists and is not empty; a published pool is "
                           "immutable, give a new folder")


def _stage_pool(images: Mapping[str, tuple[str, int]], pool_dir: str, marker: Mapping[str, Any],
                max_shard_size: int, progress: bool) -> str:
    """Pack ``images`` into a fresh staging folder beside ``pool_dir``; returns its path."""
    parent = os.path.dirname(os.path.abspath(pool_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(pool_dir)}.staging-", dir=parent)
    try:
        sources = [(member, path, size) for path, (member, size) in images.items()]
        plan = plan_shards(sources, layout="sequential", max_shard_size=max_shard_size)
        total = sum(size for _m, _p, size in sources)
        with tqdm(total=total, unit="B", unit_scale=True, desc="Packing images", disable=not progress) as bar:
            for shard, members in plan.items():
                planned = archive_size(sum(member_footprint(m.name, m.size) for m in members))
                with ShardWriter(os.path.join(staging, shard), planned) as writer:
                    for member in members:
                        writer.add_file(member.name, member.path, member.size)
                        bar.update(member.size)
        rebuild_manifest(staging)
        with atomic_path(os.path.join(staging, POOL_MARKER)) as tmp, open(tmp, "w") as f:
            json.dump(dict(marker), f, indent=2, sort_keys=True)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; a pool is shared like any folder
        _fsync_tree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_path(path: str) -> None:
    """Flush a file or folder entry to disk (best effort: not every platform can open folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: str) -> None:
    """Make the staged pool durable before it is renamed into place and committed: after a power loss
    the catalog must never name a pool whose files did not reach the disk (a handful of files: the
    shards, their indexes, the manifest and the marker)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            _fsync_path(os.path.join(folder, name))
        _fsync_path(folder)


def _default_pool_dir(catalog: Catalog, database: str, namespace: str, name: str) -> str:
    path = catalog.url.database if catalog.backend == "sqlite" else None
    if not path or path == ":memory:":
        raise PublishError("the droplets reference local image files and the catalog is not a local SQLite "
                           "file: give pool_dir (where to write the image pool)")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
    return os.path.join(os.path.dirname(os.path.abspath(path)), "pools", database, namespace, name, stamp)


# -- publish -----------------------------------------------------------------------------------------
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
    progress: bool = True,
) -> DatasetRecord:
    """Validate ``source`` completely, pack its local images into a new pool and publish it as ONE new
    dataset of ``database``/``namespace``/``name``; returns its :class:`~headwater.catalog.DatasetRecord`.

    * ``catalog``: a :class:`~headwater.catalog.Catalog` or its path/URL; ``database`` must exist.
    * ``source``: a JSONL path (local images relative to ``images``, default the file's folder), a
      :class:`Source` (``headwater.integrations.CocoSource``/``YoloSource``/``open_source``) or a list.
    * ``splits``: None (items without an explicit split go to ``default_split``), one split name, a
      ``{"validation": 0.05}`` mapping (a :class:`SplitRule` seeded with ``split_seed``, the rest to
      ``default_split``) or a :class:`SplitRule`. Explicit per-item splits always win.
    * ``template``: None → the union of the readers' templates (COCO/YOLO list every class) and of what
      the droplets use; else a wire dict / JSON / path / struct that every droplet must satisfy.
      ``strict`` (default: True for a given template, False for an inferred one) also requires every
      field the template promises (datatap's meaning); an inferred template is a union, so only what
      the droplets use is checked against it.
    * ``pool_dir``: the new pool's folder (must not exist, or be empty); default
      ``<catalog folder>/pools/<db>/<ns>/<name>/<UTC time>-<random>`` for a SQLite catalog. Its images
      are referenced as ``pool://{pool_name}/{member}``; ``pools`` adds more name → URL entries for
      ``pool://`` refs already in the droplets (unknown pool names are problems).

    Raises :class:`PublishError` listing up to ``max_problems`` problems with their place, and then
    nothing was written (no catalog rows, no pool folder).

    Example:
        >>> import tempfile, os
        >>> from headwater.catalog import Catalog
        >>> d = tempfile.mkdtemp()
        >>> with open(os.path.join(d, "a.jsonl"), "w") as f:
        ...     _ = f.write('{"kind":"ImageAnnotation","image":{"paths":["https://x/1.jpg"]},"classes":{}}\\n')
        >>> cat = Catalog(os.path.join(d, "catalog.sqlite"))
        >>> _ = cat.create_database("demo")
        >>> record = publish(cat, "demo", "me", "tiny", os.path.join(d, "a.jsonl"), progress=False)
        >>> record.splits, cat.dataset("demo", "me", "tiny", "latest").uid == record.uid
        ({'train': 1}, True)
    """
    if not isinstance(catalog, Catalog):
        with Catalog(os.fspath(catalog)) as opened:
            return publish(opened, database, namespace, name, source, images=images, pool_dir=pool_dir,
                           pool_name=pool_name, pools=pools, splits=splits, split_seed=split_seed,
                           default_split=default_split, template=template, strict=strict, tags=tags,
                           max_shard_size=max_shard_size, max_problems=max_problems, progress=progress)
    tags = list(tags)
    try:
        for kind, value in (("namespace", namespace), ("repository name", name), ("pool name", pool_name),
                            ("split name", default_split), *(("tag", t) for t in tags),
                            *(("pool name", p) for p in (pools or {}))):
            check_name(kind, value)
    except ValueError as err:
        raise PublishError(str(err)) from None
    catalog.database(database)  # NotFoundError now, not after an hour of validating and packing
    sources = _as_sources(source, images)
    rule, fallback = _split_chooser(splits, split_seed, default_split)
    try:
        for split_name in rule.names() if rule else [fallback]:
            check_name("split name", split_name)
    except ValueError as err:
        raise PublishError(str(err)) from None
    given_template = _template_dict(template) if template is not None else None
    if strict is None:
        strict = given_template is not None
    target = os.path.abspath(os.fspath(pool_dir)) if pool_dir is not None else None
    if target is not None:
        _check_target(target)

    plan = _validate(sources, rule, fallback, given_template, strict, pools or {}, pool_name,
                     max_problems, progress)
    if plan.total_problems:
        raise PublishError(f"{plan.total_problems} problem(s) in the source; nothing was published:",
                           plan.problems, plan.total_problems)
    if plan.droplets == 0:
        raise PublishError("the source holds no droplets; nothing was published")

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
        staging = _stage_pool(plan.images, target, marker, max_shard_size, progress)

    renamed = False
    try:
        with catalog.publisher(database, namespace, name, template=plan.template, pools=all_pools) as pub:
            written = _write(pub, sources, plan, rule, fallback, pool_name, progress)
            if written != plan.counts:
                raise PublishError(f"the source changed while publishing (read {plan.counts}, then {written}); "
                                   "nothing was published")
            for tag in tags:
                pub.tag(tag)
            if staging is not None and target is not None:
                # last step before the commit (see the module docstring for why this order)
                _check_target(target)
                if os.path.isdir(target):
                    os.rmdir(target)  # empty (checked); rename cannot replace a directory everywhere
                os.rename(staging, target)
                renamed = True
                _fsync_path(os.path.dirname(target))  # the rename itself is durable before the commit
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


def _template_dict(template: Any) -> dict[str, Any]:
    """A template given as a wire dict, JSON text/bytes, a path to a JSON file, or a droplet-layer
    struct → its wire dict (checked by the droplet layer)."""
    try:
        if isinstance(template, os.PathLike) or (isinstance(template, str) and not template.lstrip().startswith("{")):
            with open(template, "rb") as f:
                template = f.read()
        struct = decode_template(template)
    except (OSError, ValueError, TypeError) as err:
        raise PublishError(f"bad template: {err}") from None
    return json.loads(encode_template(struct))


def _validate(sources: list[Source], rule: SplitRule | None, fallback: str, given: dict[str, Any] | None,
              strict: bool, pools: Mapping[str, str], pool_name: str, max_problems: int,
              progress: bool) -> _Plan:
    """Pass 1: read every item, collect every problem, plan images, splits and the template."""
    problems = _Collector(max_problems)
    several = len(sources) > 1
    plan = _Plan(template={})
    reader_templates = [dict(s.template) for s in sources if s.template is not None]
    if given is not None:
        known_template: Any = decode_template(given)
        to_infer: list[Source] = []
    else:
        known_template = decode_template(merge_templates(reader_templates)) if reader_templates else None
        to_infer = [s for s in sources if s.template is None]
    known_pools = set(pools) | {pool_name}
    checked_splits: set[str] = set()

    def items() -> Iterator[Any]:
        bar = tqdm(desc="Validating", unit=" droplets", disable=not progress)
        try:
            for source in sources:
                template = None if any(source is s for s in to_infer) else known_template
                infer = template is None
                for item in source.items():
                    bar.update(1)
                    where = _where(source, item, several)
                    for message in item.problems:
                        problems.add(where, message)
                    if item.droplet is None:
                        if not item.problems:
                            problems.add(where, "no droplet")
                        continue
                    try:
                        droplet = droplet_from_builtins(item.droplet)
                        validate_droplet(droplet, template, strict=strict)
                    except DropletError as err:
                        problems.add(where, str(err))
                        continue
                    bad = bool(item.problems)
                    for path in _image_paths(item.droplet):
                        if is_local_path(path):
                            resolved = _resolve(source.images_root, path)
                            if resolved in plan.images:
                                continue
                            try:
                                st = os.stat(resolved)
                            except OSError:
                                problems.add(where, f"image {path!r} not found (looked for {resolved})")
                                bad = True
                                continue
                            if not os.path.isfile(resolved):
                                problems.add(where, f"image {path!r} is not a regular file ({resolved})")
                                bad = True
                                continue
                            index = len(plan.images)
                            plan.images[resolved] = (_member_name(index, path), st.st_size)
                        else:
                            try:
                                ref = parse_image_ref(path)
                            except ImageRefError as err:
                                problems.add(where, str(err))
                                bad = True
                                continue
                            if ref.kind == "pool" and ref.pool not in known_pools:
                                problems.add(where, f"image {path!r} names pool {ref.pool!r}, which is not "
                                                    f"among the dataset's pools {sorted(known_pools)}")
                                bad = True
                    split = item.split or (rule(_split_key(item.droplet, where)) if rule else fallback)
                    if split not in checked_splits:
                        try:
                            check_name("split name", split)
                            checked_splits.add(split)
                        except ValueError as err:
                            problems.add(where, str(err))
                            bad = True
                    if bad:
                        continue
                    plan.counts[split] = plan.counts.get(split, 0) + 1
                    plan.droplets += 1
                    if infer:
                        yield droplet
        finally:
            bar.close()

    if given is not None:
        for _ in items():
            pass
        plan.template = given
    elif to_infer:
        inferred = json.loads(encode_template(infer_template(items())))
        plan.template = merge_templates([*reader_templates, inferred])
    else:
        for _ in items():
            pass
        plan.template = merge_templates(reader_templates)
    plan.problems = problems.shown
    plan.total_problems = problems.total
    return plan


def _write(pub: Any, sources: list[Source], plan: _Plan, rule: SplitRule | None, fallback: str,
           pool_name: str, progress: bool) -> dict[str, int]:
    """Pass 2: re-read, rewrite local image paths to pool refs, canonicalise, add to the transaction."""
    several = len(sources) > 1
    counts: dict[str, int] = {}
    with tqdm(total=plan.droplets, desc="Writing", unit=" droplets", disable=not progress) as bar:
        for source in sources:
            for item in source.items():
                where = _where(source, item, several)
                if item.droplet is None or item.problems:
                    raise PublishError(f"the source changed while publishing ({where}); nothing was published")
                droplet = dict(item.droplet)
                split = item.split or (rule(_split_key(droplet, where)) if rule else fallback)
                paths = _image_paths(droplet)
                if any(is_local_path(p) for p in paths):
                    rewritten = []
                    for path in paths:
                        if is_local_path(path):
                            entry = plan.images.get(_resolve(source.images_root, path))
                            if entry is None:
                                raise PublishError(f"the source changed while publishing ({where}: new image "
                                                   f"{path!r}); nothing was published")
                            path = _pool_ref(pool_name, entry[0])
                        rewritten.append(path)
                    droplet["image"] = {**droplet["image"], "paths": rewritten}
                pub.add(split, encode_droplet(droplet_from_builtins(droplet)))
                counts[split] = counts.get(split, 0) + 1
                bar.update(1)
    return counts


def _pool_ref(pool_name: str, member: str) -> str:
    """The ref names the member (``pool://images/17.jpg``): its extension tells readers the format,
    and :class:`~headwater.droplet.ImageFetcher` resolves it through the manifest (resource ``17``)."""
    return format_image_ref(pool_name, member)
