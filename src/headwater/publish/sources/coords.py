"""Shared coordinate checks for the importers: normalise, forgive float noise, refuse real overflow.

Why a tolerance: exported boxes often end a hair past the image edge (``x + w = 640.0001`` on a
640-pixel image, or ``1.0000001`` in a YOLO label). Such values are clipped to the edge; anything
further out is a real error in the source and is reported, never silently clipped.

Example:
    >>> unit(1.0004, 0.001), unit(-0.0002, 0.001), unit(1.2, 0.001)
    (1.0, 0.0, None)
    >>> unit_rectangle(0.1, 0.2, 0.5, 0.6, 0.0)
    [[0.1, 0.2], [0.5, 0.6]]
"""

from __future__ import annotations

import math

from ..errors import CoordinateError

__all__ = ["unit", "unit_point", "unit_rectangle"]


def unit(value: float, tolerance: float) -> float | None:
    """``value`` clipped to [0, 1] if it lies within ``tolerance`` of that range, else None."""
    if not math.isfinite(value) or value < -tolerance or value > 1.0 + tolerance:
        return None
    return min(max(value, 0.0), 1.0)


def unit_point(x: float, y: float, tol_x: float, tol_y: float) -> list[float]:
    """``[x, y]`` clipped to the unit square, or :class:`CoordinateError` when clearly outside."""
    ux, uy = unit(x, tol_x), unit(y, tol_y)
    if ux is None or uy is None:
        raise CoordinateError(f"point ({x:.6g}, {y:.6g}) lies outside the image")
    return [ux, uy]


def unit_rectangle(x1: float, y1: float, x2: float, y2: float, tol_x: float,
                   tol_y: float | None = None) -> list[list[float]]:
    """``[[x1, y1], [x2, y2]]`` clipped to the unit square; raises :class:`CoordinateError` when a
    corner is clearly outside or the clipped box has no area (datatap rectangles need x1 < x2, y1 < y2)."""
    tol_y = tol_x if tol_y is None else tol_y
    a, b = unit(x1, tol_x), unit(y1, tol_y)
    c, d = unit(x2, tol_x), unit(y2, tol_y)
    if a is None or b is None or c is None or d is None:
        raise CoordinateError(f"box ({x1:.6g}, {y1:.6g})-({x2:.6g}, {y2:.6g}) lies outside the image")
    if not (a < c and b < d):
        raise CoordinateError(f"box ({x1:.6g}, {y1:.6g})-({x2:.6g}, {y2:.6g}) has no area")
    return [[a, b], [c, d]]
