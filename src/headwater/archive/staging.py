"""A new pool written beside its final folder and renamed into place in one step.

Why: a pool that something else will point at (a dataset being published) must appear whole or not at
all. Its shards, indexes, manifest and any extra files (a marker saying what the pool is for, so an orphan
can be recognised) are written into a fresh ``.{name}.staging-*``
folder next to the target (same file system, so the final rename is atomic), fsynced, and only then
renamed onto the target — which must not exist or be an empty folder: a pool is immutable once something
points at it. Whoever commits the pointer decides when to call :func:`move_into_place` (the publisher
does it as the last step before its catalog commit, and removes the pool again if the commit fails).

Example:
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> src = os.path.join(root, "1.png"); _ = open(src, "wb").write(b"png")
    >>> target = os.path.join(root, "pool")
    >>> staging = stage_pool([("0.png", src, 3)], target, extra_files={"README": b"for the doc"}, silent=True)
    >>> move_into_place(staging, target)
    >>> sorted(os.listdir(target))
    ['README', 'headwater-manifest.sqlite', 'shard-00000.json', 'shard-00000.tar']
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping

from ..storage import fsync_path, fsync_tree, umask, write_bytes_atomic
from .errors import PackError

__all__ = ["check_new_pool_dir", "new_staging_dir", "stage_pool", "move_into_place"]


def check_new_pool_dir(target: str) -> None:
    """Raise :class:`PackError` unless ``target`` is absent or an empty folder."""
    if os.path.lexists(target) and not (os.path.isdir(target) and not os.listdir(target)):
        raise PackError(f"pool folder {target!r} already exists and is not empty; a pool that something points "
                        "at is immutable, give a new folder")


def new_staging_dir(target: str) -> str:
    """A fresh, empty ``.{name}.staging-*`` folder beside ``target`` (same file system: renames are atomic)."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(target))}.staging-", dir=parent)


def stage_pool(files: Iterable[tuple[str, str, int]], target: str, *, extra_files: Mapping[str, bytes] | None = None,
               max_shard_size: int = 1 << 30, silent: bool | None = False) -> str:
    """Pack ``(member name, source path, size)`` files into a fresh staging folder beside ``target``.

    Returns the staging folder (shards in sequential layout, indexes, manifest, and ``extra_files``: name →
    bytes at the pool's root), durable on disk. On any failure nothing is left behind; a full disk or a file-size
    limit is a :class:`~headwater.storage.DiskFullError` naming ``target``.
    """
    from .pack import plan_shards, write_failure, write_shards  # pack stages through this module too (a cycle)

    staging = ""
    try:
        staging = new_staging_dir(target)
        plan = plan_shards(list(files), layout="sequential", max_shard_size=max_shard_size)
        write_shards(plan, staging, max_shard_size=max_shard_size, desc="Packing images", silent=silent)
        for name, data in (extra_files or {}).items():
            write_bytes_atomic(os.path.join(staging, name), data)
        os.chmod(staging, 0o777 & ~umask())  # mkdtemp makes it private; a pool is shared like any folder
        fsync_tree(staging)
    except BaseException as err:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, OSError):
            raise write_failure(err, target) from err
        raise
    return staging


def move_into_place(staging: str, target: str) -> None:
    """Rename a staged pool onto ``target`` (absent or empty) and make the rename durable."""
    check_new_pool_dir(target)
    if os.path.isdir(target):
        os.rmdir(target)  # empty (checked); rename cannot replace a directory everywhere
    os.rename(staging, target)
    fsync_path(os.path.dirname(os.path.abspath(target)))
