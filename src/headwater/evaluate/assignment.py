"""Optimal one-to-one assignment (the Hungarian method), for datatap's confusion matrix.

datatap 0.3.0 pairs an image's predictions with its ground truth by the assignment that maximises the
sum of IoUs (``scipy.optimize.linear_sum_assignment(iou, maximize=True)``), then keeps pairs with IoU ≥
the threshold. Images are small (tens of boxes), so a plain O(n²·m) Hungarian method in Python is
enough — and it is only run where a box overlaps more than one box of the other side; elsewhere the
assignment is plain. Among assignments of equal total, which one is returned is unspecified (as in
scipy).

Example:
    >>> import numpy as np
    >>> best_assignment(np.array([[0.9, 0.8], [0.85, 0.0]]))  # 0.8 + 0.85 beats 0.9 + 0
    [(0, 1), (1, 0)]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["best_assignment", "kept_pairs"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def best_assignment(score: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """Row → column pairs maximising the total score (every row or every column assigned)."""
    if score.size == 0:
        return []
    if score.shape[0] > score.shape[1]:
        return sorted((r, c) for c, r in best_assignment(score.T))
    cost = (-score).tolist()
    n, m = score.shape
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    owner, way = [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = owner[j0], inf, 0
            row = cost[i0 - 1]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = row[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    return sorted((owner[j] - 1, j - 1) for j in range(1, m + 1) if owner[j])


def kept_pairs(pd: Ints, pg: Ints, iou: Floats, n_det: int, threshold: float) -> tuple[Ints, Ints]:
    """datatap's max-total-IoU assignment over positive-IoU pairs, → the kept (det, gt) pairs (IoU ≥ threshold).

    Zero-IoU pairs add nothing to the total, so the assignment splits into the connected components of
    the positive-IoU graph: a component with one detection or one ground truth takes its best pair; only
    components with several of both need the Hungarian method. ``pd``/``pg``: detection and ground-truth
    indices of the positive-IoU pairs (``n_det`` detections in all).

    >>> import numpy as np
    >>> d, g = kept_pairs(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.9, 0.8, 0.85]), 2, 0.5)
    >>> sorted(zip(d.tolist(), g.tolist()))  # 0.8 + 0.85 beats 0.9 alone
    [(0, 1), (1, 0)]
    """
    if len(pd) == 0:
        return pd, pg
    node_d, node_g = pd, pg + n_det
    label = np.arange(n_det + int(pg.max()) + 1, dtype=np.int64)
    while True:  # label propagation: every node ends with the smallest node id of its component
        low = np.minimum(label[node_d], label[node_g])
        before = label.copy()
        np.minimum.at(label, node_d, low)
        np.minimum.at(label, node_g, low)
        label = label[label]
        if np.array_equal(label, before):
            break
    comp = label[node_d]
    _, comp_id, comp_pairs = np.unique(comp, return_inverse=True, return_counts=True)
    comp_id = comp_id.astype(np.int64)
    first_d = np.zeros(len(comp_pairs), np.int64)
    first_g = np.zeros(len(comp_pairs), np.int64)
    first_d[comp_id] = pd
    first_g[comp_id] = pg
    one_d = np.bincount(comp_id, weights=(pd != first_d[comp_id]), minlength=len(comp_pairs)) == 0
    one_g = np.bincount(comp_id, weights=(pg != first_g[comp_id]), minlength=len(comp_pairs)) == 0
    star = one_d | one_g
    order = np.lexsort((-iou, comp_id))
    best = order[np.r_[True, comp_id[order][1:] != comp_id[order][:-1]]]
    best = best[star[comp_id[best]]]
    chosen_d, chosen_g, chosen_iou = [pd[best]], [pg[best]], [iou[best]]
    tangled = np.flatnonzero(~star[comp_id])
    if len(tangled):
        t_order = tangled[np.argsort(comp_id[tangled], kind="stable")]
        bounds = np.flatnonzero(np.diff(comp_id[t_order])) + 1
        for part in np.split(t_order, bounds):
            ds, gs = np.unique(pd[part]), np.unique(pg[part])
            m = np.zeros((len(ds), len(gs)))
            m[np.searchsorted(ds, pd[part]), np.searchsorted(gs, pg[part])] = iou[part]
            rows, cols = np.asarray(best_assignment(m), np.int64).reshape(-1, 2).T
            chosen_d.append(ds[rows])
            chosen_g.append(gs[cols])
            chosen_iou.append(m[rows, cols])
    kd, kg = np.concatenate(chosen_d).astype(np.int64), np.concatenate(chosen_g).astype(np.int64)
    kiou = np.concatenate(chosen_iou)
    keep = kiou >= threshold
    return kd[keep], kg[keep]
