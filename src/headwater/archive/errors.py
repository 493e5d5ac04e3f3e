"""Errors of the archive layer: bytes that are not the tar, index or manifest they claim to be, and names
or inputs that must not be packed or extracted.

All are ``ValueError``\\ s (the input is wrong) under one root, :class:`ArchiveError`; each message names the
shard, member or offset concerned.

Example:
    >>> err = TruncatedTarError("archive truncated inside member 'a.png'", offset=1536)
    >>> isinstance(err, TarFormatError), err.offset
    (True, 1536)
"""

from __future__ import annotations

from ..errors import HeadwaterError

__all__ = [
    "ArchiveError",
    "TarFormatError",
    "TruncatedTarError",
    "IndexFormatError",
    "ManifestError",
    "UnsafeMemberError",
    "PackError",
    "TooManyMembersError",
]


class ArchiveError(HeadwaterError, ValueError):
    """A shard, index, manifest or member name is not what it must be."""


class TarFormatError(ArchiveError):
    """The bytes are not a well-formed tar archive at the named offset (also kept in ``offset``)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:
        return (type(self), (str(self), self.offset))


class TruncatedTarError(TarFormatError):
    """The archive ends in the middle of a header or of a member's data."""


class IndexFormatError(ArchiveError):
    """An index JSON does not have the hfutils shape."""


class ManifestError(ArchiveError):
    """A file is not a headwater pool manifest, or has a format this version cannot read."""


class UnsafeMemberError(ArchiveError):
    """A member name or file type that must not be packed or extracted."""


class PackError(ArchiveError):
    """The source directory cannot be packed as asked; nothing was written."""


class TooManyMembersError(TarFormatError):
    """A tar holds more members than the caller accepts (a server's per-shard cap); ``offset`` is where
    the first member past the cap starts."""
