"""datatap's precision–recall curve of a class and its max-F1 operating point.

datatap 0.3.0's ``PrecisionRecallCurve`` means: for each distinct confidence ``c`` among the
predictions, precision = true positives / predictions with confidence ≥ ``c`` and recall = true
positives / ground truth; ``maximize_f1`` walks the points from the highest threshold down and keeps
the last one whose F1 (harmonic mean, 0 when precision or recall is 0) is ≥ the best so far — ties
go to the lower threshold — starting from (threshold 1, P 0, R 0, F1 0). headwater draws one curve per
class; a prediction is a true positive when COCO's matching (:mod:`.matching`, area "all") pairs it
with a ground truth of its class at the chosen IoU threshold — datatap re-solves its assignment at
every threshold instead, which can only differ where one prediction overlaps several ground truths.

Example:
    >>> import numpy as np
    >>> c = pr_curve("cat", np.array([0.9, 0.8, 0.8, 0.3]), np.array([True, False, True, True]), 4)
    >>> c.thresholds.tolist(), c.precision.tolist(), c.recall.tolist()
    ([0.9, 0.8, 0.3], [1.0, 0.6666666666666666, 0.75], [0.25, 0.5, 0.75])
    >>> c.best
    MaxF1(threshold=0.3, precision=0.75, recall=0.75, f1=0.75)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["MaxF1", "PrCurve", "pr_curve"]


class MaxF1(NamedTuple):
    """datatap's ``MaximizeF1Result``: the operating point with the best F1."""

    threshold: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class PrCurve:
    """One class's curve: a point per distinct confidence, highest first."""

    class_name: str
    thresholds: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]
    ground_truth: int
    best: MaxF1 | None

    def to_json(self) -> dict[str, object]:
        return {"class": self.class_name, "groundTruth": self.ground_truth,
                "thresholds": self.thresholds.tolist(), "precision": self.precision.tolist(),
                "recall": self.recall.tolist(), "maxF1": None if self.best is None else self.best._asdict()}


def pr_curve(class_name: str, scores: npt.NDArray[np.float64], true_positive: npt.NDArray[np.bool_],
             ground_truth: int) -> PrCurve:
    """The curve of one class from its predictions' scores (sorted high to low) and true-positive flags."""
    empty = np.zeros(0)
    if ground_truth == 0:
        return PrCurve(class_name, empty, empty, empty, 0, None)
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True]) if len(scores) else np.zeros(0, np.int64)
    tp = np.cumsum(true_positive)[last].astype(float)
    precision = tp / (last + 1)
    recall = tp / ground_truth
    best = MaxF1(1.0, 0.0, 0.0, 0.0)
    for t, p, r in zip(scores[last].tolist(), precision.tolist(), recall.tolist(), strict=True):
        f1 = 2 / ((1 / p) + (1 / r)) if p > 0 and r > 0 else 0.0
        if f1 >= best.f1:
            best = MaxF1(t, p, r, f1)
    return PrCurve(class_name, scores[last].astype(float), precision, recall, ground_truth, best)
