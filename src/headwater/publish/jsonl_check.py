"""Pass 1's heavy part for a JSONL source — decode, validate and encode every line — in blocks, on every core.

Why: decoding a droplet into checked structs, checking it against the template and encoding its final
bytes is most of a publish's CPU time, and each line is independent of the others. So the file is read in
blocks of whole lines (~1 MiB) and each block is checked by :class:`BlockChecker` — on worker processes
when the source is big enough to repay starting them (forked: no imports to repeat), in this process
otherwise. A block's answer (:class:`CheckedBlock`) carries only what the rest of pass 1 needs, which is
cheap to send back: for each good line its number, uid, split key, image paths, explicit split and encoded
bytes; the lines the fast path did not pass, whole, for the full path to name their problems; and, when
the template is inferred, the block's template. A worker reads its block from the file itself (the
main process sends an offset and a length; a ``.gz`` block goes as bytes). At most ``2 × workers`` blocks
are in flight, so memory stays bounded however big the file is, and blocks come back in file order.

Example:
    >>> check = BlockChecker(None, strict=False, split_field="split", infer=True)
    >>> block = check(1, b'{"image":{"paths":["a.jpg"]},"classes":{},"split":"val"}\\n\\n[1]\\n')
    >>> block.good[0][:2], block.good[0][4:], block.slow, block.lines
    ((1, None), ('val', False), [(3, b'[1]')], 3)
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult, Pool
from typing import Any

import msgspec

from ..catalog.facet_facts import annotation_facts, pack_facts
from ..droplet import (
    DropletValidator,
    ImageAnnotation,
    ImageAnnotationTemplate,
    encode_droplet_lines,
    encode_template,
    infer_template,
)
from ..droplet.ndjson import LineFramer, split_lines
from .sources import JsonlSource

__all__ = ["BLOCK_SIZE", "PARALLEL_MIN_BYTES", "BlockChecker", "CheckedBlock", "check_jsonl", "default_workers"]

BLOCK_SIZE = 1 << 20
"""Bytes of whole lines checked as one block (~800 realistic droplets)."""

PARALLEL_MIN_BYTES = 16 << 20
"""Sources smaller than this are checked in this process: starting workers would cost more than it saves."""

# a good line: (line number, uid, split key, image paths, explicit split or None, only URLs: no local file
# to pack, no pool:// ref to look up)
GoodLine = tuple[int, str | None, str, list[str], str | None, bool]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")  # parse_image_ref's rule for a scheme


@dataclass(slots=True)
class CheckedBlock:
    """What checking one block found: ``good`` lines (see ``GoodLine``) with their ``encoded`` bytes (one
    blob of lines, same order: one object to send between processes, not hundreds), the ``slow`` lines
    ``(number, line)`` the fast path did not pass, the block's inferred ``template`` (wire dict; None unless
    inferring), how many ``lines`` it held (blank ones too) and, when asked, the good lines' ``facts``."""

    good: list[GoodLine]
    encoded: bytes
    slow: list[tuple[int, bytes]]
    template: dict[str, Any] | None
    lines: int
    facts: list[bytes] | None = None
    """The good lines' packed facets (:func:`~headwater.catalog.facet_facts.pack_facts`, same order), when
    the checker computes them."""

    def droplets(self) -> list[bytes]:
        """The encoded bytes of each good line."""
        return split_lines(self.encoded) if self.encoded else []


