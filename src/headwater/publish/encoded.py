"""The canonical bytes of a source's good droplets, kept from pass 1 for pass 2: each droplet decoded once.

Why: pass 1 of a publish (:mod:`.validation`) already decodes, validates and can encode every droplet of
a JSONL source; reading and decoding the file a second time to write it cost as much again. So pass 1
appends each droplet's final bytes (local image paths already rewritten to ``pool://`` refs) and its split
here, and pass 2 (:mod:`.commit`) hands them to the catalog in batches, in source order.

Memory stays bounded (a 10M-droplet source must not sit in memory): the bytes go to a spooled temporary
file — in memory up to ``max_memory`` bytes (64 MiB), then on disk — written in chunks of joined lines;
the splits are one 32-bit index a droplet.

Example:
    >>> kept = EncodedDroplets()
    >>> for split, data in [("train", b"a"), ("train", b"b"), ("val", b"c"), ("train", b"d")]:
    ...     kept.add(split, data)
    >>> list(kept.batches()), len(kept)
    ([('train', [b'a', b'b']), ('val', [b'c']), ('train', [b'd'])], 4)
    >>> kept.close()
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator

from ..droplet.ndjson import LineFramer, split_lines

__all__ = ["EncodedDroplets"]

_CHUNK = 2048  # droplets joined into one write
_READ = 8 << 20  # bytes read back at a time


class EncodedDroplets:
    """Droplet bytes (compact JSON, no newline) with their split, in the order added; read back by
    :meth:`batches`."""

    def __init__(self, max_memory: int = 64 << 20) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=max_memory)  # noqa: SIM115 - closed by close()
        self._chunk: list[bytes] = []
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._splits = array("I")

    def add(self, split: str, data: bytes) -> None:
        """Append one droplet's bytes (they must hold no newline: the catalog's rule too)."""
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

    def batches(self) -> Iterator[tuple[str, list[bytes]]]:
        """``(split, droplets)`` runs in the order added: each run one split, at most ~8 MiB of droplets."""
        self._flush()
        self._file.seek(0)
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
                    yield names[indexes[start]], lines[start:end]
                    start = end
        if done != len(splits) or framer.carry:
            raise RuntimeError(f"kept {len(splits)} droplets but read back {done}")

    def close(self) -> None:
        self._file.close()
