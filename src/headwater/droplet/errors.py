"""Errors of the droplet layer, each naming *where* in the JSON the problem is.

A droplet is a deeply nested JSON document, so "coordinate out of range" is useless without a
location. Every :class:`DropletError` carries ``path``: a JSONPath-like string rooted at ``$`` whose
object keys are written ``.key`` when they are identifiers and ``["key"]`` otherwise, e.g.
``$.classes.person.instances[3].boundingBox.rectangle[1][0]`` or ``$.classes["traffic light"]``.

Example:
    >>> err = DropletError("$.image.paths", "must hold at least one path")
    >>> str(err)
    '$.image.paths: must hold at least one path'
    >>> isinstance(err, ValueError), err.path
    (True, '$.image.paths')
"""

from __future__ import annotations

from ..errors import HeadwaterError

__all__ = ["DropletError", "ImageFetchError", "ImageRefError", "TemplateError"]


class DropletError(HeadwaterError, ValueError):
    """A droplet (or template) is malformed or breaks its template; ``path`` says where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.message))


class TemplateError(DropletError):
    """A template document is malformed (unknown kind, wrong types, duplicate keypoint names …)."""


class ImageRefError(HeadwaterError, ValueError):
    """An ``image.paths`` entry cannot be understood (e.g. ``pool://`` without a key)."""


class ImageFetchError(HeadwaterError, OSError):
    """None of a droplet's image paths could be read; ``errors`` maps each path to why."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = dict(errors or {})

    def __reduce__(self) -> tuple[type, tuple[str, dict[str, str]]]:
        return (type(self), (self.args[0], self.errors))
