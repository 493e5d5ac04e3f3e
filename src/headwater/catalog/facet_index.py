"""Facets of a split, computed while its droplets are written: what filters and statistics read later.

Why at publish: a viewer that filters a 1,000,000-droplet split must not read the split for each page view,
and a published split never changes — so what filters need is extracted once, from the bytes the publisher is
writing anyway, and stored beside them in the same transaction (tables in :mod:`.models`):

* ``facet_classes`` — per (split, class) its postings: the ordinals where the class is present with their
  instance counts, and every instance box's confidence with its ordinal, sorted by confidence (little-endian
  arrays, a few bytes a droplet, loaded and cached whole by :mod:`.facet_search`);
* ``facet_uids`` — per droplet its uid (the droplet's ``uid``, else its image's): prefix search and
  ``ordinal_of`` are one primary-key range;
* ``facet_values`` / ``facet_metadata`` — top-level scalar metadata (strings as they are, numbers and booleans
  as JSON writes them). A key with at most :data:`MAX_POSTED_VALUES` distinct values in the split (a camera, a
  source, a weather) gets one row per value holding the ordinals that have it (``facet_values``: a few bytes a
  droplet, ``key=value`` is one row); a key with more (a file name, a timestamp) gets one ``facet_metadata``
  row per droplet, from the point it passes the bound (``key=value`` is one primary-key range, and each of so
  many values matches few droplets);
* ``split_facets`` — the split's :class:`~headwater.catalog.facets.SplitStats` as JSON.

Each droplet is decoded once and digested into what facets need (:mod:`.facet_facts`). Where droplets are
decoded anyway on other processes (``headwater publish``'s workers),
:func:`~.facet_facts.annotation_facts` digests the ImageAnnotations decoded there (no second decode) and
:func:`~.facet_facts.pack_facts` packs each as MessagePack (~120 bytes for a 1.3 KB droplet: unpacked and accumulated
in ~1.7 µs, against ~5 µs decoded), and the publisher only accumulates them (``SplitFacets.add(..., facts=...)``).

Bytes that are not an ImageAnnotation (the catalog stores any JSON line) are indexed as a droplet without
classes, uid or metadata. Keys, values and uids longer than :data:`~.facet_facts.MAX_INDEXED_BYTES` are not indexed
(database index entries have a size limit).

Example:
    >>> facets = SplitFacets()
    >>> uids, meta = facets.add(1, 0, [b'{"uid":"a","image":{"paths":[]},"classes":{"cat":{"instances":[{}]}},'
    ...                                b'"metadata":{"year":2021}}', b'1'])
    >>> uids, meta, facets.stats().instances, facets.stats().instances_per_image
    ([(1, b'a', 0)], [], {'cat': 1}, {0: 1, 1: 1})
    >>> [(row["key"], row["value"], row["droplets"]) for row in facets.value_rows(1)]
    [(b'year', b'2021', 1)]
"""

from __future__ import annotations

import gc
import sys
from array import array
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, insert

from .facet_facts import MAX_INDEXED_BYTES, droplet_facts, encode_text, unpack_facts
from .facets import HISTOGRAM_BINS, SplitStats
from .models import facet_classes, facet_values, split_facets

__all__ = ["SplitFacets", "FacetRows", "write_facet_rows", "write_split_facets", "MAX_INDEXED_BYTES",
           "MAX_POSTED_VALUES", "encode_text"]

MAX_POSTED_VALUES = 256
_UINT32_MAX = 2**32 - 1
_decode_any = msgspec.json.decode
_encode = msgspec.json.encode
_SQLITE_UIDS = "INSERT INTO facet_uids (split_id, uid, ordinal) VALUES (?, ?, ?)"
_SQLITE_META = "INSERT INTO facet_metadata (split_id, key, value, ordinal) VALUES (?, ?, ?, ?)"
_PG_UIDS = "COPY facet_uids (split_id, uid, ordinal) FROM STDIN (FORMAT BINARY)"
_PG_META = "COPY facet_metadata (split_id, key, value, ordinal) FROM STDIN (FORMAT BINARY)"

FacetRows = list[tuple[Any, ...]]
"""Rows of ``facet_uids`` (``split_id, uid, ordinal``) or ``facet_metadata`` (``split_id, key, value, ordinal``)."""


