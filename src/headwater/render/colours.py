"""A stable colour per class: the same class has the same colour on every page, in every run and process.

Why a hash of the name (blake2b), not ``hash()``: Python salts ``hash()`` of strings per process, so two
thumbnails rendered by two workers would disagree. The hash picks a hue; saturation and value stay in a
band that reads on dark and on light images (the renderer also draws a dark halo around lines and text).

Example:
    >>> class_colour("person") == class_colour("person")
    True
    >>> class_colour_hex("person") == "#{:02x}{:02x}{:02x}".format(*class_colour("person"))
    True
"""

from __future__ import annotations

import colorsys
import functools
import hashlib

__all__ = ["class_colour", "class_colour_hex", "text_colour"]


@functools.lru_cache(maxsize=4096)
def class_colour(name: str) -> tuple[int, int, int]:
    """The RGB colour of class ``name`` (bright, saturated; stable across runs and processes).

    >>> class_colour("cat")
    (201, 240, 43)
    """
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    hue = int.from_bytes(digest[:4], "big") / 2**32
    saturation = 0.70 + 0.25 * digest[4] / 255
    value = 0.85 + 0.15 * digest[5] / 255
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def class_colour_hex(name: str) -> str:
    """:func:`class_colour` as ``"#rrggbb"`` (for HTML and SVG).

    >>> class_colour_hex("cat")
    '#c9f02b'
    """
    r, g, b = class_colour(name)
    return f"#{r:02x}{g:02x}{b:02x}"


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (by relative luminance).

    >>> text_colour((255, 255, 0)), text_colour((20, 20, 120))
    ((0, 0, 0), (255, 255, 255))
    """
    r, g, b = background
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)
