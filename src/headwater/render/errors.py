"""Errors of the rendering layer (the tree is drawn in :mod:`headwater.errors`)::

    RenderError (ValueError)        a request that cannot be drawn: an unknown format, a grid too small
                                    for its tiles, a size that is not a positive number

A bad or missing *image* is not an error here: :func:`~headwater.render.render` draws a placeholder tile
that names the problem, so a grid never fails because one image is bad.
"""

from __future__ import annotations

from ..errors import HeadwaterError

__all__ = ["RenderError"]


class RenderError(HeadwaterError, ValueError):
    """What was asked of the renderer cannot be drawn (a bad format, size or grid)."""
