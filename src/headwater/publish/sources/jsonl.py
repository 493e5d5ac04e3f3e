"""Droplets from a JSONL file (one datatap ``ImageAnnotation`` a line), the native publish source."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from .source import SourceItem

__all__ = ["JsonlSource"]


class JsonlSource:
    """Droplets from a JSONL file (one datatap ``ImageAnnotation`` a line; ``.gz`` is read too).

    Blank lines are skipped; line numbers in problems are 1-based and count every line. A top-level
    ``"split"`` string (not a droplet field) names the line's split and is removed before validation.
    Local image paths resolve against ``images`` (default: the file's folder).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "d.jsonl")
        >>> _ = open(path, "w").write('{"kind": "ImageAnnotation", "image": {"paths": ["a.png"]}, '
        ...                           '"classes": {}, "split": "val"}\\n\\n[1]\\n')
        >>> [(i.where, i.split, i.problems) for i in JsonlSource(path).items()]
        [('line 1', 'val', ()), ('line 3', None, ('expected a JSON object, got list',))]
    """

    template: Mapping[str, Any] | None = None

    def __init__(self, path: str | os.PathLike[str], images: str | os.PathLike[str] | None = None, *,
                 split_field: str | None = "split") -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self.images_root = os.path.abspath(os.fspath(images) if images is not None
                                           else os.path.dirname(os.path.abspath(self.path)))
        self.split_field = split_field

    def _open(self) -> io.BufferedIOBase:
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def items(self) -> Iterator[SourceItem]:
        decoder = msgspec.json.Decoder()
        with self._open() as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"line {number}"
                try:
                    obj = decoder.decode(line)
                except msgspec.DecodeError as err:
                    yield SourceItem(where, None, problems=(f"invalid JSON: {err}",))
                    continue
                except RecursionError:
                    yield SourceItem(where, None, problems=("JSON nested too deeply",))
                    continue
                if not isinstance(obj, dict):
                    yield SourceItem(where, None, problems=(f"expected a JSON object, got {type(obj).__name__}",))
                    continue
                split = obj.pop(self.split_field, None) if self.split_field else None
                if split is not None and not isinstance(split, str):
                    yield SourceItem(where, None, problems=(f"{self.split_field!r} must be a string, got {split!r}",))
                    continue
                yield SourceItem(where, obj, split=split)
