"""One pass over a split, read from the catalog as NDJSON blocks: what the embedded client and the server
both stream.

Why here: the embedded client and ``headwater serve`` must give byte-for-byte the same droplets in the same
order for the same ``(dataset, split, chunk, nchunks, shuffle seed, truncate, offset)``, so both read
through these two functions: :func:`plan_pass` (which stream positions, by the rules of
:mod:`~headwater.catalog.sharding`) and :func:`pass_blocks` (the droplets, a page of the catalog per
block: an index seek and a range scan for an unshuffled pass, the page concatenated into one block by the
database itself; batched primary-key lookups for a shuffled one).

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "catalog.sqlite"))
    >>> _ = cat.create_database("main")
    >>> ds = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate", "classes": {}},
    ...                  splits={"train": [b'{"n":0}', b'{"n":1}', b'{"n":2}']})
    >>> plan = plan_pass(cat, ds.uid, "train", 1, 2)
    >>> b"".join(pass_blocks(cat, ds.uid, "train", plan))
    b'{"n":1}\\n{"n":2}\\n'
"""

from __future__ import annotations

from collections.abc import Iterator

from ..droplet.ndjson import join_lines
from .catalog import Catalog
from .sharding import ShardPlan, split_salt

__all__ = ["PAGE_SIZE", "plan_pass", "pass_blocks"]

PAGE_SIZE = 8192
"""Droplets per block read from the catalog (one query per block)."""


def plan_pass(catalog: Catalog, uid: str, split: str, chunk: int, nchunks: int, *, shuffle_seed: int | None = None,
              truncate: int | None = None) -> ShardPlan:
    """The stream positions of chunk ``chunk`` of ``nchunks`` of a split (NotFoundError for an unknown split)."""
    return ShardPlan(catalog.split_count(uid, split), chunk, nchunks, shuffle_seed=shuffle_seed,
                     salt=split_salt(uid, split), truncate=truncate)


def pass_blocks(catalog: Catalog, uid: str, split: str, plan: ShardPlan, *, offset: int = 0,
                page_size: int = PAGE_SIZE) -> Iterator[bytes]:
    """Blocks of whole NDJSON lines of the pass ``plan`` from its ``offset``-th droplet on."""
    if plan.contiguous:
        positions = plan.ordinal_range(offset)
        return _range_blocks(catalog, uid, split, positions.start, positions.stop, page_size)
    return _shuffled_blocks(catalog, uid, split, plan, offset, page_size)


def _range_blocks(catalog: Catalog, uid: str, split: str, start: int, stop: int, page: int) -> Iterator[bytes]:
    return catalog.read_range_blocks(uid, split, start, stop, batch_size=page)


def _shuffled_blocks(catalog: Catalog, uid: str, split: str, plan: ShardPlan, offset: int,
                     page: int) -> Iterator[bytes]:
    for ordinals in plan.ordinal_batches(offset, size=page):
        yield join_lines(catalog.read_ordinals(uid, split, ordinals))
