"""The canonical bytes of a source's good droplets, kept from pass 1 for pass 2: each droplet decoded once.

Why: pass 1 of a publish (:mod:`.validation`) already decodes, validates and can encode every droplet of
a JSONL source; reading and decoding the file a second time to write it cost as much again. So pass 1
appends each droplet's final bytes (local image paths already rewritten to ``pool://`` refs) and its split
here, and pass 2 (:mod:`.commit`) hands them to the catalog in batches, in source order.

Memory stays bounded (a 10M-droplet source must not sit in memory): the bytes go to a spooled temporary
file — in memory up to ``max_memory`` bytes (64 MiB), then on disk — written in chunks of joined lines;
the splits are one 32-bit index a droplet.

Facets (``facts=True``): pass 1 also keeps each droplet's packed facets
(:func:`~headwater.catalog.facet_facts.pack_facts`, computed by the worker processes that decoded it), in a
second spooled file, so that pass 2 hands them to the catalog with the bytes and the publishing process does
not decode the droplets again to index them.

Example:
    >>> kept = EncodedDroplets()
    >>> for split, data in [("train", b"a"), ("train", b"b"), ("val", b"c"), ("train", b"d")]:
    ...     kept.add(split, data)
    >>> [(split, lines) for split, lines, _facts in kept.batches()], len(kept)
    ([('train', [b'a', b'b']), ('val', [b'c']), ('train', [b'd'])], 4)
    >>> kept.close()
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from itertools import islice
from typing import IO

import msgspec

from ..catalog.facet_facts import droplet_facts, pack_facts
from ..droplet.ndjson import LineFramer, split_lines

__all__ = ["EncodedDroplets"]

_CHUNK = 2048  # droplets joined into one write
_READ = 8 << 20  # bytes read back at a time


class EncodedDroplets:
    """Droplet bytes (compact JSON, no newline) with their split, in the order added; read back by
    :meth:`batches`."""

    def __init__(self, max_memory: int = 64 << 20, *, facts: bool = False) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=max_memory)  # noqa: SIM115 - closed by close()
        self._chunk: list[bytes] = []
        self._facts_file: IO[bytes] | None = (
            tempfile.SpooledTemporaryFile(max_size=max_memory // 4) if facts else None)  # noqa: SIM115
        self._facts: list[bytes] = []
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._splits = array("I")

    def add(self, split: str, data: bytes, facts: bytes | None = None) -> None:
        """Append one droplet's bytes (they must hold no newline: the catalog's rule too) and, when kept, its
        packed ``facts`` (None: computed here from ``data``)."""
        if self._facts_file is not None:
            self._facts.append(facts if facts is not None else pack_facts(droplet_facts([data]))[0])
        index = self._index.get(split)
        if index is None:
            index = self._index[split] = len(self._names)
            self._names.append(split)
        self._splits.append(index)
        self._chunk.append(data)
        if len(self._chunk) >= _CHUNK:
            self._flush()

    def __len__(self) -> int:
        return len(self._splits)

    def _flush(self) -> None:
        if self._chunk:
            self._chunk.append(b"")
            self._file.write(b"\n".join(self._chunk))
            self._chunk = []
        if self._facts and self._facts_file is not None:  # a chunk of facts: its length, then a MessagePack array
            blob = msgspec.msgpack.encode(self._facts)
            self._facts_file.write(len(blob).to_bytes(8, "little") + blob)
            self._facts = []

    def _read_facts(self) -> Iterator[bytes]:
        assert self._facts_file is not None
        self._facts_file.seek(0)
        while head := self._facts_file.read(8):
            yield from msgspec.msgpack.decode(self._facts_file.read(int.from_bytes(head, "little")),
                                              type=list[bytes])

    def batches(self) -> Iterator[tuple[str, list[bytes], list[bytes] | None]]:
        """``(split, droplets, their packed facts or None)`` runs in the order added: each run one split, at
        most ~8 MiB of droplets."""
        self._flush()
        self._file.seek(0)
        facts = self._read_facts() if self._facts_file is not None else None
        framer = LineFramer()
        splits, names = self._splits, self._names
        done = 0
        while True:
            block = self._file.read(_READ)
            if not block:
                break
            lines = split_lines(framer.push(block))
            indexes = splits[done:done + len(lines)]
            done += len(lines)
            start = 0
            for end in range(1, len(lines) + 1):
                if end == len(lines) or indexes[end] != indexes[start]:
                    yield (names[indexes[start]], lines[start:end],
                           None if facts is None else list(islice(facts, end - start)))
                    start = end
        if done != len(splits) or framer.carry or (facts is not None and next(facts, None) is not None):
            raise RuntimeError(f"kept {len(splits)} droplets but read back {done}")

    def close(self) -> None:
        self._file.close()
        if self._facts_file is not None:
            self._facts_file.close()
