"""Atomic local writes: write beside the target, then rename over it.

A crash or an exception leaves either the old file or none, never a half-written one, and no temp
file is left behind (temp names start with ``.`` and end with ``.tmp`` so scans can skip them).

Example:
    >>> import tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "out.bin")
    >>> with atomic_path(target) as tmp:
    ...     with open(tmp, "wb") as f:
    ...         _ = f.write(b"data")
    >>> open(target, "rb").read()
    b'data'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["atomic_path", "is_temp_name"]


def _file_mode() -> int:
    """What ``open()`` would give a new file: 0o666 minus the process umask (mkstemp gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temp path in ``target``'s directory; on success it is renamed onto ``target``."""
    target = os.fspath(target)
    folder = os.path.dirname(os.path.abspath(target))
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


def is_temp_name(name: str) -> bool:
    """True for names :func:`atomic_path` uses for its temp files."""
    base = os.path.basename(name)
    return base.startswith(".") and base.endswith(".tmp")
