"""Member names: which ones are safe to pack or extract, and which resource a member belongs to.

Packing refuses names that could escape a destination when extracted (absolute, ``..``, NUL,
backslashes, empty parts) and extraction re-checks every name, because a tar written by someone else
may hold anything. A member ``dir/<key>.<ext>`` belongs to resource ``<key>`` (the rule the pool
manifest indexes by).

Example:
    >>> check_member_name("./a/b.png")
    'a/b.png'
    >>> resource_key("images/12.png")
    '12'
"""

from __future__ import annotations

import posixpath

from .errors import UnsafeMemberError

__all__ = ["check_member_name", "resource_key"]


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


def resource_key(member_name: str) -> str:
    """The resource a member belongs to: its file name without extension (``images/12.png`` → ``12``)."""
    base = posixpath.basename(member_name)
    stem, _ = posixpath.splitext(base)
    return stem
