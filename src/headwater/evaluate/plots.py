"""The evaluation as pictures: PR curves per class and the confusion matrix as a heat map (PNG).

Drawn with Pillow, which headwater already depends on, so a plot needs no display, no matplotlib and
no extra: a few axes, polylines and cells are all these pictures are. Each class gets a panel of a
grid (precision against recall, its max-F1 point as a dot, the class's AP in the title); the heat map
colours each cell by its share of its ground-truth row (the background row by its share of all false
positives) and prints the count when the cells are large enough to hold it.

Example:
    >>> import numpy as np, tempfile, os
    >>> from headwater.evaluate.pr_curves import pr_curve
    >>> from headwater.evaluate.confusion import ConfusionMatrix
    >>> d = tempfile.mkdtemp()
    >>> c = pr_curve("cat", np.array([0.9, 0.5]), np.array([True, False]), 2)
    >>> draw_pr_curves([c], os.path.join(d, "pr.png"), {"cat": 0.5}).size
    (260, 250)
    >>> cm = ConfusionMatrix(["__background__", "cat"], np.array([[0, 1], [1, 1]]), 0.5, 0.5)
    >>> draw_confusion(cm, os.path.join(d, "confusion.png")).size[0] > 100
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .confusion import ConfusionMatrix
from .pr_curves import PrCurve

__all__ = ["draw_confusion", "draw_pr_curves"]

_PANEL = (260, 250)
_PLOT = (40, 30, 245, 220)  # left, top, right, bottom of the axes inside a panel


def draw_pr_curves(curves: Sequence[PrCurve], path: str, ap: Mapping[str, float] | None = None,
                   columns: int = 6) -> Image.Image:
    """One panel per class with ground truth, in a grid; saved as PNG at ``path`` and returned."""
    shown = [c for c in curves if c.ground_truth > 0] or list(curves[:1])
    cols = max(1, min(columns, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    img = Image.new("RGB", (_PANEL[0] * cols, _PANEL[1] * rows), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, top, right, bottom = _PLOT
    for n, curve in enumerate(shown):
        ox, oy = (n % cols) * _PANEL[0], (n // cols) * _PANEL[1]
        draw.rectangle((ox + left, oy + top, ox + right, oy + bottom), outline="black")
        for tick in (0.0, 0.5, 1.0):
            x = ox + left + tick * (right - left)
            y = oy + bottom - tick * (bottom - top)
            draw.text((x - 8, oy + bottom + 4), f"{tick:g}", fill="black", font=font)
            draw.text((ox + left - 22, y - 6), f"{tick:g}", fill="black", font=font)
        title = curve.class_name if ap is None or curve.class_name not in ap else \
            f"{curve.class_name}  AP {ap[curve.class_name]:.3f}"
        draw.text((ox + left, oy + 8), title[:40], fill="black", font=font)
        draw.text((ox + (left + right) // 2 - 15, oy + bottom + 16), "recall", fill="gray", font=font)

        def at(r: float, p: float, ox: int = ox, oy: int = oy) -> tuple[float, float]:
            return (ox + left + r * (right - left), oy + bottom - p * (bottom - top))

        pts = [at(r, p) for r, p in zip(curve.recall.tolist(), curve.precision.tolist(), strict=True)]
        if len(pts) > 1:
            draw.line(pts, fill=(31, 119, 180), width=2)
        elif pts:
            draw.point(pts, fill=(31, 119, 180))
        if curve.best is not None and curve.best.f1 > 0:
            x, y = at(curve.best.recall, curve.best.precision)
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(214, 39, 40))
            draw.text((x + 6, y - 14), f"F1 {curve.best.f1:.2f} @ {curve.best.threshold:.2f}", fill=(214, 39, 40),
                      font=font)
    img.save(path, format="PNG")
    return img


def draw_confusion(confusion: ConfusionMatrix, path: str, cell: int | None = None) -> Image.Image:
    """The matrix as a heat map (rows: ground truth, columns: predictions); saved as PNG and returned."""
    matrix = confusion.matrix.astype(float)
    n = len(confusion.classes)
    cell = cell or max(6, min(40, 900 // max(n, 1)))
    margin = 110
    img = Image.new("RGB", (margin + n * cell + 10, margin + n * cell + 10), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    totals = matrix.sum(axis=1, keepdims=True)
    totals[0] = max(matrix[0].sum(), 1)
    share = np.divide(matrix, np.maximum(totals, 1))
    for r in range(n):
        for c in range(n):
            v = float(share[r, c])
            colour = (int(255 - 225 * v), int(255 - 160 * v), int(255 - 60 * v))
            box = (margin + c * cell, margin + r * cell, margin + (c + 1) * cell - 1, margin + (r + 1) * cell - 1)
            draw.rectangle(box, fill=colour)
            if cell >= 28 and matrix[r, c]:
                draw.text((box[0] + 3, box[1] + cell // 2 - 6), f"{int(matrix[r, c])}",
                          fill="white" if v > 0.5 else "black", font=font)
    if cell >= 10:
        for i, name in enumerate(confusion.classes):
            label = "background" if i == 0 else name
            draw.text((4, margin + i * cell + cell // 2 - 6), label[:16], fill="black", font=font)
            draw.text((margin + i * cell + 2, margin - 14 - (i % 2) * 12), label[:6], fill="black", font=font)
    draw.text((4, 4), "rows: ground truth, columns: predicted", fill="black", font=font)
    draw.text((4, 18), f"IoU >= {confusion.iou_threshold:g}, confidence >= {confusion.confidence_threshold:g}",
              fill="black", font=font)
    img.save(path, format="PNG")
    return img
