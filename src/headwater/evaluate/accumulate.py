"""From per-detection match results to COCOeval's precision and recall arrays and its 12 ``stats``.

This is ``COCOeval.accumulate`` and ``summarize`` (pycocotools 2.0.11) over the bit sets of
:mod:`.matching`: for each class, area range and max-detections, the detections of all images (the
first N of each image and class), sorted by score with a stable sort — ties keep image order, then
rank — then cumulative true and false positives, precision made monotone from the right, and read at
the 101 recall points. The arrays have COCOeval's shapes (``precision[T, R, K, A, M]``,
``recall[T, K, A, M]``, −1 where a class has no ground truth), and each summary number is the same
``np.mean`` over the same array, so the stats agree to the last bit.

Example:
    >>> import numpy as np
    >>> p = CocoParams()
    >>> # one class, 2 ground truth boxes (all medium); detections: a hit at every IoU, then a miss
    >>> res = accumulate(p, np.array([0, 0]), np.array([0, 0]), np.array([0, 1]), np.array([0.9, 0.8]),
    ...                  np.array([[1023, 0]] * 4, np.uint16), np.array([[0, 0], [1023, 1023], [0, 0], [1023, 1023]],
    ...                  np.uint16), np.array([[2, 0, 2, 0]]))
    >>> [round(s, 4) for s in summarize(p, res.precision, res.recall)[:3]]
    [0.505, 0.505, 0.505]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .params import AREA_LABELS, CocoParams

__all__ = ["Accumulated", "accumulate", "summarize", "STAT_NAMES"]

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""The 12 numbers of ``COCOeval.stats``, in its order."""


@dataclass(frozen=True)
class Accumulated:
    """COCOeval's ``eval['precision']`` [T, R, K, A, M] and ``eval['recall']`` [T, K, A, M]."""

    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]


def accumulate(params: CocoParams, cls: npt.NDArray[np.int64], img: npt.NDArray[np.int64],
               rank: npt.NDArray[np.int64], score: npt.NDArray[np.float64],
               matched: npt.NDArray[np.uint16], ignored: npt.NDArray[np.uint16],
               gt_counted: npt.NDArray[np.int64]) -> Accumulated:
    """Precision and recall from one row per detection (class, image order, rank in its image and class,
    score) and its ``matched``/``ignored`` bit sets [areas, n]; ``gt_counted[K, A]``: ground truth that
    each area range does not ignore."""
    n_t, n_r = len(params.iou_thresholds), len(params.recall_thresholds)
    n_k, n_a = gt_counted.shape
    n_m = len(params.max_detections)
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    order = np.lexsort((rank, img, -score, cls))
    starts = np.searchsorted(cls[order], np.arange(n_k + 1))
    shifts = np.arange(n_t, dtype=np.uint16)[:, None]
    full = (1 << n_t) - 1
    first_count: dict[int, npt.NDArray[np.intp]] = {}
    for k in range(n_k):
        rows = order[starts[k]:starts[k + 1]]
        for m, max_det in enumerate(params.max_detections):
            sub = rows[rank[rows] < max_det]
            for a in range(n_a):
                npig = int(gt_counted[k, a])
                if npig == 0:
                    continue
                # a detection ignored at every threshold adds neither a true nor a false positive: the
                # cumulative counts just repeat, and so do precision and recall — dropping it changes no value
                kept = sub[(ignored[a, sub] & full) != full]
                nd = len(kept)
                if nd == 0:
                    recall[:, k, a, m] = 0
                    precision[:, :, k, a, m] = 0
                    continue
                tp = ((matched[a, kept][None, :] >> shifts) & 1).astype(bool)
                ig = ((ignored[a, kept][None, :] >> shifts) & 1).astype(bool)
                tps = tp & ~ig
                tp_sum = np.cumsum(tps, axis=1).astype(float)
                fp_sum = np.cumsum(~tp & ~ig, axis=1).astype(float)
                recall[:, k, a, m] = tp_sum[:, -1] / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                # COCOeval reads precision at searchsorted(tp_sum / npig, recall point, "left"): the first
                # detection whose count reaches j, the least count with j / npig >= the point (same division)
                if npig not in first_count:
                    first_count[npig] = np.searchsorted(np.arange(npig + 1) / npig, params.recall_thresholds,
                                                        side="left")
                need = first_count[npig][None, :]
                t_of, pos = np.nonzero(tps)
                have = np.bincount(t_of, minlength=n_t)[:, None]
                if len(pos):
                    begin = (np.cumsum(have[:, 0]) - have[:, 0])[:, None]
                    at = pos[np.clip(begin + need - 1, 0, len(pos) - 1)]
                    inds = np.where(need == 0, 0, np.where(need <= have, at, nd))
                else:
                    inds = np.where(need == 0, 0, nd) + np.zeros((n_t, 1), np.intp)
                inside = inds < nd
                q = np.zeros((n_t, n_r))
                t_in, r_in = np.nonzero(inside)
                q[t_in, r_in] = pr[t_in, inds[t_in, r_in]]
                precision[:, :, k, a, m] = q
    return Accumulated(precision, recall)


def _summarize(params: CocoParams, precision: npt.NDArray[np.float64], recall: npt.NDArray[np.float64],
               ap: bool, iou: float | None = None, area: str = "all", max_dets: int = 100) -> float:
    aind = [i for i, label in enumerate(AREA_LABELS) if label == area]
    mind = [i for i, m in enumerate(params.max_detections) if m == max_dets]
    if ap:
        s = precision
        if iou is not None:
            s = s[np.where(iou == params.iou_thresholds)[0]]
        s = s[:, :, :, aind, mind]
    else:
        s = recall
        if iou is not None:
            s = s[np.where(iou == params.iou_thresholds)[0]]
        s = s[:, :, aind, mind]
    valid = s[s > -1]
    return -1.0 if len(valid) == 0 else float(np.mean(valid))


def summarize(params: CocoParams, precision: npt.NDArray[np.float64],
              recall: npt.NDArray[np.float64]) -> list[float]:
    """COCOeval's 12 ``stats`` (``summarize`` for boxes and segmentation), in :data:`STAT_NAMES` order."""
    m1, m10, m100 = params.max_detections
    specs: list[tuple[bool, float | None, str, int]] = [
        (True, None, "all", m100), (True, .5, "all", m100), (True, .75, "all", m100),
        (True, None, "small", m100), (True, None, "medium", m100), (True, None, "large", m100),
        (False, None, "all", m1), (False, None, "all", m10), (False, None, "all", m100),
        (False, None, "small", m100), (False, None, "medium", m100), (False, None, "large", m100)]
    return [_summarize(params, precision, recall, ap, iou, area, md) for ap, iou, area, md in specs]
