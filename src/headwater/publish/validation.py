"""Pass 1 of a publish: read every item, collect every problem, plan images, splits and the template.

Why before anything is written: a publish is all or nothing, and a user fixing a source wants every
problem at once (``line 12``, ``image id 397133``, ``labels/a.txt line 3``), not the first one per run.
So :func:`prepare_publish` reads the whole source, validates each droplet (against the given template, or
the union of what the droplets use), checks each image path (a local file to pack, a URL, or a
``pool://`` reference to a member of a pool of the dataset: :mod:`.pool_refs`, the rule the server applies
too), that no droplet ``uid`` repeats (:mod:`.unique_uids`) and each split name, and either raises one
:class:`~headwater.publish.errors.PublishError` listing the problems or returns a :class:`PublishPlan`.
Pass 2 (:meth:`PublishPlan.items`) re-reads the source for the writer — local (:mod:`.commit`) or remote
(the client's HTTP publish) — so a 10M-droplet source never sits in memory; sources must therefore be
re-iterable (files are).

A JSONL source, the common and the big case, takes a faster road with the same answers: its lines are
checked in blocks, on worker processes when the file is big (:mod:`.jsonl_check`), each decoded once
straight into checked structs (:class:`~headwater.droplet.DropletValidator`: the range rules are msgspec
constraints); a line that does not pass goes through the full path above, which names its problems. With
``keep_encoded`` (the local publish) the final bytes of its droplets are kept (:mod:`.encoded`, spooled
to disk past 64 MiB) and written in pass 2 without reading or decoding the file again.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "d.jsonl")
    >>> _ = open(path, "w").write('{"kind":"ImageAnnotation","image":{"paths":["https://x/1.jpg"]},"classes":{}}\\n')
    >>> plan = prepare_publish(path, splits="val", silent=True)
    >>> plan.counts, [(item.where, item.split) for item in plan.items()]
    ({'val': 1}, [('line 1', 'val')])
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from tqdm import tqdm

from ..catalog import check_name
from ..droplet import (
    DropletError,
    ImageAnnotation,
    decode_droplet,
    decode_template,
    droplet_from_builtins,
    encode_droplet,
    encode_template,
    format_image_ref,
    infer_template,
    merge_templates,
    validate_droplet,
)
from .encoded import EncodedDroplets
from .errors import Problem, PublishError
from .jsonl_check import CheckedBlock, check_jsonl, default_workers
from .pool_refs import PoolRefCheck
from .sources import JsonlSource, Source, SourceItem
from .split_rule import SplitRule, choose_splits, split_key
from .unique_uids import UidCheck

__all__ = ["PublishPlan", "PlannedItem", "prepare_publish", "resolve_image", "check_names", "as_sources",
           "load_template", "is_local_path", "image_paths"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EXT = re.compile(r"\.[A-Za-z0-9]{1,10}")


def is_local_path(path: str) -> bool:
    """True for an image path to pack (no ``scheme://``): ``a/b.jpg``, ``/data/x.png``.

    Example:
        >>> is_local_path("a/b.jpg"), is_local_path("pool://images/3"), is_local_path("https://x/y.png")
        (True, False, False)
    """
    return not _SCHEME.match(path)


def image_paths(droplet: Mapping[str, Any]) -> list[str]:
    """The string entries of a wire droplet's ``image.paths`` (anything else is the validator's to report)."""
    image = droplet.get("image")
    paths = image.get("paths") if isinstance(image, Mapping) else None
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def check_names(**names: str | Iterable[str]) -> None:
    """Each name by the catalog's naming rule, as a :class:`PublishError` naming which one is wrong.

    >>> check_names(namespace="acme", tag=["latest", "bad tag"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    headwater.publish.errors.PublishError: invalid tag 'bad tag': use 1-128 characters of A-Z a-z 0-9 . _ -
    starting with a letter or digit
    """
    try:
        for kind, values in names.items():
            for value in [values] if isinstance(values, str) else values:
                check_name(kind.replace("_", " "), value)
    except ValueError as err:
        raise PublishError(str(err)) from None


def as_sources(source: Any, images: str | os.PathLike[str] | None = None) -> list[Source]:
    """A JSONL path, a :class:`~headwater.publish.Source` or a list of them, as a list of sources."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise PublishError(f"source {path!r} is not a file: a JSONL file of droplets is expected here "
                               "(COCO files and YOLO folders: pass headwater.publish.open_source(path))")
        return [JsonlSource(path, images)]
    if isinstance(source, Source):
        return [source]
    if isinstance(source, Sequence) and source and all(isinstance(s, Source) for s in source):
        return list(source)
    raise PublishError(f"cannot publish from {source!r}: give a JSONL path, a Source, or a list of Sources")


def load_template(template: Any) -> dict[str, Any]:
    """A template given as a wire dict, JSON text/bytes, a path to a JSON file, or a droplet-layer struct →
    its wire dict (checked by the droplet layer; :class:`PublishError` when it is not a template)."""
    try:
        if isinstance(template, os.PathLike) or (isinstance(template, str) and not template.lstrip().startswith("{")):
            with open(template, "rb") as f:
                template = f.read()
        struct = decode_template(template)
    except (OSError, ValueError, TypeError) as err:
        raise PublishError(f"bad template: {err}") from None
    parsed: dict[str, Any] = json.loads(encode_template(struct))
    return parsed


@dataclass
class PublishPlan:
    """What pass 1 found, and everything pass 2 needs to write the same droplets to the same splits.

    ``images``: absolute path of each local image → ``(member name in the new pool, size)``, in order of
    first use (the same file named twice is packed once). ``counts``: droplets per split.
    """

    sources: list[Source]
    rule: SplitRule | None
    fallback: str
    template: dict[str, Any]
    strict: bool
    counts: dict[str, int] = field(default_factory=dict)
    images: dict[str, tuple[str, int]] = field(default_factory=dict)
    droplets: int = 0
    encoded: list[EncodedDroplets | None] = field(default_factory=list)
    """Per source (same order): its good droplets' final bytes kept by pass 1 (``keep_encoded``), which pass 2
    writes instead of reading the source again; None for a source pass 2 re-reads (:meth:`items`)."""

    def close(self) -> None:
        """Free what pass 1 kept (:attr:`encoded`); the plan's other fields stay usable."""
        for kept in self.encoded:
            if kept is not None:
                kept.close()
        self.encoded = []

    def where(self, source: Source, item: SourceItem) -> str:
        """An item's place in the problems: its source's name too when several are published together."""
        return f"{source.name} {item.where}" if len(self.sources) > 1 else item.where

    def split_of(self, item: SourceItem, where: str) -> str:
        """The item's split: its explicit one, else the rule's, else the fallback."""
        if item.split:
            return item.split
        if self.rule is not None and item.droplet is not None:
            return self.rule(split_key(item.droplet, where))
        return self.fallback

    def items(self, *only: Source) -> Iterator[PlannedItem]:
        """Pass 2: every item, re-read from the sources (or from the sources ``only``), with its split; raises
        :class:`PublishError` if an item that was valid in pass 1 is not any more (the source changed)."""
        for source in only or self.sources:
            for item in source.items():
                where = self.where(source, item)
                if item.droplet is None or item.problems:
                    raise PublishError(f"the source changed while publishing ({where}); nothing was published")
                yield PlannedItem(where, self.split_of(item, where), item.droplet, source.images_root)


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """One droplet of pass 2: its place in the source, its split, its wire JSON, and where its source's
    local images are."""

    where: str
    split: str
    droplet: Mapping[str, Any]
    images_root: str | None

    def image_path(self, path: str) -> str:
        """The absolute path a local image path of this item names."""
        return resolve_image(self.images_root, path)


def resolve_image(images_root: str | None, path: str) -> str:
    """The absolute path of a local image ``path`` of a source whose images are under ``images_root``."""
    return os.path.abspath(os.path.join(images_root or os.getcwd(), path))


class _Problems:
    """The first ``cap`` problems in source order, and how many there were.

    Each problem has a sequence number (:meth:`reserve`): pool-ref member lookups are resolved in batches,
    so a bad ref of line 10 may be reported after a problem of line 5000; the numbers put it back in line
    order. Only the ``cap`` lowest are kept (a heap), so memory stays bounded however many there are.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._kept: list[tuple[int, Problem]] = []  # a max-heap on the sequence number (negated)
        self._next = 0
        self.total = 0

    def reserve(self) -> int:
        """The sequence number of a problem that may be found later (a queued pool-ref lookup)."""
        self._next += 1
        return self._next - 1

    def add(self, where: str, message: str, seq: int | None = None) -> None:
        self.total += 1
        entry = (-(self.reserve() if seq is None else seq), Problem(where, message))
        if len(self._kept) < self.cap:
            heapq.heappush(self._kept, entry)
        elif self._kept and entry[0] > self._kept[0][0]:
            heapq.heapreplace(self._kept, entry)

    @property
    def shown(self) -> list[Problem]:
        return [problem for _seq, problem in sorted(self._kept, key=lambda entry: -entry[0])]


def _member_name(index: int, path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return f"{index}{ext if _EXT.fullmatch(ext) else ''}"


def prepare_publish(
    source: str | os.PathLike[str] | Source | Sequence[Source],
    *,
    images: str | os.PathLike[str] | None = None,
    pools: Mapping[str, str] | None = None,
    pool_name: str = "images",
    splits: str | Mapping[str, float] | SplitRule | None = None,
    split_seed: int = 0,
    default_split: str = "train",
    template: Any = None,
    strict: bool | None = None,
    max_problems: int = 100,
    check_members: Callable[[str], bool] | None = None,
    silent: bool | None = False,
    keep_encoded: bool = False,
    workers: int | None = None,
) -> PublishPlan:
    """Pass 1: validate ``source`` completely and plan the publish (see the module docstring).

    The arguments mean what they mean for :func:`~headwater.publish.publish`. ``pool_name`` is the pool
    local images will be packed into (so ``pool://{pool_name}/…`` refs to the members it will hold are
    known too). ``check_members(location)``: which of ``pools`` are opened to check that referenced
    members exist (:class:`~.pool_refs.PoolRefCheck`; None: none, only pool names are checked). Raises
    :class:`PublishError` naming up to ``max_problems`` problems, or when there are no droplets.

    ``keep_encoded``: keep the final bytes of a JSONL source's droplets (:attr:`PublishPlan.encoded`; local
    image paths already rewritten to ``pool://{pool_name}/…``) so that the writer needs no second read;
    then call :meth:`PublishPlan.close` when done. JSONL lines are decoded once, straight into checked
    droplets (:class:`~headwater.droplet.DropletValidator`); a line it does not pass takes the full path,
    which names every problem exactly as before. ``workers``: processes that check a JSONL source's lines
    (None: every core for a big file, :func:`~.jsonl_check.default_workers`; 0: this process only).
    """
    sources = as_sources(source, images)
    rule, fallback = choose_splits(splits, split_seed, default_split)
    check_names(split_name=rule.names() if rule else [fallback])
    given = load_template(template) if template is not None else None
    plan = PublishPlan(sources, rule, fallback, template={}, strict=given is not None if strict is None else strict)
    problems = _Problems(max_problems)
    reader_templates = [dict(s.template) for s in sources if s.template is not None]
    if given is not None:
        known: Any = decode_template(given)
        to_infer: list[Source] = []
    else:
        known = decode_template(merge_templates(reader_templates)) if reader_templates else None
        to_infer = [s for s in sources if s.template is None]
    refs: PoolRefCheck[tuple[int, str]] = PoolRefCheck(pools or {}, pool_name,
                                                        check_members=check_members or (lambda _location: False))
    uids = UidCheck()
    checked_splits: set[str] = set()

    inferred: list[dict[str, Any]] = []  # templates of what the droplets use, in source order

    with tqdm(desc="Validating", unit=" droplets", disable=silent) as bar:
        for src in sources:
            infer = any(src is s for s in to_infer)
            template = None if infer else known
            if isinstance(src, JsonlSource):
                on = workers if workers is not None else default_workers(src)
                kept = EncodedDroplets(facts=on > 0) if keep_encoded else None  # facets from the workers
                plan.encoded.append(kept)
                for block in check_jsonl(src, template, strict=plan.strict, infer=infer, workers=on,
                                         facts=kept is not None):
                    bar.update(block.lines)
                    part = _take_block(plan, src, block, template, kept, pool_name, infer, problems, refs, uids,
                                       checked_splits)
                    if part is not None:
                        inferred.append(part)
                continue
            plan.encoded.append(None)
            droplets = []
            for item in src.items():
                bar.update(1)
                checked = _check_item(plan, src, item, template, problems, refs, uids, checked_splits)
                if checked is not None and infer:
                    droplets.append(checked[1])
                    if len(droplets) >= 4096:  # bounded memory: infer a part at a time
                        inferred.append(json.loads(encode_template(infer_template(droplets))))
                        droplets = []
            if droplets:
                inferred.append(json.loads(encode_template(infer_template(droplets))))

    if given is not None:
        plan.template = given
    elif to_infer:
        plan.template = merge_templates([*reader_templates, *inferred])
    else:
        plan.template = merge_templates(reader_templates)
    for (seq, where), message in refs.resolved(final=True):
        problems.add(where, message, seq)
    for (_seq, where), message in refs.finish({member for member, _size in plan.images.values()}):
        problems.add(where, message)
    if uids.suspected:
        for where, message in uids.problems(_uids_of(plan)):
            problems.add(where, message)
    if problems.total:
        plan.close()
        raise PublishError(f"{problems.total} problem(s) in the source; nothing was published:", problems.shown,
                           problems.total)
    if plan.droplets == 0:
        plan.close()
        raise PublishError("the source holds no droplets; nothing was published")
    return plan


def _uids_of(plan: PublishPlan) -> Iterator[tuple[str, str]]:
    """``(where, uid)`` of every good item with a uid, re-read from the sources (only to name duplicates)."""
    for source in plan.sources:
        for item in source.items():
            uid = item.droplet.get("uid") if item.droplet is not None and not item.problems else None
            if isinstance(uid, str):
                yield plan.where(source, item), uid


def _check_item(plan: PublishPlan, source: Source, item: SourceItem, template: Any, problems: _Problems,
                refs: PoolRefCheck[tuple[int, str]], uids: UidCheck,
                checked_splits: set[str]) -> tuple[str, ImageAnnotation] | None:
    """Check one item, count it into ``plan`` when it is good; returns its split and droplet struct (None:
    not good)."""
    where = plan.where(source, item)
    for message in item.problems:
        problems.add(where, message)
    if item.droplet is None:
        if not item.problems:
            problems.add(where, "no droplet")
        return None
    try:
        droplet = droplet_from_builtins(item.droplet)
        validate_droplet(droplet, template, strict=plan.strict)
    except DropletError as err:
        problems.add(where, str(err))
        return None
    image = droplet.image
    key = droplet.uid or image.uid or image.paths[0]  # split_key's choice, for a droplet that validated
    checked = _check_planned(plan, source, where, item.split, item.problems, image.paths, droplet.uid, key, problems,
                             refs, uids, checked_splits)
    return None if checked is None else (checked, droplet)


def _take_block(plan: PublishPlan, source: JsonlSource, block: CheckedBlock, template: Any,
                kept: EncodedDroplets | None, pool_name: str, infer: bool, problems: _Problems,
                refs: PoolRefCheck[tuple[int, str]], uids: UidCheck, checked_splits: set[str]) -> dict[str, Any] | None:
    """The rest of pass 1 for a checked block, line by line in file order: the lines the fast path passed get
    the checks after validation (:func:`_check_planned`), the others the full path (:func:`_check_item`)
    naming their problems. Returns the block's inferred template (``infer``)."""
    many = len(plan.sources) > 1
    slow = iter(block.slow)
    next_slow = next(slow, None)
    slow_droplets: dict[int, ImageAnnotation] = {}  # slow lines that were good after all (legacy attributes)
    rule, fallback, counts, add_uid = plan.rule, plan.fallback, plan.counts, uids.add
    keep = kept.add if kept is not None else None
    facts: list[bytes] | list[None] = block.facts if block.facts is not None else [None] * len(block.good)
    for (number, uid, key, paths, explicit, urls), data, fact in zip(block.good, block.droplets(), facts,
                                                                     strict=True):
        while next_slow is not None and next_slow[0] < number:
            _take_slow(plan, source, next_slow, template, kept, pool_name, problems, refs, uids, checked_splits,
                       slow_droplets)
            next_slow = next(slow, None)
        if urls:  # the common case, inline: what _check_planned does for a droplet whose images are URLs
            chosen = explicit or (rule(key) if rule is not None else fallback)
            if chosen in checked_splits:
                if uid is not None:
                    add_uid(uid)
                counts[chosen] = counts.get(chosen, 0) + 1
                plan.droplets += 1
                if keep is not None and not problems.total:
                    keep(chosen, data, fact)
                continue
        where = f"{source.name} line {number}" if many else f"line {number}"
        split = _check_planned(plan, source, where, explicit, (), paths, uid, key, problems, refs, uids,
                               checked_splits)
        if split is not None and kept is not None and not problems.total:
            if any(is_local_path(p) for p in paths):  # new paths, same facets (they do not read paths)
                data = encode_droplet(_with_pool_refs(plan, source, decode_droplet(data), pool_name))
            kept.add(split, data, fact)
    while next_slow is not None:
        _take_slow(plan, source, next_slow, template, kept, pool_name, problems, refs, uids, checked_splits,
                   slow_droplets)
        next_slow = next(slow, None)
    if not infer:
        return None
    if not slow_droplets:
        return block.template
    # a slow line was good: infer the block again, every good droplet in line order
    fast = {number: decode_droplet(data) for (number, *_rest), data in zip(block.good, block.droplets(), strict=True)}
    merged = {**fast, **slow_droplets}
    part: dict[str, Any] = json.loads(encode_template(infer_template(merged[n] for n in sorted(merged))))
    return part


def _take_slow(plan: PublishPlan, source: JsonlSource, slow: tuple[int, bytes], template: Any,
               kept: EncodedDroplets | None, pool_name: str, problems: _Problems, refs: PoolRefCheck[tuple[int, str]],
               uids: UidCheck, checked_splits: set[str], good: dict[int, ImageAnnotation]) -> None:
    number, line = slow
    checked = _check_item(plan, source, source.item(number, line), template, problems, refs, uids, checked_splits)
    if checked is None:
        return
    split, droplet = checked
    good[number] = droplet
    if kept is not None and not problems.total:
        kept.add(split, encode_droplet(_with_pool_refs(plan, source, droplet, pool_name)))


def _check_planned(plan: PublishPlan, source: Source, where: str, explicit: str | None, item_problems: tuple[str, ...],
                   paths: list[str], uid: str | None, key: str, problems: _Problems,
                   refs: PoolRefCheck[tuple[int, str]], uids: UidCheck, checked_splits: set[str]) -> str | None:
    """The checks after a droplet validated: its image ``paths`` (local files to pack, ``pool://`` refs), its
    split's name (the explicit one, else the rule's for ``key``: :func:`~.split_rule.split_key`), its
    ``uid``; counts it into ``plan`` and returns its split when it is good."""
    bad = bool(item_problems)
    for i, path in enumerate(paths):  # all strings: the droplet validated
        if is_local_path(path):
            resolved = resolve_image(source.images_root, path)
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
            plan.images[resolved] = (_member_name(len(plan.images), path), st.st_size)
            continue
        if path[:7].lower() != "pool://":
            continue  # a URL (http, s3, file://, …): nothing to check, the reference rule is for pool:// only
        seq = problems.reserve()
        problem = refs.problem((seq, where), path, f"$.image.paths[{i}]")
        if problem is not None:
            problems.add(where, problem, seq)
            bad = True
    for (seq, at), message in refs.resolved():  # a batch of member lookups, of this item and earlier ones
        problems.add(at, message, seq)
    split = explicit or (plan.rule(key) if plan.rule is not None else plan.fallback)
    if split not in checked_splits:
        try:
            check_name("split name", split)
            checked_splits.add(split)
        except ValueError as err:
            problems.add(where, str(err))
            bad = True
    if isinstance(uid, str) and not item_problems:
        uids.add(uid)
    if bad:
        return None
    plan.counts[split] = plan.counts.get(split, 0) + 1
    plan.droplets += 1
    return split


def _with_pool_refs(plan: PublishPlan, source: Source, droplet: ImageAnnotation, pool_name: str) -> ImageAnnotation:
    """``droplet`` with its local image paths rewritten to the ``pool://`` refs of their new members."""
    paths = droplet.image.paths
    if not any(is_local_path(p) for p in paths):
        return droplet
    rewritten = [format_image_ref(pool_name, plan.images[resolve_image(source.images_root, p)][0])
                 if is_local_path(p) else p for p in paths]
    return msgspec.structs.replace(droplet, image=msgspec.structs.replace(droplet.image, paths=rewritten))
