"""Member names: which ones are safe to pack or extract, and which resource a member belongs to.

:func:`check_member_name` is the one name policy: packing refuses names that could escape a destination
when extracted (absolute, ``..``, NUL, backslashes, empty parts) or that no file system can hold (a part
over 255 bytes, a name over 4,095), and ``extract``, ``verify`` and a pool download check every member's
name with it again — the same verdict for the same member — because a tar written by someone else may
hold anything. A member ``dir/<key>.<ext>`` belongs to resource ``<key>`` (the rule the pool
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

__all__ = ["check_member_name", "resource_key", "MAX_PART_BYTES", "MAX_NAME_BYTES"]

MAX_PART_BYTES = 255
"""Longest file or folder name (UTF-8 bytes) that common file systems hold (NAME_MAX on Linux, macOS)."""
MAX_NAME_BYTES = 4095
"""Longest relative path (UTF-8 bytes) accepted: PATH_MAX on Linux, less the terminating NUL."""


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
    size = len(name.encode("utf-8", "surrogateescape"))
    longest = max(len(part.encode("utf-8", "surrogateescape")) for part in parts)
    if longest > MAX_PART_BYTES or size > MAX_NAME_BYTES:
        raise UnsafeMemberError(f"unsafe member name {name[:60]!r}…: too long ({longest} bytes in one part, "
                                f"{size} in all; at most {MAX_PART_BYTES} and {MAX_NAME_BYTES})")
    return name


def resource_key(member_name: str) -> str:
    """The resource a member belongs to: its file name without extension (``images/12.png`` → ``12``)."""
    base = posixpath.basename(member_name)
    stem, _ = posixpath.splitext(base)
    return stem
