"""The label font: DejaVu Sans when the system has it (wide Unicode coverage), else Pillow's own.

Why look for a system font: Pillow's built-in font covers Latin only; class names in datasets are often
not (``"猫"``, ``"Ölfass"``). A glyph a font lacks is drawn as a box, never an error. Fonts are loaded
once per size *and thread*: a FreeType face is not safe to use from two threads at once, and the CLI and
the viewer render on thread pools.

Example:
    >>> font = label_font(14)
    >>> text_size(font, "cat 0.93")[1] > 0
    True
"""

from __future__ import annotations

import threading

from PIL import ImageFont

__all__ = ["Font", "label_font", "text_size", "printable"]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_CANDIDATES = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "LiberationSans-Regular.ttf",
               "Arial.ttf")


_PER_THREAD = threading.local()


def label_font(size: int) -> Font:
    """A font ``size`` pixels high for labels (cached per thread)."""
    fonts: dict[int, Font] | None = getattr(_PER_THREAD, "fonts", None)
    if fonts is None:
        fonts = _PER_THREAD.fonts = {}
    font = fonts.get(size)
    if font is None:
        font = fonts[size] = _load(size)
    return font


def _load(size: int) -> Font:
    for name in _CANDIDATES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size)
    except (OSError, ImportError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def printable(font: Font, text: str) -> str:
    """``text`` as ``font`` can take it: the bitmap fallback font only encodes Latin-1."""
    if isinstance(font, ImageFont.FreeTypeFont):
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def text_size(font: Font, text: str) -> tuple[int, int]:
    """Width and height in pixels of ``text`` drawn with ``font``."""
    left, top, right, bottom = font.getbbox(printable(font, text))
    return int(right - min(left, 0)), int(bottom - min(top, 0))
