"""The increment-id shard rule: cheesechaser's ``IncrementIDDataPool`` layout.

``id % 10**base_level``, zero-padded to ``base_level`` digits, cut into 3-digit groups from the right,
the last group prefixed with ``0``: id 1234 at level 3 lives in ``images/0234.tar``, id 114514 at level 4
in ``images/4/0514.tar``. ``pack --layout increment-id`` writes shards by it and the pool layer reads them
by it (:class:`~headwater.pool.IncrementIDLayout`).

Example:
    >>> increment_id_shard(114514, 4)
    'images/4/0514.tar'
    >>> increment_id_shard(1234, 3)
    'images/0234.tar'
"""

from __future__ import annotations

import posixpath

__all__ = ["increment_id_shard"]


def increment_id_shard(resource_id: int, base_level: int = 3, base_dir: str = "images") -> str:
    """The shard path cheesechaser's ``IncrementIDDataPool`` looks in for ``resource_id``."""
    if base_level < 1:
        raise ValueError(f"base_level must be >= 1, got {base_level}")
    digits = str(resource_id % 10**base_level).zfill(base_level)
    groups = []
    while digits:
        groups.append(digits[-3:])
        digits = digits[:-3]
    groups.reverse()
    groups[-1] = "0" + groups[-1]
    return posixpath.join(base_dir, *groups) + ".tar" if base_dir else "/".join(groups) + ".tar"
