"""Encoding a rendering to file bytes: JPEG (thumbnails), PNG (lossless, for checks), WEBP.

Example:
    >>> from PIL import Image
    >>> encode(Image.new("RGB", (8, 8)), "PNG")[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    >>> FORMATS["jpg"]
    'JPEG'
"""

from __future__ import annotations

import io

from PIL import Image

from .errors import RenderError

__all__ = ["encode", "FORMATS", "MEDIA_TYPES"]

FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
"""File suffix or format name (lower case) → the Pillow format :func:`encode` takes."""

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Pillow format → HTTP media type."""


def encode(image: Image.Image, fmt: str = "JPEG", quality: int = 85) -> bytes:
    """``image`` as ``fmt`` ("JPEG", "PNG" or "WEBP", any case); ``quality`` for JPEG and WEBP (1–100)."""
    name = FORMATS.get(str(fmt).lower())
    if name is None:
        raise RenderError(f"cannot encode {fmt!r}: give JPEG, PNG or WEBP")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise RenderError(f"quality must be an int in [1, 100], got {quality!r}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    buf = io.BytesIO()
    if name == "PNG":
        image.save(buf, "PNG", compress_level=6)
    else:
        image.save(buf, name, quality=quality)
    return buf.getvalue()
