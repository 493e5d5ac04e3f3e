"""Segmentation masks as pycocotools does them: polygons rasterised to RLE, areas, and mask IoU.

To agree with pycocotools' ``segm`` numbers to the last bit, the masks must be the very pixels it
rasterises, so pycocotools' own mask API is the engine here (the ``evaluate`` extra): an instance's
polygons (in pixels) go through ``frPyObjects(polygons, height, width)`` and ``merge`` — the union of
its polygons, as COCO does for a ground-truth annotation; a hole drawn as an inner polygon (a droplet's
even-odd rule) is therefore filled, as it would be after exporting to COCO polygons. The area of a
mask is its pixel count (``mask.area``, what pycocotools' ``loadRes`` gives a segmentation result).

Example:
    >>> rle = polygons_rle([[0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]], 20, 20)
    >>> rle_area(rle), mask_ious([rle], [rle]).tolist()
    (100.0, [[1.0]])
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import require_extra

__all__ = ["mask_ious", "polygons_rle", "rle_area"]

_api: ModuleType | None = None


def _mask_api() -> ModuleType:
    global _api
    if _api is None:
        _api = require_extra("evaluate", "pycocotools.mask", "segmentation metrics (--iou-type segm)")
    return _api


def polygons_rle(polygons: list[list[float]], height: int, width: int) -> dict[str, Any]:
    """One instance's pixel polygons (flat ``[x0, y0, …]``, ≥ 3 points each) → its compressed RLE."""
    api = _mask_api()
    usable = [p for p in polygons if len(p) >= 6]
    if not usable:
        usable = [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    rle: dict[str, Any] = api.merge(api.frPyObjects(usable, height, width))
    return rle


def rle_area(rle: dict[str, Any]) -> float:
    """Pixel count of a mask."""
    return float(_mask_api().area(rle))


def mask_ious(dets: list[dict[str, Any]], gts: list[dict[str, Any]]) -> npt.NDArray[np.float64]:
    """[len(dets), len(gts)] IoU of masks (no crowd), pycocotools' ``maskUtils.iou``."""
    if not dets or not gts:
        return np.zeros((len(dets), len(gts)))
    return np.asarray(_mask_api().iou(dets, gts, [0] * len(gts)), dtype=np.float64).reshape(len(dets), len(gts))
