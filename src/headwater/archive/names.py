"""Member-name safety and the increment-id shard rule.

Packing refuses names that could escape a destination when extracted (absolute, ``..``, NUL,
backslashes, empty parts) and extraction re-checks every name, because a tar written by someone else
may hold anything.

The increment-id rule is cheesechaser's ``IncrementIDDataPool`` layout: ``id % 10**base_level``,
zero-padded to ``base_level`` digits, cut into 3-digit groups from the right, the last group prefixed
with ``0``.

Example:
    >>> increment_id_shard(114514, 4)
    'images/4/0514.tar'
    >>> increment_id_shard(1234, 3)
    'images/0234.tar'
    >>> check_member_name("a/b.png")
    'a/b.png'
"""

from __future__ import annotations

import posixpath

from ..errors import HeadwaterError

__all__ = ["UnsafeMemberError", "check_member_name", "increment_id_shard", "resource_key"]


class UnsafeMemberError(HeadwaterError, ValueError):
    """A member name or file type that must not be packed or extracted."""


def check_member_name(name: str) -> str:
    """Return ``name`` without a leading ``./`` if it is a safe relative path; raise otherwise."""
    if not name or "\0" in name or "\\" in name:
        raise UnsafeMemberError(f"unsafe member name {name!r}: empty, NUL or backslash")
    if name.startswith("/"):
        raise UnsafeMemberError(f"unsafe member name {name!r}: absolute path")
    while name.startswith("./"):
        name = name[2:]
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeMemberError(f"unsafe member name {name!r}: contains '..', '.' or an empty part")
    return name


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


def resource_key(member_name: str) -> str:
    """The resource a member belongs to: its file name without extension (``images/12.png`` → ``12``)."""
    base = posixpath.basename(member_name)
    stem, _ = posixpath.splitext(base)
    return stem
