"""Atomic and durable local writes: write beside the target, then rename over it; fsync when it matters.

A crash or an exception leaves either the old file or none, never a half-written one, and no temp
file is left behind (temp names start with ``.`` and end with ``.tmp`` so scans can skip them). A full
disk, a quota or a file-size limit (ENOSPC, EDQUOT, EFBIG) is raised as
:class:`~headwater.storage.errors.DiskFullError` naming the target, so every command that writes files
stops on it with one clear message instead of failing file after file.
:func:`fsync_path` and :func:`fsync_tree` make files and renames durable before something else (a catalog
commit) starts pointing at them.

Example:
    >>> import tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "out.bin")
    >>> with atomic_path(target) as tmp:
    ...     with open(tmp, "wb") as f:
    ...         _ = f.write(b"data")
    >>> open(target, "rb").read()
    b'data'
    >>> write_bytes_atomic(target, b"new data")
    >>> open(target, "rb").read(), [n for n in os.listdir(os.path.dirname(target)) if is_temp_name(n)]
    (b'new data', [])
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from .errors import DiskFullError

__all__ = ["atomic_path", "write_bytes_atomic", "is_temp_name", "is_disk_full", "fsync_path", "fsync_tree", "umask"]

_counter = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def umask() -> int:
    """The process umask (read without changing it for longer than two system calls)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~umask()  # what ``open()`` gives a new file (mkstemp gives 0o600)
_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_disk_full(err: OSError) -> bool:
    """Whether ``err`` says there is no room to write: a full disk, a quota or a file-size limit
    (ENOSPC, EDQUOT, EFBIG) — what :class:`DiskFullError` stands for.

    >>> import errno
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device")), is_disk_full(PermissionError(13, "x"))
    (True, False)
    """
    return err.errno in _FULL


@contextmanager
def _full_disk_named(target: str) -> Iterator[None]:
    """A write that failed for lack of room raised as :class:`DiskFullError` naming ``target``."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as err:
        if is_disk_full(err):
            raise DiskFullError(target, err) from err
        raise


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temp path in ``target``'s directory; on success it is renamed onto ``target``."""
    target = os.fspath(target)
    folder = os.path.dirname(os.path.abspath(target))
    with _full_disk_named(target):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            os.chmod(tmp, _MODE)
            yield tmp
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def write_bytes_atomic(target: str, data: bytes | memoryview) -> None:
    """Write ``data`` to ``target`` atomically, with as few system calls as possible.

    The same guarantee as :func:`atomic_path` (old file or whole new one, no temp file left behind), for
    the hot path of a batch download, where one small file is written per member and the calls around the
    ``write`` (``mkstemp``'s random-name loop, close, ``chmod``, reopen) cost more than the write itself.
    The temp name is unique per process, thread and call; the mode is what ``open()`` gives (0o666 minus
    the umask). The folder is created only when the first attempt finds it missing.
    """
    folder, base = os.path.split(os.path.abspath(target))
    tmp = os.path.join(folder, f".{base}.{os.getpid()}-{threading.get_ident()}-{next(_counter)}.tmp")
    with _full_disk_named(target):
        try:
            fd = os.open(tmp, _CREATE, 0o666)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, _CREATE, 0o666)
        except FileExistsError:  # left by a crashed process that had the same pid: pick a random name
            tmp = os.path.join(folder, f".{base}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, _CREATE, 0o666)
        try:
            try:
                view = memoryview(data).cast("B")
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def is_temp_name(name: str) -> bool:
    """True for names :func:`atomic_path` uses for its temp files."""
    base = os.path.basename(name)
    return base.startswith(".") and base.endswith(".tmp")


def fsync_path(path: str) -> None:
    """Flush a file or a folder entry to disk (best effort: not every platform can open folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: str) -> None:
    """:func:`fsync_path` every file and folder below ``root`` (for a handful of files: a staged pool)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(folder, name))
        fsync_path(folder)
