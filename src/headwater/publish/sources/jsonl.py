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

_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


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
        self._split_key = b""
        self._split_decoder: msgspec.json.Decoder[Any] | None = None

    def _open(self) -> io.BufferedIOBase:
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def items(self) -> Iterator[SourceItem]:
        decoder = msgspec.json.Decoder()
        for number, line in self.lines():
            yield self.item(number, line, decoder)

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """``(line number, line)`` of every non-blank line: what :meth:`items` reads, undecoded (a publish
        decodes each line once, straight into a checked droplet: :class:`~headwater.droplet.DropletValidator`)."""
        with self._open() as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line

    def item(self, number: int, line: bytes, decoder: msgspec.json.Decoder[Any] | None = None) -> SourceItem:
        """The :class:`SourceItem` of line ``number`` (1-based), with its problems named."""
        where = f"line {number}"
        try:
            obj = (decoder or _ANY).decode(line)
        except msgspec.DecodeError as err:
            return SourceItem(where, None, problems=(f"invalid JSON: {err}",))
        except RecursionError:
            return SourceItem(where, None, problems=("JSON nested too deeply",))
        if not isinstance(obj, dict):
            return SourceItem(where, None, problems=(f"expected a JSON object, got {type(obj).__name__}",))
        split = obj.pop(self.split_field, None) if self.split_field else None
        if split is not None and not isinstance(split, str):
            return SourceItem(where, None, problems=(f"{self.split_field!r} must be a string, got {split!r}",))
        return SourceItem(where, obj, split=split)

    def split_of(self, line: bytes) -> str | None:
        """The explicit split of a line that holds a good droplet (its top-level ``split_field``; None: none);
        ValueError when it is not a string (then :meth:`item` names the problem). Cheap when the line does
        not mention the field at all, as most lines do not."""
        if not self.split_field:
            return None
        if self._split_decoder is None:
            self._split_key = msgspec.json.encode(self.split_field)
            self._split_decoder = msgspec.json.Decoder(msgspec.defstruct(
                "_SplitField", [("value", Any, None)], rename={"value": self.split_field}))
        if self._split_key not in line and b"\\" not in line:  # a key may also be spelt with escapes
            return None
        try:
            value = self._split_decoder.decode(line).value
        except (msgspec.MsgspecError, RecursionError):
            raise ValueError("not a droplet line") from None
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"{self.split_field!r} is not a string")
