"""From normalised droplets to pixels: each image's size, boxes in pixels, areas.

Droplets are normalised to ``[0, 1]``, but COCO's area ranges (small < 32², medium < 96², large) and
its box coordinates are in pixels, so every evaluated image needs its pixel size. headwater takes it,
in this order, from:

1. the ground-truth droplet's ``metadata`` — ``{"width": W, "height": H}``, what the COCO importer
   writes (:mod:`headwater.publish.sources.coco`);
2. ``image_sizes``: a mapping from image uid or image path to ``(width, height)``, or a callable given
   the droplet that returns it — :func:`image_header_sizes` reads the image header through an
   :class:`~headwater.droplet.ImageFetcher` (Pillow reads only the header, not the pixels).

A rectangle ``[[x1, y1], [x2, y2]]`` of an image ``W × H`` pixels becomes the COCO box
``[x1·W, y1·H, (x2 − x1)·W, (y2 − y1)·H]``; its **area** is that box's ``w · h`` (what pycocotools
computes for a detection, and what headwater uses for the ground truth too). A segmentation's area is
the pixel count of its rasterised mask (:mod:`.masks`), again what pycocotools computes for a
detection. Predictions take the size of the ground-truth image they are paired with.

Example:
    >>> from headwater.droplet import Rectangle
    >>> pixel_box(Rectangle.from_xyxy(0.25, 0.5, 0.75, 1.0), 640, 480)
    (160.0, 240.0, 320.0, 240.0)
    >>> d = ImageAnnotation.from_json({"image": {"paths": ["a.jpg"]}, "classes": {},
    ...                                "metadata": {"width": 640, "height": 480}})
    >>> image_size(d, None)
    (640, 480)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from ..droplet import ImageAnnotation, ImageFetcher, Rectangle
from ..droplet.geometry import Point
from .errors import ImageSizeError

__all__ = ["ImageSizes", "image_header_sizes", "image_size", "pixel_box", "pixel_polygons"]

ImageSizes = Mapping[str, tuple[int, int]] | Callable[[ImageAnnotation], tuple[int, int]] | None
"""Where image sizes come from when droplets carry none: uid/path → ``(width, height)``, or a callable."""


def _size_of(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value) if float(value).is_integer() else None


def image_size(droplet: ImageAnnotation, image_sizes: ImageSizes) -> tuple[int, int]:
    """``(width, height)`` of the droplet's image in pixels (see the module docstring for the order)."""
    meta = droplet.metadata
    if meta is not None:
        w, h = _size_of(meta.get("width")), _size_of(meta.get("height"))
        if w is not None and h is not None:
            return w, h
    if callable(image_sizes):
        w, h = image_sizes(droplet)
        return int(w), int(h)
    if image_sizes is not None:
        for key in ([droplet.image.uid] if droplet.image.uid else []) + list(droplet.image.paths):
            if key in image_sizes:
                w, h = image_sizes[key]
                return int(w), int(h)
    where = droplet.image.uid or (droplet.image.paths[0] if droplet.image.paths else "?")
    raise ImageSizeError(f"image {where}: no pixel size (no metadata width/height and none in image_sizes)")


def image_header_sizes(fetcher: ImageFetcher) -> Callable[[ImageAnnotation], tuple[int, int]]:
    """An ``image_sizes`` callable that reads each image's header through ``fetcher`` (pool, URL or file).

    >>> import os, tempfile
    >>> from PIL import Image as PILImage
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> PILImage.new("RGB", (64, 48)).save(path)
    >>> sizes = image_header_sizes(ImageFetcher())
    >>> sizes(ImageAnnotation.from_json({"image": {"paths": [path]}, "classes": {}}))
    (64, 48)
    """
    from PIL import Image as PILImage

    def read(droplet: ImageAnnotation) -> tuple[int, int]:
        with PILImage.open(io.BytesIO(fetcher.fetch(droplet))) as img:
            return img.size

    return read


def pixel_box(rect: Rectangle, width: int, height: int) -> tuple[float, float, float, float]:
    """The COCO box ``(x, y, w, h)`` in pixels of a normalised rectangle."""
    x1, y1, x2, y2 = float(rect.p1.x), float(rect.p1.y), float(rect.p2.x), float(rect.p2.y)
    return (x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height)


def pixel_polygons(mask: list[list[Point]], width: int, height: int) -> list[list[float]]:
    """A segmentation's polygons as COCO's flat pixel lists ``[x0, y0, x1, y1, …]``."""
    return [[c for p in poly for c in (float(p.x) * width, float(p.y) * height)] for poly in mask]
