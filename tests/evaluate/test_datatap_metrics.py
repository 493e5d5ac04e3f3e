"""datatap's confusion matrix and PR curves: against a brute-force reference, and against datatap 0.3.0 itself."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from headwater.droplet import ImageAnnotation, encode_droplet
from headwater.evaluate import evaluate
from tests.support.peers import peer_python


def _droplet(path: str, boxes: Sequence[tuple[str, list[list[float]], float | None]]) -> ImageAnnotation:
    classes: dict[str, Any] = {}
    for name, rect, conf in boxes:
        box: dict[str, Any] = {"rectangle": rect}
        if conf is not None:
            box["confidence"] = conf
        classes.setdefault(name, {"instances": []})["instances"].append({"boundingBox": box})
    return ImageAnnotation.from_json({"image": {"paths": [path]}, "classes": classes,
                                      "metadata": {"width": 100, "height": 100}})


def _iou(a: list[list[float]], b: list[list[float]]) -> float:
    w = min(a[1][0], b[1][0]) - max(a[0][0], b[0][0])
    h = min(a[1][1], b[1][1]) - max(a[0][1], b[0][1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = (a[1][0] - a[0][0]) * (a[1][1] - a[0][1]) + (b[1][0] - b[0][0]) * (b[1][1] - b[0][1])
    return inter / (area - inter)


def _rect(rng: random.Random, cx: float, cy: float, spread: float) -> list[list[float]]:
    x, y = cx + rng.uniform(-spread, spread), cy + rng.uniform(-spread, spread)
    w, h = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3)
    return [[max(0.0, x - w / 2), max(0.0, y - h / 2)], [min(1.0, x + w / 2), min(1.0, y + h / 2)]]


def test_confusion_matrix_is_the_max_iou_assignment_brute_forced():
    """Crowded images (every box near the centre) so that assignments conflict; every image's best
    assignment found by trying all of them."""
    rng = random.Random(3)
    classes = ["a", "b", "c"]
    gt, preds = [], []
    expected = np.zeros((4, 4), np.int64)
    for i in range(40):
        g: list[tuple[str, list[list[float]], float | None]] = [
            (rng.choice(classes), _rect(rng, 0.5, 0.5, 0.15), None) for _ in range(rng.randint(0, 4))]
        p: list[tuple[str, list[list[float]], float | None]] = []
        for _ in range(rng.randint(0, 5)):  # mostly near a ground truth box, so several overlap it
            if g and rng.random() < 0.8:
                (x1, y1), (x2, y2) = rng.choice(g)[1]
                d = rng.uniform(-0.03, 0.03)
                rect = [[x1 + d, y1 - d], [x2 + d, y2 + d]]
            else:
                rect = _rect(rng, 0.5, 0.5, 0.15)
            p.append((rng.choice(classes), rect, round(rng.uniform(0.05, 1), 3)))
        gt.append(_droplet(f"{i}.png", g))
        preds.append(_droplet(f"{i}.png", p))
        kept = [q for q in p if q[2] is not None and q[2] >= 0.4]
        best: tuple[float, list[tuple[int, int]]] = (-1.0, [])
        small, large = (kept, g) if len(kept) <= len(g) else (g, kept)
        for perm in itertools.permutations(range(len(large)), len(small)):
            pairs = list(enumerate(perm))
            total = sum(_iou(small[s][1], large[t][1]) for s, t in pairs)
            if total > best[0]:
                best = (total, pairs)
        used_p, used_g = set(), set()
        for s, t in best[1]:
            d_i, g_i = (s, t) if small is kept else (t, s)
            if _iou(kept[d_i][1], g[g_i][1]) >= 0.5:
                expected[1 + classes.index(g[g_i][0]), 1 + classes.index(kept[d_i][0])] += 1
                used_p.add(d_i)
                used_g.add(g_i)
        for k, q in enumerate(g):
            if k not in used_g:
                expected[1 + classes.index(q[0]), 0] += 1
        for k, q in enumerate(kept):
            if k not in used_p:
                expected[0, 1 + classes.index(q[0])] += 1
    ev = evaluate(gt, preds, iou_threshold=0.5, confidence_threshold=0.4, batch_images=7)
    assert ev.confusion.classes == ["__background__", *classes]
    assert ev.confusion.matrix.tolist() == expected.tolist()
    assert expected[1:, 1:].sum() > 10 and expected[1:, 1:].trace() < expected[1:, 1:].sum()  # confusions too


def _separated_case(seed: int) -> tuple[list[ImageAnnotation], list[ImageAnnotation]]:
    """Boxes in the cells of a 3×3 grid, a prediction never reaching into another cell: every
    prediction overlaps at most one ground truth, where datatap's and COCO's matchings agree."""
    rng = random.Random(seed)
    classes = ["a", "b", "c"]
    gt, preds = [], []
    for i in range(25):
        g: list[tuple[str, list[list[float]], float | None]] = []
        p: list[tuple[str, list[list[float]], float | None]] = []
        for cell in range(9):
            cx, cy = (cell % 3 + 0.5) / 3, (cell // 3 + 0.5) / 3
            def box(spread: float, cx: float = cx, cy: float = cy) -> list[list[float]]:
                w, h = rng.uniform(0.12, 0.2), rng.uniform(0.12, 0.2)
                x, y = cx + rng.uniform(-spread, spread), cy + rng.uniform(-spread, spread)
                return [[x - w / 2, y - h / 2], [x + w / 2, y + h / 2]]
            name = rng.choice(classes)
            if rng.random() < 0.6:
                g.append((name, box(0.01), None))
            for _ in range(rng.choice([0, 1, 1, 2])):
                label = name if rng.random() < 0.8 else rng.choice(classes)
                p.append((label, box(0.03), round(rng.uniform(0.05, 1), 2)))
        gt.append(_droplet(f"{i}.png", g))
        preds.append(_droplet(f"{i}.png", p))
    return gt, preds


DATATAP_SIDE = textwrap.dedent("""
    import json, sys
    from datatap.droplet import ImageAnnotation
    from datatap.metrics import ConfusionMatrix, PrecisionRecallCurve

    gt = [ImageAnnotation.from_json(json.loads(line)) for line in open(sys.argv[1])]
    preds = [ImageAnnotation.from_json(json.loads(line)) for line in open(sys.argv[2])]
    classes = sorted({c for d in gt + preds for c in d.classes})
    cm = ConfusionMatrix(classes)
    for g, p in zip(gt, preds):
        cm.add_annotation(g, p, 0.5, 0.4)
    curves = {}
    for name in classes:
        pr = PrecisionRecallCurve()
        for g, p in zip(gt, preds):
            only = lambda d: ImageAnnotation.from_json(dict(d.to_json(), classes={
                k: v for k, v in d.to_json()["classes"].items() if k == name}))
            pr.add_annotation(only(g), only(p), 0.5)
        if pr.ground_truth_positives:
            points = pr._compute_curve()
            curves[name] = {"points": [list(pt) for pt in points], "best": list(pr.maximize_f1())}
    print(json.dumps({"matrix": cm.matrix.tolist(), "curves": curves}))
