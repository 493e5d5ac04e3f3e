"""Box IoU of every (detection, ground truth) pair in the same (image, class) group, as pycocotools does it.

pycocotools computes box IoU in C (``bbIou``) from ``[x, y, w, h]``: the intersection's width is
``min(x_d + w_d, x_g + w_g) − max(x_d, x_g)``, the union ``w_d·h_d + w_g·h_g − inter``. The same
operations in the same order on the same doubles give the same bits here, so an IoU that lands
exactly on a threshold is decided the same way.

Example:
    >>> import numpy as np
    >>> d, g, iou = box_pairs(np.array([0, 1]), np.array([[0., 0., 10., 10.], [0., 0., 4., 4.]]),
    ...                       np.array([0]), np.array([[5., 0., 10., 10.]]))
    >>> d.tolist(), g.tolist(), iou.tolist()  # detection 1 is in another group: no pair
    ([0], [0], [0.3333333333333333])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["box_pairs", "group_pairs"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def group_pairs(det_group: Ints, gt_group: Ints) -> tuple[Ints, Ints]:
    """Every (detection, ground truth) index pair sharing a group; ``gt_group`` must be sorted."""
    lo = np.searchsorted(gt_group, det_group, side="left")
    counts = np.searchsorted(gt_group, det_group, side="right") - lo
    total = int(counts.sum())
    pair_det = np.repeat(np.arange(len(det_group), dtype=np.int64), counts)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return pair_det, (lo[pair_det] + offsets).astype(np.int64)


def box_pairs(det_group: Ints, det_boxes: Floats, gt_group: Ints, gt_boxes: Floats) -> tuple[Ints, Ints, Floats]:
    """``(pair_det, pair_gt, iou)`` for all same-group pairs; boxes ``[n, 4]`` as COCO ``x, y, w, h``."""
    pair_det, pair_gt = group_pairs(det_group, gt_group)
    d, g = det_boxes[pair_det], gt_boxes[pair_gt]
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    union = d[:, 2] * d[:, 3] + g[:, 2] * g[:, 3] - inter
    ok = (w > 0) & (h > 0)
    iou = np.zeros(len(pair_det))
    iou[ok] = inter[ok] / union[ok]
    return pair_det, pair_gt, iou