class _ClassPostings:
    """One class's facets over a split, growing as droplets are added."""

    __slots__ = ("ordinals", "counts", "box_ordinals", "confidences", "sizes")

    def __init__(self) -> None:
        self.ordinals = array("I")
        self.counts = array("I")
        self.box_ordinals = array("I")
        self.confidences = array("d")
        self.sizes = array("d")  # sqrt(w * h) of every box, for the size histogram


def _scalar_text(raw: bytes) -> bytes | None:
    """A metadata value as it is indexed (None: not a scalar, or null)."""
    first = raw[:1]
    if first == b'"':
        return encode_text(_decode_any(raw))
    if first in (b"{", b"[", b"n", b""):
        return None
    return _encode(_decode_any(raw))  # numbers and booleans as JSON writes them (1.50 -> 1.5)


def _histogram(values: Any) -> list[int]:
    import numpy as np

    bins = np.nan_to_num(np.asarray(values, dtype=np.float64) * HISTOGRAM_BINS, nan=HISTOGRAM_BINS - 1)
    index = np.clip(np.floor(bins), 0, HISTOGRAM_BINS - 1).astype(np.int64)
    return [int(n) for n in np.bincount(index, minlength=HISTOGRAM_BINS)]


def _little_endian(values: array[Any]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover - every machine we run on is little-endian
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


class SplitFacets:
    """The facets of one split, accumulated droplet by droplet in ordinal order (see the module docstring)."""

    def __init__(self) -> None:
        self.count = 0
        self._classes: dict[str, _ClassPostings] = {}
        self._per_image: dict[int, int] = {}
        self._values: dict[bytes, dict[bytes, array[int]]] = {}  # key → value → ordinals, while few values
        self._many: set[bytes] = set()  # keys past MAX_POSTED_VALUES: one row a droplet
        self._texts: dict[bytes, bytes | None] = {}  # raw JSON → indexed text, for repeated values
        self._keys: dict[str, bytes | None] = {}  # key → stored key (None: too long)

    def add(self, split_id: int, first: int, items: Sequence[bytes],
            facts: Sequence[bytes] | None = None) -> tuple[FacetRows, FacetRows]:
        """Take droplets ``first, first + 1, …``; return their ``facet_uids`` and ``facet_metadata`` rows (the
        caller writes them, see :func:`write_facet_rows`). The per-class postings stay here until
        :func:`write_split_facets`. ``facts``: the droplets' :func:`pack_facts`, computed where they were
        decoded anyway (a publish's worker processes) — then ``items`` are not decoded here again."""
        if first != self.count:
            raise ValueError(f"facets are added in ordinal order: expected ordinal {self.count}, got {first}")
        # Why the collector is paused: decoding a batch makes ~10 tuples a droplet, and each collection they
        # trigger walks them all again — measured, it doubled the cost of this method. Nothing here makes a
        # cycle, so everything is freed by reference counting when the batch is done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._add(split_id, first, items, facts)
        finally:
            if collecting:
                gc.enable()

    def _add(self, split_id: int, first: int, items: Sequence[bytes],
             facts: Sequence[bytes] | None) -> tuple[FacetRows, FacetRows]:
        if facts is None:
            digests = droplet_facts(items)
        else:
            if len(facts) != len(items):
                raise ValueError(f"{len(items)} droplets but {len(facts)} facts")
            digests = map(unpack_facts, facts)
        classes, per_image = self._classes, self._per_image
        uid_rows: FacetRows = []
        meta_rows: FacetRows = []
        ordinal = first
        for digest in digests:
            total = 0
            if digest is not None:
                uid, present, metadata = digest
                for name, n, sizes, confidences in present:
                    postings = classes.get(name)
                    if postings is None:
                        postings = classes[name] = _ClassPostings()
                    postings.ordinals.append(ordinal)
                    postings.counts.append(min(n, _UINT32_MAX))
                    total += n
                    if sizes:
                        postings.sizes.extend(sizes)
                    if confidences:
                        postings.box_ordinals.extend([ordinal] * len(confidences))
                        postings.confidences.extend(confidences)
                if uid is not None:
                    uid_rows.append((split_id, uid, ordinal))
                if metadata:
                    self._metadata(split_id, ordinal, metadata, meta_rows)
            per_image[total] = per_image.get(total, 0) + 1
            ordinal += 1
        self.count = ordinal
        return uid_rows, meta_rows

    def _metadata(self, split_id: int, ordinal: int, metadata: dict[str, bytes], out: FacetRows) -> None:
        texts, keys, values = self._texts, self._keys, self._values
        for key, data in metadata.items():
            if data in texts:
                value = texts[data]
            else:
                value = _scalar_text(data)
                if value is not None and len(value) > MAX_INDEXED_BYTES:
                    value = None
                if len(texts) >= 65536:
                    texts.clear()
                texts[data] = value
            if value is None:
                continue
            if key in keys:
                stored = keys[key]
            else:
                stored = keys[key] = encode_text(key)
                if len(stored) > MAX_INDEXED_BYTES:
                    stored = keys[key] = None
            if stored is None:
                continue
            if stored in self._many:
                out.append((split_id, stored, value, ordinal))
                continue
            postings = values.setdefault(stored, {})
            ordinals = postings.get(value)
            if ordinals is None:
                if len(postings) >= MAX_POSTED_VALUES:  # too many values: this key becomes rows
                    self._many.add(stored)
                    del values[stored]
                    out += [(split_id, stored, v, o) for v, posted in postings.items() for o in posted]
                    out.append((split_id, stored, value, ordinal))
                    continue
                ordinals = postings[value] = array("I")
            ordinals.append(ordinal)

    def value_rows(self, split_id: int) -> list[dict[str, Any]]:
        """The ``facet_values`` rows of the split (keys with few distinct values)."""
        return [{"split_id": split_id, "key": key, "value": value, "droplets": len(ordinals),
                 "ordinals": _little_endian(ordinals)}
                for key, postings in self._values.items() for value, ordinals in postings.items()]

    def stats(self) -> SplitStats:
        """The split's statistics so far."""
        names = sorted(self._classes)
        confidences = [p.confidences for p in self._classes.values() if p.confidences]
        return SplitStats(
            count=self.count,
            instances={n: int(sum(self._classes[n].counts)) for n in names},
            images={n: len(self._classes[n].ordinals) for n in names},
            instances_per_image=dict(sorted(self._per_image.items())),
            box_sizes={n: _histogram(self._classes[n].sizes) for n in names},
            confidence=_histogram([c for part in confidences for c in part]) if confidences else None,
        )

    def class_rows(self, split_id: int) -> list[dict[str, Any]]:
        """The ``facet_classes`` rows of the split."""
        import numpy as np

        rows = []
        for position, (name, p) in enumerate(self._classes.items()):
            # boxes sorted by confidence (stable: ties keep ordinal order), so that a confidence range is one
            # slice found by binary search
            confidences = np.frombuffer(p.confidences, dtype=np.float64)
            order = np.argsort(confidences, kind="stable")
            box_ordinals = np.frombuffer(p.box_ordinals, dtype=np.uint32)[order]
            rows.append({"split_id": split_id, "position": position, "name": encode_text(name),
                         "droplets": len(p.ordinals), "ordinals": _little_endian(p.ordinals),
                         "counts": _little_endian(p.counts),
                         "box_ordinals": box_ordinals.astype("<u4").tobytes(),
                         "confidences": confidences[order].astype("<f8").tobytes()})
        return rows


def write_facet_rows(conn: Connection, uid_rows: FacetRows, meta_rows: FacetRows) -> None:
    """Insert ``facet_uids`` and ``facet_metadata`` rows in bulk (SQLite ``executemany``, PostgreSQL ``COPY``)
    in the connection's transaction; the lists are cleared."""
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # None once closed
        try:
            for rows, sql, types in ((uid_rows, _PG_UIDS, ["int4", "bytea", "int8"]),
                                     (meta_rows, _PG_META, ["int4", "bytea", "bytea", "int8"])):
                if rows:
                    with cursor.copy(sql) as copy:
                        copy.set_types(types)
                        for row in rows:
                            copy.write_row(row)
        finally:
            cursor.close()
    else:
        if uid_rows:
            conn.exec_driver_sql(_SQLITE_UIDS, uid_rows)
        if meta_rows:
            conn.exec_driver_sql(_SQLITE_META, meta_rows)
    uid_rows.clear()
    meta_rows.clear()


def write_split_facets(conn: Connection, split_id: int, facets: SplitFacets) -> None:
    """Insert a finished split's ``facet_classes`` rows and its ``split_facets`` statistics."""
    rows = facets.class_rows(split_id)
    if rows:
        conn.execute(insert(facet_classes), rows)
    rows = facets.value_rows(split_id)
    if rows:
        conn.execute(insert(facet_values), rows)
    conn.execute(insert(split_facets).values(split_id=split_id,
                                             stats=_encode(facets.stats().to_json()).decode("utf-8")))
