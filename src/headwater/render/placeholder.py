"""The tile drawn in place of an image that is missing or cannot be decoded, naming the problem.

Why a tile and not an error: a grid of 60 thumbnails or a contact sheet of a thousand droplets must not
fail because one image is bad — and the bad one should be visible in the grid, with its reason.

Example:
    >>> tile = placeholder_tile("image missing: pool://imgs/7.jpg", 128)
    >>> tile.size, tile.mode
    ((128, 128), 'RGB')
"""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw

from .fonts import label_font, printable, text_size

__all__ = ["placeholder_tile"]

_BACKGROUND = (48, 48, 52)
_CROSS = (90, 60, 60)
_TEXT = (235, 235, 235)


def placeholder_tile(problem: str, size: int = 256) -> Image.Image:
    """A ``size``×``size`` dark tile with a faint cross and ``problem`` written on it (wrapped, cut to fit)."""
    size = max(16, size)
    tile = Image.new("RGB", (size, size), _BACKGROUND)
    draw = ImageDraw.Draw(tile)
    width = max(1, size // 64)
    draw.line([(0, 0), (size - 1, size - 1)], fill=_CROSS, width=width)
    draw.line([(0, size - 1), (size - 1, 0)], fill=_CROSS, width=width)
    font = label_font(max(9, min(18, size // 16)))
    line_height = text_size(font, "Ag")[1] + 2
    chars = max(8, int((size - 8) / max(1.0, text_size(font, "abcdefghij")[0] / 10)))
    lines = textwrap.wrap(problem, chars, break_long_words=True, max_lines=max(1, (size - 8) // line_height),
                          placeholder=" …")
    y = max(4, (size - line_height * len(lines)) // 2)
    for line in lines:
        line = printable(font, line)
        w = text_size(font, line)[0]
        x = max(4, (size - w) // 2)
        draw.rectangle([x - 2, y - 1, x + w + 2, y + line_height - 1], fill=_BACKGROUND)
        draw.text((x, y), line, fill=_TEXT, font=font)
        y += line_height
    return tile
