"""Where request bodies wait on disk before they are used: a folder the server owns, with a disk budget.

Why: a publish body is validated in full before anything is written to the catalog, so it is received to
a file first (it may be gigabytes; memory stays flat). A server killed mid-request cannot remove that
file, and the temp dir is shared with everything else on the machine — so bodies go to one folder per
server process (``{spool}/{pid}``), and every server that starts removes the folders of processes that
are gone. Together the files may take ``ServerConfig.spool_budget_bytes``: a body that would pass it is
refused with 507 before (or while) it is received, not after the disk filled up.

The same holds for shards uploaded into a local pool, which are received beside their final path (so that
publishing them is one rename): their temp names carry the receiving process's id, and
:func:`remove_stale_uploads` deletes those of processes that are gone when a server starts.

Example:
    >>> import tempfile
    >>> spool = Spool(tempfile.mkdtemp(), budget=1 << 20)
    >>> lease = Lease(0)
    >>> spool.grow(lease, 1000); spool.used
    1000
    >>> spool.grow(lease, 2 << 20)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastapi.exceptions.HTTPException: 507: the server's spool for request bodies is full (budget 1048576 bytes)...
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request

from ..storage import open_store

__all__ = ["Spool", "Lease", "default_spool_dir", "remove_stale_uploads", "upload_temp_prefix", "pid_alive"]

_UPLOAD_TEMP = re.compile(r"^\..+\.hw(\d+)\.[^.]+\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def default_spool_dir(catalog: str) -> str:
    """``.headwater-spool`` beside a SQLite catalog; in the temp dir (one per catalog URL) for PostgreSQL."""
    if "://" not in catalog:
        return os.path.join(os.path.dirname(os.path.abspath(os.path.expanduser(catalog))), ".headwater-spool")
    digest = hashlib.sha1(catalog.encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"headwater-spool-{digest}")


def upload_temp_prefix(name: str) -> str:
    """The temp-file prefix of an upload received beside its target ``name`` (carries this process's id)."""
    return f".{name}.hw{os.getpid()}."


def remove_stale_uploads(pools: Mapping[str, str]) -> int:
    """Delete the temp files that uploads into the local ``pools`` left behind when their server process
    died (named by :func:`upload_temp_prefix`, process gone); returns how many."""
    removed = 0
    for url in pools.values():
        try:
            store = open_store(url)
        except (OSError, ValueError):
            continue
        root = store.local_path("")
        if root is None or not os.path.isdir(root):
            continue
        for folder, _dirs, files in os.walk(root):
            for name in files:
                match = _UPLOAD_TEMP.match(name)
                if match and not pid_alive(int(match.group(1))):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, name))
                        removed += 1
    return removed


@dataclass
class Lease:
    """Bytes of the budget held by one body (given back when the ``reserve`` block ends)."""

    size: int


class Spool:
    """This process's spool folder under ``root`` (see the module docstring)."""

    def __init__(self, root: str, budget: int) -> None:
        self.root = os.path.abspath(root)
        self.budget = budget
        self.folder = os.path.join(self.root, str(os.getpid()))
        self.used = 0
        """Bytes this process holds now."""
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}

    def clear_stale(self) -> int:
        """Remove the folders of server processes that are gone (and this process's own, from a previous
        life under the same id); returns how many bytes were freed."""
        freed = 0
        if not os.path.isdir(self.root):
            return 0
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and entry.name.isdigit():
                pid = int(entry.name)
                if pid != os.getpid() and pid_alive(pid):
                    continue
            freed += _tree_size(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        return freed

    def _others(self) -> int:
        """Bytes the spool folders of other live server processes hold."""
        if not os.path.isdir(self.root):
            return 0
        total = 0
        for entry in os.scandir(self.root):
            if entry.path != self.folder and entry.is_dir(follow_symlinks=False):
                total += _tree_size(entry.path)
        return total

    def grow(self, lease: Lease, size: int) -> None:
        """Add ``size`` bytes to ``lease``; 507 when the spool's budget cannot hold them."""
        with self._lock:
            if self.used + size + (self._others() if size else 0) > self.budget:
                raise HTTPException(507, f"the server's spool for request bodies is full (budget "
                                         f"{self.budget} bytes); retry later or send a smaller body")
            self.used += size
            lease.size += size

    def new_file(self, suffix: str) -> tuple[int, str]:
        """A new file in this process's folder: ``(fd, path)``."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        return tempfile.mkstemp(suffix=suffix, dir=self.folder)

    async def receive(self, request: Request, limit: int, *, max_line: int | None = None,
                      suffix: str = ".body") -> tuple[str, int]:
        """Receive the body of ``request`` into a spool file: ``(path, size)``. 413 past ``limit`` bytes (by
        ``Content-Length`` before a byte is read, else while streaming) or for a line longer than
        ``max_line`` (counted as it arrives, so one huge line is never held in memory); 507 when the spool
        budget is spent. The caller deletes the file (:meth:`discard`); the budget is held until then."""
        declared = request.headers.get("content-length")
        expected = 0
        if declared is not None:
            try:
                expected = int(declared)
            except ValueError:
                raise HTTPException(400, f"bad Content-Length {declared!r}") from None
            if expected > limit:
                raise HTTPException(413, f"request body of {expected} bytes is over the server's limit of "
                                         f"{limit} bytes")
        lease = Lease(0)
        self.grow(lease, expected)
        try:
            fd, path = self.new_file(suffix)
        except BaseException:
            with self._lock:
                self.used -= lease.size
            raise
        self._leases[path] = lease
        received, line, number = 0, 0, 1
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > limit:
                        raise HTTPException(413, f"request body is over the server's limit of {limit} bytes")
                    if received > lease.size:
                        self.grow(lease, max(received - lease.size, min(limit, 1 << 20)))
                    if max_line is not None:
                        line, number = _check_lines(chunk, line, number, max_line)
                    f.write(chunk)
        except BaseException:
            self.discard(path)
            raise
        return path, received

    def discard(self, path: str) -> None:
        """Delete a file :meth:`receive` wrote and give back its share of the budget."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        lease = self._leases.pop(path, None)
        if lease is not None:
            with self._lock:
                self.used -= lease.size


def _check_lines(chunk: bytes, line: int, number: int, max_line: int) -> tuple[int, int]:
    """Carry the length of the current line through ``chunk``; 413 naming the first line over ``max_line``."""
    start = 0
    while True:
        end = chunk.find(b"\n", start)
        length = line + ((len(chunk) if end < 0 else end) - start)
        if length > max_line:
            raise HTTPException(413, f"line {number} of the body is longer than the server's limit of "
                                     f"{max_line} bytes for one droplet")
        if end < 0:
            return length, number
        line, number, start = 0, number + 1, end + 1


def _tree_size(path: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
