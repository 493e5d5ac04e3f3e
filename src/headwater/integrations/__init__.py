"""Layer 7: bridges to other formats and frameworks.

Importers turn COCO instances JSON (:class:`CocoSource`) and YOLO txt folders (:class:`YoloSource`) into
publish sources; :func:`open_source` picks the reader from the path. The PyTorch dataset lives in
``headwater.integrations.torch`` and is *not* imported here, so importing this package never imports
torch.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "droplets.jsonl")
    >>> _ = open(path, "w").write("")
    >>> detect_format(path)
    'jsonl'
"""

from __future__ import annotations

import os
from typing import Literal

from ..client.publish import JsonlSource, Source
from ..errors import HeadwaterError
from .coco import CocoFormatError, CocoSource
from .yolo import IMAGE_EXTENSIONS, YoloFormatError, YoloSource, read_class_names

__all__ = [
    "CocoFormatError", "CocoSource", "YoloFormatError", "YoloSource", "IMAGE_EXTENSIONS", "read_class_names",
    "SourceFormatError", "detect_format", "open_source",
]

Format = Literal["jsonl", "coco", "yolo"]


class SourceFormatError(HeadwaterError, ValueError):
    """The source's format cannot be told from its path, or is unknown."""


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


def open_source(path: str | os.PathLike[str], *, format: str | None = None,
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