""")


def test_matches_datatap_itself(tmp_path):
    try:
        python = peer_python("datatap-metrics", ["datatap==0.3.0", "Pillow", "numpy", "scipy", "sortedcontainers"])
    except subprocess.CalledProcessError as err:  # pragma: no cover - needs the package index the first time
        pytest.fail(f"could not install datatap's metrics into .venv-peers/datatap-metrics: {err}")
    gt, preds = _separated_case(11)
    paths = []
    for name, rows in (("gt", gt), ("preds", preds)):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(encode_droplet(d) + b"\n" for d in rows))
        paths.append(str(path))
    script = tmp_path / "side.py"
    script.write_text(DATATAP_SIDE)
    done = subprocess.run([python, str(script), *paths], capture_output=True, text=True, check=True)
    theirs = json.loads(done.stdout)
    ours = evaluate(gt, preds, iou_threshold=0.5, confidence_threshold=0.4)
    assert ours.confusion.matrix.tolist() == theirs["matrix"]
    assert sum(map(sum, theirs["matrix"])) > 100
    for curve in ours.pr_curves:
        ref = theirs["curves"][curve.class_name]
        thresholds, precision, recall = (list(col) for col in zip(*ref["points"], strict=True))
        assert curve.thresholds.tolist() == pytest.approx(thresholds, abs=0, rel=0)
        assert curve.precision.tolist() == pytest.approx(precision, rel=1e-12)
        assert curve.recall.tolist() == pytest.approx(recall, rel=1e-12)
        assert curve.best is not None and list(curve.best) == pytest.approx(ref["best"], rel=1e-12)
