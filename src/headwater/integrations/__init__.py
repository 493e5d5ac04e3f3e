"""Layer 9: bridges to frameworks — PyTorch now (:mod:`headwater.integrations.torch`), Ray Data next.

Nothing heavy is imported here: ``import headwater.integrations`` never imports torch.

The COCO and YOLO importers moved to :mod:`headwater.publish.sources` (they are publish sources); their
names are still importable from here for one release.

Example:
    >>> from headwater.integrations import CocoSource
    >>> CocoSource.__module__
    'headwater.publish.sources.coco'
"""

from __future__ import annotations

from ..publish import (
    IMAGE_EXTENSIONS,
    CocoFormatError,
    CocoSource,
    SourceFormatError,
    YoloFormatError,
    YoloSource,
    detect_format,
    open_source,
    read_class_names,
)

__all__ = [
    "CocoFormatError", "CocoSource", "YoloFormatError", "YoloSource", "IMAGE_EXTENSIONS", "read_class_names",
    "SourceFormatError", "detect_format", "open_source",
]
