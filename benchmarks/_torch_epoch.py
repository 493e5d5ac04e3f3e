"""One epoch of a training loader, measured the same way for every system of ``bench_torch.py``.

Each system's side (``_torch_headwater.py``, ``_torch_webdataset.py``, ``_torch_mosaic.py``,
``_torch_litdata.py``) runs in its own process — the peers in their own venvs — builds its loader and hands
it to :func:`run_epoch`, which prints one JSON line on stdout. Only the standard library and Pillow are
imported here, so the file works in every venv.

What is measured, identically for every system:

* ``seconds``: from just before the dataset/loader objects are built (after the imports) to the last batch
  — worker start-up, index reads and downloads included, as a training job pays them every epoch unless it
  keeps its workers; ``ttfb``: from the same instant to the first batch.
* ``keys``: the stored position of every sample in the order the batches arrived, and ``batches`` their
  sizes (the caller checks "exactly once" and computes the shuffle quality from them).
* ``peak_rss``: the largest sum of the resident sets of this process and all its descendants (the
  DataLoader workers, a downloader), sampled every 20 ms from ``/proc`` (shared pages count once per
  process, the way ``ps`` shows them — an upper bound of the real footprint).
* ``read_bytes``: bytes this process and its reaped children read from storage (``/proc/self/io``
  ``read_bytes``; the kernel adds a child's counters to its parent when it is reaped, and the loader's workers
  are reaped before it is read). From the page cache it is ~0, so it is quoted for cold runs.

In ``verify`` mode the side yields the raw JPEG bytes instead of a decoded image; the SHA-256 of every
sample is sent back so the caller can check every sample arrived once with its own bytes before timing.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from PIL import Image

__all__ = ["MARK", "config", "decode_image", "read_bytes", "run_epoch", "tree_rss"]

_PAGE = os.sysconf("SC_PAGE_SIZE")
MARK = "EPOCH-RESULT "
"""Starts the result line (libraries may print to stdout too)."""


def decode_image(raw: bytes) -> Image.Image:
    """The decode every system's sample gets: a Pillow image of the JPEG bytes, fully loaded, RGB."""
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, ()))
    return out


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants now."""
    total = 0
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def read_bytes() -> int:
    """Storage bytes read by this process and its reaped children so far (``/proc/self/io``)."""
    with open("/proc/self/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


class _PeakRss:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(os.getpid()))

    def __enter__(self) -> _PeakRss:
        self.peak = tree_rss(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_epoch(build: Callable[[], Iterable[list[Any]]], sample: Callable[[Any], tuple[int, Any]],
              mode: str, *, notes: list[str] | None = None) -> None:
    """Build the loader with ``build()`` and run one epoch; print the measurements as one JSON line.

    ``sample(item)`` turns one element of a batch into ``(stored position, image)`` — the image a loaded
    Pillow image in ``time`` mode, the JPEG bytes in ``verify`` mode. ``notes`` (filled by ``build``, e.g.
    "persistent_workers refused") go into the result."""
    keys: list[int] = []
    sizes: list[int] = []
    hashes: list[str] = []
    read0 = read_bytes()
    with _PeakRss() as rss:
        start = time.perf_counter()
        ttfb = None
        loader = build()
        batches = iter(loader)
        for batch in batches:
            if ttfb is None:
                ttfb = time.perf_counter() - start
            sizes.append(len(batch))
            for item in batch:
                key, image = sample(item)
                keys.append(key)
                if mode == "verify":
                    hashes.append(hashlib.sha256(image).hexdigest())
                elif not isinstance(image, Image.Image) or image.mode != "RGB":
                    raise SystemExit(f"sample {key} is not an RGB Pillow image: {image!r}")
        seconds = time.perf_counter() - start
        del batches, loader
        gc.collect()  # the DataLoader iterator's __del__ joins (reaps) its workers
    result = {"seconds": seconds, "ttfb": ttfb if ttfb is not None else seconds, "keys": keys, "batches": sizes,
              "peak_rss": rss.peak, "read_bytes": read_bytes() - read0, "notes": notes or []}
    if mode == "verify":
        result["sha256"] = hashes
    sys.stdout.write(MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


def config() -> dict[str, Any]:
    """The side's settings: one JSON object, the first command-line argument."""
    return dict(json.loads(sys.argv[1]))
