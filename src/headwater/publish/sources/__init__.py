"""Publish sources: one interface (:class:`Source` yielding :class:`SourceItem`), one module per format.

* :mod:`.jsonl` — datatap droplets, one a line (the native format);
* :mod:`.coco` — a COCO instances / keypoints JSON;
* :mod:`.yolo` — a YOLO folder (``images/`` + ``labels/`` + ``data.yaml``);
* :mod:`.coords` — the coordinate checks the importers share.

:func:`open_source` picks the reader from the path.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "droplets.jsonl")
    >>> _ = open(path, "w").write("")
    >>> detect_format(path), type(open_source(path)).__name__
    ('jsonl', 'JsonlSource')
"""

from __future__ import annotations

import os
from typing import Literal

from ..errors import SourceFormatError
from .coco import CocoSource
from .jsonl import JsonlSource
from .source import Source, SourceItem
from .yolo import IMAGE_EXTENSIONS, YoloSource, read_class_names

__all__ = [
    "Source", "SourceItem", "JsonlSource", "CocoSource", "YoloSource", "IMAGE_EXTENSIONS", "read_class_names",
    "detect_format", "open_source", "SourceFormatError",
]

Format = Literal["jsonl", "coco", "yolo"]


def detect_format(path: str | os.PathLike[str]) -> Format:
    """``"yolo"`` for a folder, ``"coco"`` for ``*.json``, ``"jsonl"`` for ``*.jsonl``/``*.ndjson`` (``.gz`` too).

    A ``.json`` file whose first character is not ``{`` — or that starts with ``{"kind"`` — is taken to be
    JSON lines of droplets rather than one COCO document.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return "yolo"
    if not os.path.isfile(path):
        raise SourceFormatError(f"source {path!r} does not exist")
    lower = path.lower().removesuffix(".gz")
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith(".json"):
        with open(path, "rb") as f:
            head = f.read(256).lstrip()
        if head.startswith(b"{") and not head.replace(b" ", b"").startswith(b'{"kind"'):
            return "coco"
        return "jsonl"
    raise SourceFormatError(f"cannot tell the format of {path!r}: give format='jsonl', 'coco' or 'yolo'")


def open_source(path: str | os.PathLike[str], *,
                format: str | None = None,  # noqa: A002 - the public keyword, as the CLI's --format
                images: str | os.PathLike[str] | None = None, split: str | None = None) -> Source:
    """A publish source for ``path``: JSONL droplets, a COCO instances JSON or a YOLO folder.

    ``images``: where local image paths resolve (JSONL: default the file's folder; COCO: the folder of
    the ``file_name``s, default the JSON's folder; YOLO: not used). ``split``: the split for every item
    that has none of its own (COCO files, flat YOLO folders).
    """
    fmt = format or detect_format(path)
    if fmt == "jsonl":
        if split is not None:
            raise SourceFormatError("split= applies to COCO and YOLO sources; JSONL lines carry a 'split' field")
        return JsonlSource(path, images)
    if fmt == "coco":
        return CocoSource(path, images, split=split)
    if fmt == "yolo":
        if images is not None:
            raise SourceFormatError("images= does not apply to a YOLO folder (its images/ folder is used)")
        return YoloSource(path, split=split)
    raise SourceFormatError(f"unknown format {fmt!r}: use 'jsonl', 'coco' or 'yolo'")
