"""Where a resource's files are: cheesechaser's ``DataLocation`` plus the byte range behind it.

Example:
    >>> loc = DataLocation(1234, "images/0234.tar", "1234.png")
    >>> Member(loc, offset=512, size=10, sha256=None, shard_size=4096).end
    522
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DataLocation", "Member"]


@dataclass
class DataLocation:
    """A file inside a tar archive (same fields as cheesechaser's)."""

    resource_id: Any
    tar_file: str
    filename: str


@dataclass(frozen=True, slots=True)
class Member:
    """A located file with the byte range and checksum its index gives."""

    location: DataLocation
    offset: int
    size: int
    sha256: str | None
    shard_size: int | None

    @property
    def end(self) -> int:
        return self.offset + self.size
