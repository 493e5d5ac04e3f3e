"""NDJSON framing: bytes in, blocks of whole lines out — written once for every stream of droplets.

A split stream is NDJSON, one droplet a line, and it moves through headwater in **blocks**: ``bytes``
holding whole lines, each ending with ``\\n`` (thousands of droplets per block, so a consumer pays per
block — one cache write, one decode loop — not per droplet). Bytes arrive cut anywhere (a socket read, a
file read); :class:`LineFramer` keeps the partial last line (the *carry*) until the rest arrives. The
helpers below do the other things every stream needs: split a block into lines, join lines into a block,
skip the first lines of a stream, stop after a number of lines.

Example:
    >>> framer = LineFramer()
    >>> framer.push(b'{"a":1}\\n{"a"'), framer.push(b':2}\\n'), framer.carry
    (b'{"a":1}\\n', b'{"a":2}\\n', b'')
    >>> list(frame_lines([b"x\\ny", b"\\nz"]))
    [b'x\\n', b'y\\n', b'z\\n']
    >>> split_lines(join_lines([b"a", b"b"]))
    [b'a', b'b']
    >>> list(take_lines(skip_lines([b"1\\n2\\n3\\n", b"4\\n"], 1), 2))
    [b'2\\n3\\n']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["LineFramer", "frame_lines", "split_lines", "join_lines", "iter_lines", "count_lines", "skip_lines",
           "take_lines"]


class LineFramer:
    """Turn bytes cut anywhere into blocks of whole lines; the partial last line waits in :attr:`carry`."""

    __slots__ = ("carry",)

    def __init__(self) -> None:
        self.carry = b""

    def push(self, data: bytes) -> bytes:
        """The whole lines completed by ``data`` (``b""`` when none is complete yet), copied once."""
        if not self.carry and data.endswith(b"\n"):
            return data  # already whole lines: no copy at all
        return self.push_pieces([data])

    def push_pieces(self, pieces: list[bytes]) -> bytes:
        """The whole lines completed by ``pieces`` (bytes that follow each other), joined with one copy.

        Why: a socket gives a body in pieces of ~64 KB; joining them and then cutting at the last newline
        (:meth:`push`) would copy each byte two more times.

        >>> framer = LineFramer()
        >>> framer.push_pieces([b'{"a":1}\\n{"a"', b':2}\\n{', b'"a"']), framer.carry
        (b'{"a":1}\\n{"a":2}\\n', b'{"a"')
        """
        for i in range(len(pieces) - 1, -1, -1):
            cut = pieces[i].rfind(b"\n") + 1
            if cut:
                last = pieces[i]
                block = b"".join([self.carry, *pieces[:i], memoryview(last)[:cut]])
                self.carry = b"".join([last[cut:], *pieces[i + 1:]])
                return block
        self.carry = b"".join([self.carry, *pieces])
        return b""

    def finish(self) -> bytes:
        """What is left at the end: the last line when it did not end with a newline (one is added), else
        ``b""``. A carry of only whitespace is dropped."""
        carry, self.carry = self.carry, b""
        return carry + b"\n" if carry.strip() else b""


def frame_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Blocks of whole lines from ``chunks`` cut anywhere; a last line without its newline gets one."""
    framer = LineFramer()
    for chunk in chunks:
        block = framer.push(chunk)
        if block:
            yield block
    tail = framer.finish()
    if tail:
        yield tail


def split_lines(block: bytes) -> list[bytes]:
    """The lines of a block of whole lines, without their newlines."""
    lines = block.split(b"\n")
    lines.pop()  # a block ends with "\n": the last piece is empty
    return lines


def join_lines(lines: Iterable[bytes]) -> bytes:
    """One block from lines given without newlines (``b""`` for no lines)."""
    lines = list(lines)
    if not lines:
        return b""
    lines.append(b"")
    return b"\n".join(lines)


def iter_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Every line (without its newline) of a stream of blocks."""
    for block in blocks:
        yield from split_lines(block)


def count_lines(block: bytes) -> int:
    """How many lines a block of whole lines holds."""
    return block.count(b"\n")


def skip_lines(blocks: Iterable[bytes], count: int) -> Iterator[bytes]:
    """The stream without its first ``count`` lines."""
    for block in blocks:
        if count:
            start = 0
            while count and start < len(block):
                start = block.index(b"\n", start) + 1
                count -= 1
            block = block[start:]
        if block:
            yield block


def take_lines(blocks: Iterable[bytes], limit: int | None) -> Iterator[bytes]:
    """The first ``limit`` lines of the stream (all of it when None); stops reading once they are out."""
    if limit is None:
        yield from blocks
        return
    left = limit
    for block in blocks:
        if left <= 0:
            return
        lines = count_lines(block)
        if lines >= left:
            cut = -1
            for _ in range(left):
                cut = block.index(b"\n", cut + 1)
            yield block[:cut + 1]
            return
        left -= lines
        yield block
