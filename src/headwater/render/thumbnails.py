"""Decoding an image at the size it will be shown: JPEGs at reduced scale with :meth:`PIL.Image.Image.draft`.

Why: a 4000×3000 JPEG decoded whole is 36 MB of pixels to make a 256-pixel thumbnail. libjpeg can decode
at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients (``draft``), which costs a fraction of a full
decode; the last step to the exact size is a small resize. Other formats are decoded whole and resized.
The overlay is drawn afterwards at the output scale (:mod:`.draw`), so lines stay one crisp pixel width
instead of being blurred by the resize.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (1600, 1200), "navy").save(buf, "JPEG")
    >>> decode_image(buf.getvalue(), 256).size
    (256, 192)
    >>> fit_size((1600, 1200), 256), fit_size((100, 50), 256)
    ((256, 192), (100, 50))
"""

from __future__ import annotations

import io

from PIL import Image

from .errors import RenderError

__all__ = ["decode_image", "fit_size"]


def fit_size(size: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    """``size`` scaled down (never up) so that its longer side is at most ``max_size`` (None: unchanged)."""
    if max_size is None:
        return size
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise RenderError(f"max_size must be a positive number of pixels, got {max_size!r}")
    width, height = size
    longest = max(width, height)
    if longest <= max_size:
        return size
    scale = max_size / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_image(data: bytes, max_size: int | None = None) -> Image.Image:
    """The RGB image in ``data``, its longer side at most ``max_size`` (JPEGs decoded at reduced scale).

    Raises what Pillow raises for bytes that are not an image it can decode (``OSError``,
    ``Image.DecompressionBombError``, ``ValueError``, …); :func:`~headwater.render.render` turns
    those into a placeholder.
    """
    opened = Image.open(io.BytesIO(data))
    target = fit_size(opened.size, max_size)
    if target != opened.size:
        opened.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8 scale, no smaller than target
    opened.load()
    image: Image.Image = opened
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba).convert("RGB")
        else:
            image = image.convert("RGB")
    if image.size != target:
        # after draft the image is at most ~2x the target: an antialiased bilinear step is enough
        image = image.resize(target, Image.Resampling.BILINEAR)
    return image
