"""Errors of the publish layer: a source that cannot be published, with every problem named by its place.

A refused publish raises :class:`PublishError` carrying :class:`Problem`\\ s (``line 12``, ``image id
397133``, ``labels/a.txt line 3`` …) — every one found, up to a cap — and then nothing was written. A
source that is not the format it claims raises a :class:`SourceFormatError` at once.

Example:
    >>> err = PublishError("2 problem(s) in the source; nothing was published:",
    ...                    [Problem("line 3", "invalid JSON"), Problem("line 9", "no droplet")])
    >>> print(err)
    2 problem(s) in the source; nothing was published:
      line 3: invalid JSON
      line 9: no droplet
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import HeadwaterError

__all__ = ["Problem", "PublishError", "SourceFormatError", "CocoFormatError", "YoloFormatError", "CoordinateError"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a source: where (``line 3``, ``image id 17``…) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class PublishError(HeadwaterError, ValueError):
    """Publishing was refused; nothing was written. ``problems`` lists the first ones found (up to the
    cap given to :func:`~headwater.publish.publish`), ``total`` how many there were in all."""

    def __init__(self, message: str, problems: Sequence[Problem] = (), total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        self.summary = message
        text = message
        if self.problems:
            text += "\n  " + "\n  ".join(str(p) for p in self.problems)
            if self.total > len(self.problems):
                text += f"\n  … and {self.total - len(self.problems)} more"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.summary, self.problems, self.total))


class SourceFormatError(PublishError):
    """The source's format cannot be told from its path, is unknown, or the file is not that format."""


class CocoFormatError(SourceFormatError):
    """The file is not a COCO instances JSON at all (missing ``images``/``categories``, wrong types)."""


class YoloFormatError(SourceFormatError):
    """The folder is not a YOLO dataset (no class names, unreadable ``data.yaml`` …)."""


class CoordinateError(PublishError):
    """A coordinate lies clearly outside the image, or a shape has no area (the message says which);
    importers report it as a problem of the item it belongs to."""
