"""COCOeval's detection parameters, as pycocotools 2.0.11 builds them (``Params.setDetParams``).

The thresholds are made with the same ``np.linspace`` calls, so they are the same floats: an IoU of
exactly 0.75 is compared against the very number pycocotools compares it against.

Example:
    >>> p = CocoParams()
    >>> p.iou_thresholds[[0, 5, 9]].tolist(), len(p.recall_thresholds), p.max_detections
    ([0.5, 0.75, 0.95], 101, (1, 10, 100))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["AREA_LABELS", "CocoParams"]

AREA_LABELS = ("all", "small", "medium", "large")
"""The area ranges' names, in COCOeval's order."""


def _iou_thresholds() -> npt.NDArray[np.float64]:
    return np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)


def _recall_thresholds() -> npt.NDArray[np.float64]:
    return np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)


@dataclass(frozen=True)
class CocoParams:
    """IoU thresholds .50:.05:.95, 101 recall points, at most 1/10/100 detections per image and class,
    and the area ranges all/small/medium/large in square pixels (both ends inclusive, as COCOeval)."""

    iou_thresholds: npt.NDArray[np.float64] = field(default_factory=_iou_thresholds)
    recall_thresholds: npt.NDArray[np.float64] = field(default_factory=_recall_thresholds)
    max_detections: tuple[int, int, int] = (1, 10, 100)
    area_ranges: tuple[tuple[float, float], ...] = (
        (0 ** 2, 1e5 ** 2), (0 ** 2, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))

    def to_json(self) -> dict[str, object]:
        """The parameters as JSON (for a report that says how it was computed)."""
        return {"iouThresholds": self.iou_thresholds.tolist(), "recallPoints": len(self.recall_thresholds),
                "maxDetections": list(self.max_detections),
                "areaRanges": {label: list(r) for label, r in zip(AREA_LABELS, self.area_ranges, strict=True)}}