class BlockChecker:
    """Checks blocks of JSONL lines with a :class:`~headwater.droplet.DropletValidator` for ``template``
    (``facts``: also packs the good lines' facets, see :class:`CheckedBlock`)."""

    def __init__(self, template: ImageAnnotationTemplate | None, *, strict: bool, split_field: str | None,
                 infer: bool, facts: bool = False) -> None:
        self.validator = DropletValidator(template, strict=strict)
        self.split_field = split_field
        self.infer = infer
        self.facts = facts
        self._source = JsonlSource(os.devnull, split_field=split_field)  # only its split_of() is used

    def __call__(self, first: int, block: bytes) -> CheckedBlock:
        decode, split_of = self.validator.decode, self._source.split_of
        key = msgspec.json.encode(self.split_field) if self.split_field else None
        good: list[GoodLine] = []
        droplets: list[ImageAnnotation] = []
        slow: list[tuple[int, bytes]] = []
        lines = block.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        for number, line in enumerate(lines, first):
            if not line or line.isspace():
                continue
            droplet = decode(line)
            explicit: str | None = None
            if droplet is not None and key is not None and (key in line or b"\\" in line):
                try:
                    explicit = split_of(line)
                except ValueError:
                    droplet = None
            if droplet is None:
                slow.append((number, line))
                continue
            image = droplet.image
            urls = all(_is_url(p) for p in image.paths)
            good.append((number, droplet.uid, droplet.uid or image.uid or image.paths[0], image.paths,
                         explicit or None, urls))
            droplets.append(droplet)
        template = msgspec.json.decode(encode_template(infer_template(droplets))) if self.infer else None
        facts = pack_facts(annotation_facts(droplets)) if self.facts else None
        return CheckedBlock(good, encode_droplet_lines(droplets), slow, template, len(lines), facts)


def _is_url(path: str) -> bool:
    """True for a path :func:`~headwater.droplet.parse_image_ref` calls a URL (a scheme, not pool:// or
    file://): nothing to pack, nothing to look up — said without building an ImageRef."""
    match = _SCHEME.match(path)
    return match is not None and match.group(1).lower() not in ("pool", "file")


def default_workers(source: JsonlSource) -> int:
    """Worker processes for ``source``: every usable core for a big source, none (this process) else."""
    try:
        size = os.path.getsize(source.path)
    except OSError:
        return 0
    if size < PARALLEL_MIN_BYTES:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0


def _blocks(source: JsonlSource) -> Iterator[tuple[int, int, bytes]]:
    """``(number of its first line, its offset in the file or -1, block of whole lines)`` of the source, in
    order. The offset is -1 when the block's bytes are not the file's own (a ``.gz`` file, or a last line the
    framer ended with a newline): a worker then needs the bytes themselves."""
    framer = LineFramer()
    number, offset = 1, 0
    plain = not source.path.endswith(".gz")
    with source._open() as f:
        while True:
            chunk = f.read(BLOCK_SIZE)
            block = framer.push(chunk) if chunk else framer.finish()
            if block:
                yield number, offset if plain and chunk else -1, block
                number += block.count(b"\n")
                offset += len(block)
            if not chunk:
                return


_WORKER: BlockChecker | None = None
_FILE: int | None = None  # the worker's own descriptor of the source file, to read its blocks from


def _start_worker(checker: BlockChecker, path: str) -> None:
    global _WORKER, _FILE
    _WORKER = checker
    _FILE = os.open(path, os.O_RDONLY)


def _check_in_worker(first: int, offset: int, block: bytes | int) -> CheckedBlock:
    """Check a block given as its bytes, or as its length at ``offset`` in the file (read here from the page
    cache: the main process then sends a few numbers instead of a megabyte)."""
    assert _WORKER is not None and _FILE is not None
    if isinstance(block, int):
        data = os.pread(_FILE, block, offset)
        if len(data) != block:
            raise RuntimeError(f"the source changed while publishing (block at byte {offset} is short)")
        return _WORKER(first, data)
    return _WORKER(first, block)


def check_jsonl(source: JsonlSource, template: ImageAnnotationTemplate | None, *, strict: bool, infer: bool,
                workers: int | None = None, facts: bool = False) -> Iterator[CheckedBlock]:
    """Every block of ``source`` checked, in file order (see the module docstring). ``workers``: processes
    to use (None: :func:`default_workers`; 0: this process). ``facts``: pack the good lines' facets too, when
    on worker processes (in this process that would only move the work, not take it off the critical path)."""
    if workers is None:
        workers = default_workers(source)
    checker = BlockChecker(template, strict=strict, split_field=source.split_field, infer=infer,
                           facts=facts and workers > 0)
    if workers <= 0:
        for first, _offset, block in _blocks(source):
            yield checker(first, block)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool: Pool = context.Pool(workers, initializer=_start_worker, initargs=(checker, source.path))
    try:
        pending: deque[AsyncResult[CheckedBlock]] = deque()
        for first, offset, block in _blocks(source):
            task = (first, offset, len(block) if offset >= 0 else block)
            pending.append(pool.apply_async(_check_in_worker, task))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
    finally:
        pool.terminate()
        pool.join()
