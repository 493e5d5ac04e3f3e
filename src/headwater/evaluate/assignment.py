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

__all__ = ["best_assignment"]


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
