"""Read a stream's blocks one step ahead in a thread, so the catalog reads the next page while the caller
decodes this one.

Why: a pass straight from a local catalog is two jobs in turn — the database reads a page (SQLite's B-tree,
PostgreSQL's socket), then msgspec decodes it — and only the decode needs the caller's thread. With the
read in a thread they overlap on two cores, and the pass runs at the speed of the decode alone. It pays
only when the reader rarely needs the GIL: the catalog hands over a whole page as one value
(:meth:`~headwater.catalog.Catalog.read_range_blocks`), and the database work runs with the GIL released.
(An HTTP body read in a thread would need the GIL back after every socket read, each time waiting up to
the interpreter's switch interval behind the decoder; the HTTP transport does not use this.)

Rules kept: the blocks arrive in the source's order, unchanged; an error of the source is raised in the
caller at the point of the stream where it happened; closing the stream (or abandoning it) stops the
thread, which closes the source in its own thread before :meth:`close` returns, so a database connection
is given back and nothing runs behind the caller's back.

Example:
    >>> list(read_ahead(iter([b"a\\n", b"b\\n"])))
    [b'a\\n', b'b\\n']
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import cast

__all__ = ["READ_AHEAD_DEPTH", "read_ahead"]

READ_AHEAD_DEPTH = 2
"""Blocks read ahead of the caller (each a catalog page, a few MB): enough to hide a slow page."""

_END = object()
_POLL = 0.05  # seconds between the reader's checks that the caller still wants the blocks


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(blocks: Iterator[bytes], depth: int = READ_AHEAD_DEPTH) -> Iterator[bytes]:
    """``blocks``, read by a thread up to ``depth`` blocks ahead of the caller (module docstring).

    The thread starts at the first ``next()``."""
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(target=_read, args=(blocks, items, stop), name="headwater-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield cast(bytes, item)  # only blocks are put besides the two markers
    finally:
        stop.set()
        thread.join()


def _read(blocks: Iterator[bytes], items: queue.Queue[object], stop: threading.Event) -> None:
    try:
        for block in blocks:
            if not _put(items, block, stop):
                return
        _put(items, _END, stop)
    except BaseException as err:  # noqa: BLE001 - handed to the caller, raised there
        _put(items, _Failure(err), stop)
    finally:
        close = getattr(blocks, "close", None)
        if callable(close):
            close()


def _put(items: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` once there is room; False when the caller stopped wanting items first."""
    while not stop.is_set():
        try:
            items.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False
