"""A contact sheet: many renderings on one image, in a ``cols``×``rows`` grid of square cells.

Why: a thousand droplets are checked faster by eye on a few sheets than in a thousand files. Each cell
holds one rendering fitted into ``tile``×``tile`` pixels (centred, never enlarged), and optionally a
caption below it (the droplet's ordinal or uid). A rendering with flags gets an orange frame, so a
clipped droplet stands out; a placeholder already names its problem.

Example:
    >>> from PIL import Image
    >>> from .draw import Rendered
    >>> tiles = [Rendered(Image.new("RGB", (300, 200), "white")), Rendered(Image.new("RGB", (50, 80)))]
    >>> contact_sheet(tiles, 3, 2, tile=100).size
    (300, 200)
    >>> contact_sheet(tiles, 2, 1, tile=100, captions=["#0", "#1"]).size[1] > 100
    True
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from .draw import Rendered
from .errors import RenderError
from .fonts import label_font, printable, text_size

__all__ = ["contact_sheet", "sheet_size"]

_BACKGROUND = (24, 24, 28)
_CAPTION = (220, 220, 220)
_FLAGGED = (255, 140, 0)


def _caption_height(tile: int) -> int:
    return text_size(label_font(_caption_font_size(tile)), "Ag")[1] + 6


def _caption_font_size(tile: int) -> int:
    return max(9, min(16, tile // 16))


def sheet_size(cols: int, rows: int, *, tile: int = 256, captions: bool = False) -> tuple[int, int]:
    """The pixel size of a sheet of ``cols``×``rows`` cells of ``tile`` pixels (with a caption band or not)."""
    return cols * tile, rows * (tile + (_caption_height(tile) if captions else 0))


def contact_sheet(tiles: Sequence[Rendered], cols: int, rows: int, *, tile: int = 256,
                  captions: Sequence[str] | None = None) -> Image.Image:
    """``tiles`` laid out row by row on a ``cols``×``rows`` sheet (cells left over stay empty).

    Raises :class:`~headwater.render.RenderError` when the grid is not positive, holds fewer cells
    than tiles, or ``captions`` do not match ``tiles`` one to one.
    """
    for name, value in (("cols", cols), ("rows", rows), ("tile", tile)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RenderError(f"{name} must be a positive int, got {value!r}")
    if len(tiles) > cols * rows:
        raise RenderError(f"{len(tiles)} renderings do not fit a {cols}x{rows} grid ({cols * rows} cells)")
    if captions is not None and len(captions) != len(tiles):
        raise RenderError(f"{len(captions)} captions for {len(tiles)} renderings")
    caption_h = _caption_height(tile) if captions is not None else 0
    sheet = Image.new("RGB", sheet_size(cols, rows, tile=tile, captions=captions is not None), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = label_font(_caption_font_size(tile))
    for i, rendered in enumerate(tiles):
        cx, cy = (i % cols) * tile, (i // cols) * (tile + caption_h)
        image = rendered.image
        if image.width > tile - 2 or image.height > tile - 2:
            image = image.copy()
            image.thumbnail((tile - 2, tile - 2), Image.Resampling.BICUBIC)
        x, y = cx + (tile - image.width) // 2, cy + (tile - image.height) // 2
        sheet.paste(image.convert("RGB"), (x, y))
        if rendered.flags:
            draw.rectangle([cx, cy, cx + tile - 1, cy + tile - 1], outline=_FLAGGED, width=max(1, tile // 128))
        if captions is not None:
            text = printable(font, captions[i])
            while len(text) > 1 and text_size(font, text)[0] > tile - 4:
                text = text[:-2] + "…"
            w = text_size(font, text)[0]
            draw.text((cx + max(2, (tile - w) // 2), cy + tile + 2), text, font=font, fill=_CAPTION)
    return sheet
