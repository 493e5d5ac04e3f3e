"""COCOeval's matching of detections to ground truth, vectorised over images, classes and thresholds.

COCOeval (pycocotools 2.0.11, ``evaluateImg``) matches per image and class, for each IoU threshold
``t`` and each area range: detections in order of score (stable sort, at most 100), each takes the
still-free ground truth with the highest IoU ≥ ``min(t, 1 − 1e-10)``, preferring ground truth that
the area range does not ignore; among equal IoUs the *last* such ground truth in order wins (its scan
replaces the best on ``>=``). A matched detection inherits its ground truth's ignore flag; an
unmatched one is ignored when its own area is outside the range.

What makes it cheap here, without changing one result:

* a detection with no ground-truth IoU ≥ the lowest threshold is unmatched at every threshold and
  cannot take anything from another detection, and a ground truth no detection reaches cannot be
  taken, so only *candidate pairs* (IoU ≥ the lowest threshold) enter the greedy loop;
* the area range changes only which ground truth is preferred; where an (image, class) group's
  candidate ground truth are all inside a range or all outside it, the matching is the same as with
  no preference, so it is computed once and reused — only *mixed* groups are re-run for that range;
* groups of the same shape (candidate detections × candidate ground truth) are solved together:
  the loop runs over a detection's rank in its group, every group and threshold at once in numpy.

The result per detection and area range is two bit sets over the thresholds (bit ``t``): matched, and
ignored — all that :mod:`.accumulate` needs, so boxes can be dropped as soon as a batch is matched.

Example:
    >>> import numpy as np
    >>> thr = np.array([0.5, 0.75])
    >>> # one image and class: detections 0 and 1 (by score) both overlap ground truth 0 (IoU .8, .9)
    >>> tp, ig = match_detections(np.array([0, 0]), np.zeros((1, 2), bool), np.array([0]), np.zeros((1, 1), bool),
    ...                           np.array([0, 1]), np.array([0, 0]), np.array([0.8, 0.9]), thr)
    >>> tp.tolist(), ig.tolist()  # the first detection takes it at both thresholds
    ([[3, 0]], [[0, 0]])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["match_detections"]

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]


def _starts(ids: Ints, n: int) -> Ints:
    """Index of the first element of each id 0..n-1 in a sorted id array."""
    return np.searchsorted(ids, np.arange(n)).astype(np.int64)


def _bits(flags: Bools) -> npt.NDArray[np.uint16]:
    """[n, T] booleans → n bit sets (bit t = flags[:, t])."""
    weights = (1 << np.arange(flags.shape[1], dtype=np.uint32)).astype(np.uint32)
    return (flags.astype(np.uint32) @ weights).astype(np.uint16)


def _greedy(prob_rows: Ints, d_count: Ints, g_count: Ints, pair_prob: Ints, pair_dl: Ints, pair_gl: Ints,
            pair_iou: Floats, gt_prob: Ints, gt_local: Ints, gt_ignored: Bools | None,
            thresholds: Floats) -> dict[int, npt.NDArray[np.int64]]:
    """Greedy matching of the problems ``prob_rows``; → problem → [T, D] local gt index (-1: none)."""
    out: dict[int, npt.NDArray[np.int64]] = {}
    if len(prob_rows) == 0:
        return out
    n_t = len(thresholds)
    thr = np.minimum(thresholds, 1 - 1e-10)[None, :, None]
    width = int(g_count.max()) + 1
    shape_key = d_count[prob_rows] * width + g_count[prob_rows]
    order = np.argsort(shape_key, kind="stable")
    rows_sorted, keys_sorted = prob_rows[order], shape_key[order]
    bounds = np.flatnonzero(np.diff(keys_sorted)) + 1
    bucket = np.full(len(d_count), -1, np.int64)
    bucket[rows_sorted] = np.cumsum(np.r_[0, np.diff(keys_sorted) != 0])
    n_b = len(bounds) + 1

    def by_bucket(prob: Ints) -> list[Ints]:
        b = bucket[prob]
        sel = np.flatnonzero(b >= 0)
        sel = sel[np.argsort(b[sel], kind="stable")]
        return np.split(sel, np.searchsorted(b[sel], np.arange(1, n_b)))

    pairs_of, gts_of = by_bucket(pair_prob), by_bucket(gt_prob)
    pos = np.full(len(d_count), -1, np.int64)
    for b, rows in enumerate(np.split(rows_sorted, bounds)):
        n_d, n_g = int(d_count[rows[0]]), int(g_count[rows[0]])
        pos[rows] = np.arange(len(rows))
        p_in = pairs_of[b]
        m = np.full((len(rows), n_d, n_g), -1.0)
        m[pos[pair_prob[p_in]], pair_dl[p_in], pair_gl[p_in]] = pair_iou[p_in]
        prefer: Bools | None = None
        if gt_ignored is not None:
            g_in = gts_of[b]
            prefer = np.ones((len(rows), n_g), bool)
            prefer[pos[gt_prob[g_in]], gt_local[g_in]] = ~gt_ignored[g_in]
        taken = np.zeros((len(rows), n_t, n_g), bool)
        res = np.full((len(rows), n_t, n_d), -1, np.int64)
        for r in range(n_d):
            row = m[:, r, :][:, None, :]
            elig = (row >= thr) & ~taken
            if prefer is not None:
                preferred = elig & prefer[:, None, :]
                elig = np.where(preferred.any(axis=-1, keepdims=True), preferred, elig)
            ok = elig.any(axis=-1)
            val = np.where(elig, row, -2.0)
            idx = n_g - 1 - np.argmax(val[..., ::-1], axis=-1)
            res[:, :, r] = np.where(ok, idx, -1)
            p_i, t_i = np.nonzero(ok)
            taken[p_i, t_i, idx[p_i, t_i]] = True
        for i, row_id in enumerate(rows.tolist()):
            out[row_id] = res[i]
    return out


def match_detections(det_group: Ints, det_out: Bools, gt_group: Ints, gt_out: Bools,
                     pair_det: Ints, pair_gt: Ints, pair_iou: Floats,
                     thresholds: Floats) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """COCOeval's matches → ``(matched, ignored)`` bit sets of shape [areas, detections].

    ``det_group``: each detection's (image, class) group id, detections ordered by group then by rank
    (score, stable); ``gt_group``: the same for ground truth, in their order; ``det_out`` / ``gt_out``
    [areas, n]: outside each area range. Pairs: candidate (detection, ground truth, IoU) within a group
    with IoU ≥ the lowest threshold. At most 16 thresholds.
    """
    n_a, n_det = det_out.shape
    n_t = len(thresholds)
    if n_t > 16:
        raise ValueError("at most 16 IoU thresholds")
    full = np.uint16((1 << n_t) - 1)
    matched = np.zeros((n_a, n_det), np.uint16)
    ignored = np.where(det_out, full, np.uint16(0)).astype(np.uint16)
    keep = pair_iou >= min(float(np.min(thresholds)), 1 - 1e-10)
    pair_det, pair_gt, pair_iou = pair_det[keep], pair_gt[keep], pair_iou[keep]
    if len(pair_det) == 0:
        return matched, ignored
    cand_d, pair_cd = np.unique(pair_det, return_inverse=True)
    cand_g, pair_cg = np.unique(pair_gt, return_inverse=True)
    groups, cd_prob = np.unique(det_group[cand_d], return_inverse=True)
    cg_prob = np.searchsorted(groups, gt_group[cand_g]).astype(np.int64)
    n_p = len(groups)
    cd_local = np.arange(len(cand_d)) - _starts(cd_prob, n_p)[cd_prob]
    cg_local = np.arange(len(cand_g)) - _starts(cg_prob, n_p)[cg_prob]
    d_count = np.bincount(cd_prob, minlength=n_p).astype(np.int64)
    g_count = np.bincount(cg_prob, minlength=n_p).astype(np.int64)
    pair_prob = cd_prob[pair_cd]
    args = (d_count, g_count, pair_prob, cd_local[pair_cd], cg_local[pair_cg], pair_iou, cg_prob, cg_local)
    d_start, g_start = _starts(cd_prob, n_p), _starts(cg_prob, n_p)

    def to_cand(sol: dict[int, npt.NDArray[np.int64]], rows: Ints) -> npt.NDArray[np.int64]:
        """Solutions → [candidate dets, T] candidate-gt index (-1: none), for the dets of ``rows``."""
        res = np.full((len(cand_d), n_t), -1, np.int64)
        for p in rows.tolist():
            local = sol[p]  # [T, D]
            res[d_start[p]:d_start[p] + d_count[p]] = np.where(local >= 0, local + g_start[p], -1).T
        return res

    all_rows = np.arange(n_p, dtype=np.int64)
    base = to_cand(_greedy(all_rows, *args, None, thresholds), all_rows)
    for a in range(n_a):
        out_a = gt_out[a][cand_g]
        n_out = np.bincount(cg_prob, weights=out_a, minlength=n_p)
        mixed = np.flatnonzero((n_out > 0) & (n_out < g_count))
        sol = base
        if len(mixed):
            sol = base.copy()
            redo = to_cand(_greedy(mixed, *args, out_a, thresholds), mixed)
            in_mixed = np.isin(cd_prob, mixed)
            sol[in_mixed] = redo[in_mixed]
        hit = sol >= 0
        gt_ig = np.where(hit, out_a[np.maximum(sol, 0)], False)
        matched[a, cand_d] = _bits(hit)
        ignored[a, cand_d] = _bits((hit & gt_ig) | (~hit & det_out[a][cand_d][:, None]))
    return matched, ignored
