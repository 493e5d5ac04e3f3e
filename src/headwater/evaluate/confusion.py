"""datatap's confusion matrix: ground truth × predictions, with a background row and column.

datatap 0.3.0's ``ConfusionMatrix.add_annotation`` means, per image: take every ground-truth instance
and every prediction whose confidence is at least the confidence threshold (no confidence counts as
meeting it), pair them one-to-one by the assignment that maximises the total IoU *across classes*
(:mod:`.assignment`), and keep the pairs with IoU ≥ the IoU threshold. A kept pair counts in cell
(ground-truth class, predicted class) — the diagonal holds correct detections, the rest confusions;
a ground truth left unpaired counts in (its class, background), a prediction left unpaired in
(background, its class). Row and column 0 are ``"__background__"``, as in datatap; (0, 0) stays 0.

Example:
    >>> import numpy as np
    >>> cm = ConfusionCounts()
    >>> # one image: a cat found as a dog (IoU .8), and a stray prediction of a cat
    >>> cm.add_image(np.array([0]), np.array([1, 0]), np.array([[0.8], [0.0]]), 0.5)
    >>> cm.matrix(["cat", "dog"]).tolist()
    [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .assignment import best_assignment

__all__ = ["BACKGROUND", "ConfusionCounts", "ConfusionMatrix"]

BACKGROUND = "__background__"


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts ``matrix[i, j]``: ground truth of ``classes[i]`` predicted as ``classes[j]`` (0: background)."""

    classes: list[str]
    matrix: npt.NDArray[np.int64]
    iou_threshold: float
    confidence_threshold: float

    def to_json(self) -> dict[str, object]:
        return {"classes": self.classes, "matrix": self.matrix.tolist(), "iouThreshold": self.iou_threshold,
                "confidenceThreshold": self.confidence_threshold,
                "rows": "ground truth", "columns": "predictions"}


class ConfusionCounts:
    """Accumulates the cells image by image; class indices are 0-based here (background is -1)."""

    def __init__(self) -> None:
        self.cells: Counter[tuple[int, int]] = Counter()

    def add_image(self, gt_cls: npt.NDArray[np.int64], det_cls: npt.NDArray[np.int64],
                  ious: npt.NDArray[np.float64], iou_threshold: float) -> None:
        """One image: ``ious[len(det_cls), len(gt_cls)]`` between its kept predictions and ground truth."""
        pairs = best_assignment(ious) if ious.size else []
        self.add_pairs(gt_cls, det_cls, [(d, g) for d, g in pairs if ious[d, g] >= iou_threshold])

    def add_pairs(self, gt_cls: npt.NDArray[np.int64], det_cls: npt.NDArray[np.int64],
                  kept: list[tuple[int, int]]) -> None:
        """One image whose kept (prediction, ground truth) pairs are already known."""
        det_used = np.zeros(len(det_cls), bool)
        gt_used = np.zeros(len(gt_cls), bool)
        for d, g in kept:
            self.cells[int(gt_cls[g]), int(det_cls[d])] += 1
            det_used[d] = gt_used[g] = True
        self.add_unmatched(gt_cls[~gt_used], det_cls[~det_used])

    def add_unmatched(self, gt_cls: npt.NDArray[np.int64], det_cls: npt.NDArray[np.int64]) -> None:
        for c, n in zip(*np.unique(gt_cls, return_counts=True), strict=True):
            self.cells[int(c), -1] += int(n)
        for c, n in zip(*np.unique(det_cls, return_counts=True), strict=True):
            self.cells[-1, int(c)] += int(n)

    def add_matched(self, gt_cls: npt.NDArray[np.int64], det_cls: npt.NDArray[np.int64]) -> None:
        """Kept pairs given as two aligned class arrays (the many images without any conflict)."""
        for (g, d), n in Counter(zip(gt_cls.tolist(), det_cls.tolist(), strict=True)).items():
            self.cells[g, d] += n

    def matrix(self, classes: list[str], remap: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.int64]:
        """The (1 + K)² matrix for ``classes``; ``remap`` maps internal class indices to positions."""
        out = np.zeros((len(classes) + 1, len(classes) + 1), np.int64)
        for (g, d), n in self.cells.items():
            r = 0 if g < 0 else 1 + int(remap[g] if remap is not None else g)
            c = 0 if d < 0 else 1 + int(remap[d] if remap is not None else d)
            out[r, c] += n
        return out
