"""Answering a :class:`~headwater.catalog.facets.SplitFilter` from a split's facets, never from its droplets.

What each condition costs (``n``: droplets in the split; the facets are those of :mod:`.facet_index`):

* ``present`` / ``counts`` — the class's postings (one row, ~8 bytes a droplet where the class is present),
  read once and then cached; then an ``n``-byte mask. No droplet is read.
* confidence range — the boxes' confidences of the classes involved (12 bytes a box carrying one, sorted by
  confidence), cached; then a binary search and a slice: the cost grows with the boxes in the range.
* ``metadata`` — a key with few distinct values: the value's postings (one row, 4 bytes a matching droplet),
  cached; a key with many: one primary-key range of ``facet_metadata`` (each value matches few droplets).
* ``uid`` prefix — one primary-key range of ``facet_uids``: the cost grows with the number of *matching*
  droplets (a prefix shared by the whole split reads every uid row once, then it is cached), not with ``n``.
* the conditions are combined as boolean masks over the split (numpy, ~1 ms per million droplets);
  ``total`` is exact; a page is a slice of the matches; ``sample`` is a seeded
  :class:`~headwater.catalog.sharding.Permutation` of the matches, so every page of a sample is consistent and
  costs only its own length.

The cache (:class:`FacetCache`) holds loaded arrays under a byte budget (``HEADWATER_FACET_CACHE_BYTES``,
default 256 MiB a :class:`~headwater.catalog.Catalog`), keyed by dataset uid and split (a published split never
changes, so nothing is ever stale); what is larger than the budget is loaded for each query.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, func, select

from .errors import CatalogError, FilterError
from .facet_index import encode_text
from .facets import FilterPage, SplitFilter, SplitStats
from .models import facet_classes, facet_metadata, facet_uids, facet_values, split_facets
from .sharding import Permutation

__all__ = ["FacetCache", "FacetSearch", "DEFAULT_CACHE_BYTES", "default_cache_bytes"]

DEFAULT_CACHE_BYTES = 256 * 1024 * 1024


def default_cache_bytes() -> int:
    """The facet cache's byte budget: ``HEADWATER_FACET_CACHE_BYTES``, else 256 MiB (a common class of a
    10M-droplet split holds ~80 MB of postings, its boxes ~12 bytes each)."""
    raw = os.environ.get("HEADWATER_FACET_CACHE_BYTES")
    if not raw:
        return DEFAULT_CACHE_BYTES
    try:
        return int(raw)
    except ValueError:
        raise CatalogError(f"HEADWATER_FACET_CACHE_BYTES must be an integer, got {raw!r}") from None


def _fetch(conn: Connection, query: Any) -> list[Any]:
    """The rows of ``query``; on PostgreSQL ``bytea`` comes in the binary format, not as hex text (measured:
    loading a class's postings of a 1M-droplet split took ~10x longer as text)."""
    if conn.dialect.name != "postgresql":
        return list(conn.execute(query).all())
    compiled = query.compile(dialect=conn.dialect)
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # None once closed
    try:
        cursor.execute(compiled.string, compiled.params, binary=True)
        return list(cursor.fetchall())
    finally:
        cursor.close()


class FacetCache:
    """A thread-safe LRU of loaded facet values under a byte budget (values report their size when stored).

    >>> cache = FacetCache(100)
    >>> cache.get(("a",), lambda: (b"x" * 60, 60))
    b'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
    >>> _ = cache.get(("b",), lambda: (b"y" * 60, 60))  # over budget: "a" goes
    >>> ("a",) in cache, ("b",) in cache
    (False, True)
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = default_cache_bytes() if max_bytes is None else max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable, load: Callable[[], tuple[Any, int]]) -> Any:
        """The value under ``key``, loaded by ``load() -> (value, size in bytes)`` when missing."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found[0]
        value, size = load()  # outside the lock: a slow load does not stop other threads' hits
        with self._lock:
            if key not in self._items and size <= self.max_bytes:
                self._items[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
        return value


_PARTS = {  # a part of a class's row: its columns and their element types
    "droplets": (("ordinals", "counts"), ("<u4", "<u4")),  # where the class is present, instances there
    "boxes": (("box_ordinals", "confidences"), ("<u4", "<f8")),  # boxes with a confidence, by confidence
}


class FacetSearch:
    """Filters and statistics of one split (``split_id`` with ``count`` droplets, of dataset ``uid``), reading
    through ``connect()`` (a context manager yielding a connection) and caching in ``cache``."""

    def __init__(self, connect: Callable[[], AbstractContextManager[Connection]], cache: FacetCache, *,
                 uid: str, split: str, split_id: int, count: int) -> None:
        self._connect = connect
        self._cache = cache
        self._uid = uid
        self._split = split
        self._split_id = split_id
        self._count = count

    # -- loading ---------------------------------------------------------------------------------
    def _key(self, *parts: Hashable) -> tuple[Hashable, ...]:
        return (self._uid, self._split, *parts)

    def _class_positions(self) -> dict[str, int]:
        def load() -> tuple[dict[str, int], int]:
            with self._connect() as conn:
                self._check_indexed(conn)
                rows = conn.execute(select(facet_classes.c.name, facet_classes.c.position)
                                    .where(facet_classes.c.split_id == self._split_id)).all()
            names = {bytes(name).decode("utf-8", "surrogatepass"): int(position) for name, position in rows}
            return names, 100 + sum(len(n) + 80 for n in names)
        found: dict[str, int] = self._cache.get(self._key("classes"), load)
        return found

    def _class_part(self, name: str, part: str) -> tuple[Any, Any] | None:
        """Two arrays of the class's row (see ``_PARTS``), loaded apart: a class or count filter never reads the
        boxes, the larger part. None: the class is in no droplet of the split."""
        position = self._class_positions().get(name)
        if position is None:
            return None
        columns, types = _PARTS[part]

        def load() -> tuple[tuple[Any, Any], int]:
            import numpy as np

            c = facet_classes.c
            with self._connect() as conn:
                (row,) = _fetch(conn, select(*(c[column] for column in columns))
                                .where(c.split_id == self._split_id, c.position == position))
            first, second = (bytes(b) for b in row)
            return ((np.frombuffer(first, dtype=types[0]), np.frombuffer(second, dtype=types[1])),
                    200 + len(first) + len(second))
        found: tuple[Any, Any] = self._cache.get(self._key(part, position), load)
        return found

    def _range_ordinals(self, kind: str, where: Any, key: Hashable) -> Any:
        """The ordinals of the ``facet_uids`` (kind ``uid``) or ``facet_metadata`` rows of the split matching
        ``where`` (cached under ``key``)."""
        def load() -> tuple[Any, int]:
            import numpy as np

            table = facet_uids if kind == "uid" else facet_metadata
            with self._connect() as conn:
                self._check_indexed(conn)
                ordinals = conn.execute(select(table.c.ordinal).where(table.c.split_id == self._split_id, where)
                                        ).scalars().all()
            array = np.fromiter(ordinals, dtype=np.int64, count=len(ordinals))
            return array, 100 + array.nbytes
        return self._cache.get(self._key(kind, key), load)

    def _metadata_ordinals(self, key: bytes, value: bytes) -> Any:
        """The ordinals whose metadata ``key`` is ``value``: the value's posting when the key has few values,
        else the matching rows (see :mod:`.facet_index`)."""
        def load() -> tuple[Any, int]:
            import numpy as np

            c = facet_values.c
            with self._connect() as conn:
                rows = _fetch(conn, select(c.ordinals).where(c.split_id == self._split_id, c.key == key,
                                                             c.value == value))
            if not rows:
                return None, 100
            blob = rows[0][0]
            array = np.frombuffer(bytes(blob), dtype="<u4")
            return array, 100 + array.nbytes
        posted = self._cache.get(self._key("value", key, value), load)
        if posted is not None:
            return posted
        return self._range_ordinals("meta", and_(facet_metadata.c.key == key, facet_metadata.c.value == value),
                                    (key, value))

    def _check_indexed(self, conn: Connection) -> None:
        if conn.execute(select(split_facets.c.split_id).where(split_facets.c.split_id == self._split_id)).first() \
                is None:
            raise CatalogError(f"split {self._split!r} of dataset {self._uid!r} has no facet index (the catalog's "
                               "migrations index every split: was it written around the publisher?)")

    # -- the API ---------------------------------------------------------------------------------
    def stats(self) -> SplitStats:
        """The split's :class:`SplitStats` (stored at publish)."""
        def load() -> tuple[SplitStats, int]:
            with self._connect() as conn:
                text = conn.execute(select(split_facets.c.stats)
                                    .where(split_facets.c.split_id == self._split_id)).scalar()
                if text is None:
                    self._check_indexed(conn)
                    raise AssertionError("unreachable: the split has facets but no statistics")
            stats = SplitStats.from_json(msgspec.json.decode(text))
            return stats, 1000 + len(text)
        found: SplitStats = self._cache.get(self._key("stats"), load)
        return found

    def ordinal_of(self, droplet_uid: str) -> int | None:
        """The first ordinal whose droplet has this uid, or None."""
        with self._connect() as conn:
            found = conn.execute(select(func.min(facet_uids.c.ordinal)).where(
                facet_uids.c.split_id == self._split_id, facet_uids.c.uid == encode_text(droplet_uid))).scalar()
            if found is None:
                self._check_indexed(conn)
        return int(found) if found is not None else None

    def matches(self, flt: SplitFilter) -> Any:
        """The ordinals matching ``flt``'s conditions (its sample aside), ascending, as a numpy array; None
        when there is no condition (every ordinal matches)."""
        import numpy as np

        if flt.is_empty:
            return None
        n = self._count
        mask: Any = None

        def both(condition: Any) -> None:
            nonlocal mask
            mask = condition if mask is None else np.logical_and(mask, condition, out=mask)

        for name in flt.present:
            droplets = self._class_part(name, "droplets")
            if droplets is None:
                return np.empty(0, dtype=np.int64)
            condition = np.zeros(n, dtype=bool)
            condition[droplets[0]] = True
            both(condition)
        for count in flt.counts:
            droplets = self._class_part(count.name, "droplets")
            counts = np.zeros(n, dtype=np.uint32)
            if droplets is not None:
                counts[droplets[0]] = droplets[1]
            condition = np.ones(n, dtype=bool)
            if count.min is not None:
                condition &= counts >= count.min
            if count.max is not None:
                condition &= counts <= count.max
            both(condition)
        if flt.min_confidence is not None or flt.max_confidence is not None:
            names = flt.present or tuple(self._class_positions())
            condition = np.zeros(n, dtype=bool)
            for name in dict.fromkeys(names):
                boxes = self._class_part(name, "boxes")
                if boxes is None:
                    continue
                box_ordinals, confidences = boxes  # confidences ascending: the range is one slice
                low = 0 if flt.min_confidence is None else \
                    int(np.searchsorted(confidences, flt.min_confidence, side="left"))
                high = len(confidences) if flt.max_confidence is None else \
                    int(np.searchsorted(confidences, flt.max_confidence, side="right"))
                condition[box_ordinals[low:high]] = True
            both(condition)
        if flt.uid is not None:
            both(self._mask(self._uid_prefix(encode_text(flt.uid))))
        for key, value in flt.metadata:
            both(self._mask(self._metadata_ordinals(encode_text(key), encode_text(value))))
        return np.flatnonzero(mask)

    def _mask(self, ordinals: Any) -> Any:
        import numpy as np

        condition = np.zeros(self._count, dtype=bool)
        condition[ordinals] = True
        return condition

    def _uid_prefix(self, prefix: bytes) -> Any:
        c = facet_uids.c
        where = c.uid >= prefix
        upper = prefix.rstrip(b"\xff")
        if upper:  # the first byte string after every string starting with the prefix
            where = and_(where, c.uid < upper[:-1] + bytes([upper[-1] + 1]))
        return self._range_ordinals("uid", where, prefix)

    def filter(self, flt: SplitFilter, *, offset: int = 0, limit: int = 60) -> FilterPage:
        """A page of the droplets matching ``flt`` (see :meth:`headwater.catalog.Catalog.filter_split`)."""
        for what, value in (("offset", offset), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FilterError(f"{what} must be an integer >= 0, got {value!r}")
        found = self.matches(flt)
        matched = self._count if found is None else len(found)
        total = matched if flt.sample is None else min(flt.sample, matched)
        stop = min(total, offset + limit)
        if offset >= stop:
            return FilterPage(total=total, ordinals=[])
        if flt.sample is None:
            positions: Any = range(offset, stop)
        else:
            salt = f"{self._uid}/{self._split}/sample"
            positions = Permutation(matched, flt.seed, salt).take(offset, stop)
        if found is None:
            return FilterPage(total=total, ordinals=[int(p) for p in positions])
        return FilterPage(total=total, ordinals=[int(found[p]) for p in positions])
