"""Synthetic evaluation cases: ground truth and predictions as droplets, with every corner COCO has.

``make_case`` draws, from a seed: images of a few sizes; boxes of all three COCO area ranges; images
without ground truth; a class without ground truth (``ghost``) and one without predictions (``shy``);
scores with ties (rounded to 0.1); one image with more than 100 detections of one class; exact
duplicates of ground-truth boxes (equal IoUs) and near-duplicate ground truth (one detection overlapping
several, of different sizes).
"""

from __future__ import annotations

import random
from typing import Any

from headwater.droplet import ImageAnnotation

__all__ = ["make_case"]

SIZES = [(640, 480), (320, 320), (1024, 768)]


def _rect(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[max(0.0, x), max(0.0, y)], [min(1.0, x + w), min(1.0, y + h)]]


def _polygon(r: list[list[float]], rng: random.Random) -> list[list[list[float]]]:
    (x1, y1), (x2, y2) = r
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2
    if rng.random() < 0.5:  # a diamond
        return [[[cx, y1], [x2, cy], [cx, y2], [x1, cy]]]
    return [[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]]


def _instance(r: list[list[float]], conf: float | None, iou_type: str, rng: random.Random) -> dict[str, Any]:
    if iou_type == "bbox":
        box: dict[str, Any] = {"rectangle": r}
        if conf is not None:
            box["confidence"] = conf
        return {"boundingBox": box}
    seg: dict[str, Any] = {"mask": _polygon(r, rng)}
    if conf is not None:
        seg["confidence"] = conf
    return {"segmentation": seg}


def make_case(seed: int, n_images: int = 12, iou_type: str = "bbox", many_on_one: int = 130,
              image_uids: bool = False) -> tuple[list[ImageAnnotation], list[ImageAnnotation]]:
    """``(ground truth, predictions)``; ``image_uids`` gives both sides ``image.uid`` = ``i{n}``."""
    rng = random.Random(seed)
    classes = ["cat", "dog", "shy", "bird"]
    gt, preds = [], []
    for i in range(n_images):
        w, h = SIZES[i % len(SIZES)]
        gt_classes: dict[str, list[list[list[float]]]] = {}
        if i % 5 != 4:  # every fifth image has no ground truth
            for _ in range(rng.randint(1, 7)):
                scale = rng.choice([0.03, 0.1, 0.3, 0.6])  # small, medium, large in pixels
                bw, bh = scale * rng.uniform(0.5, 1.5), scale * rng.uniform(0.5, 1.5)
                r = _rect(rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh), bw, bh)
                gt_classes.setdefault(rng.choice(classes), []).append(r)
                if rng.random() < 0.2:  # a nested near-duplicate of another size
                    (x1, y1), (x2, y2) = r
                    gt_classes.setdefault(rng.choice(classes[:2]), []).append(
                        _rect(x1, y1, (x2 - x1) * 0.8, (y2 - y1) * 0.8))
        pred_classes: dict[str, list[dict[str, Any]]] = {}
        for name, rects in gt_classes.items():
            for r in rects:
                if name == "shy":
                    continue
                for _ in range(rng.randint(0, 3)):
                    (x1, y1), (x2, y2) = r
                    j = rng.uniform(-0.1, 0.1) * (x2 - x1)
                    jr = r if rng.random() < 0.25 else _rect(x1 + j, y1 + j, (x2 - x1) * rng.uniform(0.8, 1.2),
                                                              (y2 - y1) * rng.uniform(0.8, 1.2))
                    conf = round(rng.random(), 1) if rng.random() < 0.9 else None
                    pred_classes.setdefault(rng.choice([name, name, name, "dog"]), []).append(
                        _instance(jr, conf, iou_type, rng))
        for _ in range(rng.randint(0, 4)):  # false positives, some of a class without ground truth
            bw, bh = rng.uniform(0.02, 0.5), rng.uniform(0.02, 0.5)
            r = _rect(rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh), bw, bh)
            pred_classes.setdefault(rng.choice(["cat", "dog", "ghost", "bird"]), []).append(
                _instance(r, round(rng.random(), 1), iou_type, rng))
        if i == 1 and many_on_one:  # more than 100 detections of one class on one image
            for _ in range(many_on_one):
                bw, bh = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4)
                r = _rect(rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh), bw, bh)
                pred_classes.setdefault("cat", []).append(_instance(r, round(rng.random(), 1), iou_type, rng))
        path = f"img/{i}.png"
        image: dict[str, Any] = {"paths": [path], "uid": f"i{i}"} if image_uids else {"paths": [path]}
        gt.append(ImageAnnotation.from_json({
            "image": image, "metadata": {"width": w, "height": h},
            "classes": {n: {"instances": [_instance(r, None, iou_type, rng) for r in rs]}
                        for n, rs in gt_classes.items()}}))
        preds.append(ImageAnnotation.from_json({
            "image": image,
            "classes": {n: {"instances": insts} for n, insts in pred_classes.items()}}))
    return gt, preds
