"""``evaluate(ground_truth, predictions)``: COCO's metrics and datatap's, from two streams of droplets.

Both sides are iterables of droplets (:class:`~headwater.droplet.ImageAnnotation`, or their JSON as
bytes/str): a split streamed from a catalog or a server, a JSONL file, a list. Ground truth is read
first and kept compactly (its boxes, or masks, as arrays); predictions are then read in batches of
images, matched, and reduced to a few numbers per detection (:mod:`.matching`) — so memory grows with
the ground truth and the per-detection match results, never with every predicted box at once.

Pairing: a prediction droplet belongs to the ground-truth image with the same ``image.uid``, else the
same image path (any of ``image.paths``). Prediction droplets for images that are not in the ground
truth are counted (``unknownImageDroplets``, ``unknownImagePredictions``) and not evaluated; ground-truth
images without any prediction droplet are counted (``imagesWithoutPredictions``) and their instances
are false negatives, as COCO counts them. A second droplet for the same image, on either side, is an
error. Instances without the geometry being evaluated (no box for ``bbox``, no segmentation for
``segm``) and multi-instances (crowds) are counted and left out.

What "the same as pycocotools" means: converting the ground truth to a COCO file (images with ids in
ground-truth order, categories with ids in class-name order, an annotation per instance in droplet
order with the pixel box and area of :mod:`.pixels`, ``iscrowd`` 0) and the predictions to a COCO
results file (same ids, in prediction order, scores = confidences) gives pycocotools 2.0.11 stats
equal to these (the tests check it to 1e-12). A prediction without a confidence scores 1.0 (datatap's
rule).

Example:
    >>> from headwater.droplet import decode_droplet
    >>> gt = [decode_droplet('{"kind":"ImageAnnotation","image":{"paths":["a.jpg"]},"metadata":{"width":100,'
    ...       '"height":100},"classes":{"cat":{"instances":[{"boundingBox":{"rectangle":[[0.1,0.1],[0.5,0.5]]}}]}}}')]
    >>> pred = [b'{"kind":"ImageAnnotation","image":{"paths":["a.jpg"]},"classes":{"cat":{"instances":'
    ...         b'[{"boundingBox":{"rectangle":[[0.1,0.1],[0.5,0.5]],"confidence":0.9}}]}}}']
    >>> ev = evaluate(gt, pred)
    >>> round(ev.stats[0], 9), round(ev.per_class["cat"][1], 9), ev.confusion.matrix.tolist()
    (1.0, 1.0, [[0, 0], [0, 1]])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..droplet import ImageAnnotation, decode_droplet
from .accumulate import STAT_NAMES, accumulate, summarize
from .assignment import kept_pairs
from .confusion import BACKGROUND, ConfusionCounts, ConfusionMatrix
from .errors import EvaluationError
from .masks import mask_ious, polygons_rle, rle_area
from .matching import match_detections
from .overlaps import box_pairs, group_pairs
from .params import CocoParams
from .pixels import ImageSizes, image_size, pixel_polygons
from .pr_curves import PrCurve, pr_curve

__all__ = ["Evaluation", "evaluate", "IouType", "DropletInput"]

IouType = Literal["bbox", "segm"]
DropletInput = ImageAnnotation | bytes | str
_SHIFT = 24  # group id = image << _SHIFT | class
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` found: COCO's stats (overall and per class), datatap's confusion matrix
    and PR curves, and the counts of what was (and was not) evaluated."""

    iou_type: str
    params: CocoParams
    classes: list[str]
    stats: list[float]
    per_class: dict[str, list[float]]
    precision: Floats = field(repr=False)
    recall: Floats = field(repr=False)
    confusion: ConfusionMatrix = field(repr=False)
    pr_curves: list[PrCurve] = field(repr=False)
    counts: dict[str, int] = field(default_factory=dict)
    pr_iou_threshold: float = 0.5

    def to_json(self) -> dict[str, Any]:
        """The report: ``{"coco": {"stats": [12 numbers], …}, "perClass": …, "confusion": …, …}``."""
        return {
            "iouType": self.iou_type,
            "coco": {"stats": self.stats, "statNames": list(STAT_NAMES), "params": self.params.to_json()},
            "perClass": {name: dict(zip(STAT_NAMES, s, strict=True)) for name, s in self.per_class.items()},
            "confusion": self.confusion.to_json(),
            "prCurves": {"iouThreshold": self.pr_iou_threshold, "curves": [c.to_json() for c in self.pr_curves]},
            "counts": self.counts,
        }


def _decoded(item: DropletInput) -> ImageAnnotation:
    if isinstance(item, ImageAnnotation):
        return item
    if isinstance(item, bytes | bytearray | memoryview | str):
        return decode_droplet(item)
    raise EvaluationError(f"expected a droplet (ImageAnnotation or its JSON), got {type(item).__name__}")


def _where(d: ImageAnnotation) -> str:
    return d.image.uid or (d.image.paths[0] if d.image.paths else "?")


class _Instances:
    """Instances of one side as columns (image, class, normalised corners, score; masks for ``segm``).

    Boxes stay normalised while droplets are walked (one Python pass that only copies numbers); the
    pixel boxes and areas of :mod:`.pixels` are computed for the whole batch at once in numpy, with the
    same operations as :func:`.pixels.pixel_box`.
    """

    def __init__(self) -> None:
        self.img: list[int] = []
        self.cls: list[int] = []
        self.corners: list[float] = []
        self.score: list[float] = []
        self.rle: list[dict[str, Any]] = []
        self.area: list[float] = []
        self.skipped = 0
        self.multi = 0

    def add(self, d: ImageAnnotation, img: int, size: tuple[int, int], iou_type: str, classes: dict[str, int]) -> int:
        added = 0
        corners, score = self.corners, self.score
        for name, ann in d.classes.items():
            c = classes.get(name)
            if c is None:
                c = classes[name] = len(classes)
            if ann.multi_instances:
                self.multi += len(ann.multi_instances)
            n = 0
            for inst in ann.instances:
                if iou_type == "bbox":
                    bb = inst.bounding_box
                    if bb is None:
                        self.skipped += 1
                        continue
                    p1, p2 = bb.rectangle.p1, bb.rectangle.p2
                    corners += (p1.x, p1.y, p2.x, p2.y)
                    conf = bb.confidence
                else:
                    seg = inst.segmentation
                    if seg is None:
                        self.skipped += 1
                        continue
                    w, h = size
                    rle = polygons_rle(pixel_polygons(seg.mask, w, h), h, w)
                    self.rle.append(rle)
                    self.area.append(rle_area(rle))
                    corners += (0, 0, 0, 0)
                    conf = seg.confidence
                score.append(1.0 if conf is None else conf)
                n += 1
            if n:
                self.cls += [c] * n
                added += n
        self.img += [img] * added
        return added

    def arrays(self, sizes: Ints) -> tuple[Ints, Ints, Floats, Floats, Floats]:
        """(image, class, pixel box [n, 4], area, score); ``sizes[image]`` = (width, height)."""
        img = np.asarray(self.img, np.int64)
        corners = np.asarray(self.corners, np.float64).reshape(-1, 4)
        wh = sizes[img].astype(np.float64)
        box = np.empty_like(corners)
        box[:, 0] = corners[:, 0] * wh[:, 0]
        box[:, 1] = corners[:, 1] * wh[:, 1]
        box[:, 2] = (corners[:, 2] - corners[:, 0]) * wh[:, 0]
        box[:, 3] = (corners[:, 3] - corners[:, 1]) * wh[:, 1]
        area = np.asarray(self.area, np.float64) if self.rle else box[:, 2] * box[:, 3]
        return img, np.asarray(self.cls, np.int64), box, area, np.asarray(self.score, np.float64)


def _outside(area: Floats, params: CocoParams) -> npt.NDArray[np.bool_]:
    return np.stack([(area < lo) | (area > hi) for lo, hi in params.area_ranges]) if len(params.area_ranges) \
        else np.zeros((0, len(area)), bool)


def _mask_pairs(det_group: Ints, det_rle: list[dict[str, Any]], gt_group: Ints,
                gt_rle: list[dict[str, Any]]) -> tuple[Ints, Ints, Floats]:
    """Like :func:`.overlaps.box_pairs`, with mask IoU computed group by group."""
    pair_det, pair_gt = group_pairs(det_group, gt_group)
    iou = np.zeros(len(pair_det))
    if len(pair_det) == 0:
        return pair_det, pair_gt, iou
    bounds = np.flatnonzero(np.diff(det_group[pair_det]) != 0) + 1
    for chunk in np.split(np.arange(len(pair_det)), bounds):
        ds, gs = np.unique(pair_det[chunk]), np.unique(pair_gt[chunk])
        m = mask_ious([det_rle[i] for i in ds.tolist()], [gt_rle[j] for j in gs.tolist()])
        iou[chunk] = m[np.searchsorted(ds, pair_det[chunk]), np.searchsorted(gs, pair_gt[chunk])]
    return pair_det, pair_gt, iou


class _Evaluator:
    def __init__(self, iou_type: str, params: CocoParams, iou_threshold: float, confidence_threshold: float) -> None:
        self.iou_type, self.params = iou_type, params
        thr = params.iou_thresholds
        hit = np.flatnonzero(thr == iou_threshold)
        self.thresholds = thr if len(hit) else np.r_[thr, iou_threshold]
        self.pr_index = int(hit[0]) if len(hit) else len(thr)
        self.iou_threshold, self.confidence_threshold = iou_threshold, confidence_threshold
        self.classes: dict[str, int] = {}
        self.uid_index: dict[str, int] = {}
        self.path_index: dict[str, int] = {}
        self.sizes: list[tuple[int, int]] = []
        self.seen: list[bool] = []
        self.counts: dict[str, int] = dict.fromkeys(
            ("groundTruthImages", "groundTruthInstances", "groundTruthWithoutGeometry", "groundTruthMultiInstances",
             "predictionDroplets", "predictions", "predictionsWithoutGeometry", "predictionMultiInstances",
             "predictionsBeyondMaxDetections", "unknownImageDroplets", "unknownImagePredictions",
             "imagesWithoutPredictions"), 0)
        self.confusion = ConfusionCounts()
        self.results: list[tuple[Ints, Ints, Ints, Floats, npt.NDArray[np.uint16], npt.NDArray[np.uint16]]] = []

    def read_ground_truth(self, items: Iterable[DropletInput], image_sizes: ImageSizes) -> None:
        gt = _Instances()
        for item in items:
            d = _decoded(item)
            i = len(self.sizes)
            if d.image.uid is not None:
                if d.image.uid in self.uid_index:
                    raise EvaluationError(f"ground truth: image uid {d.image.uid!r} appears twice")
                self.uid_index[d.image.uid] = i
            elif d.image.paths and d.image.paths[0] in self.path_index:
                raise EvaluationError(f"ground truth: image {d.image.paths[0]!r} appears twice")
            for p in d.image.paths:
                self.path_index.setdefault(p, i)
            size = image_size(d, image_sizes)
            self.sizes.append(size)
            self.seen.append(False)
            gt.add(d, i, size, self.iou_type, self.classes)
        if not self.sizes:
            raise EvaluationError("the ground truth holds no image")
        self.size_array = np.asarray(self.sizes, np.int64).reshape(-1, 2)
        img, cls, box, area, _ = gt.arrays(self.size_array)
        group = (img << _SHIFT) | cls
        order = np.argsort(group, kind="stable")
        self.gt_img, self.gt_cls, self.gt_box, self.gt_area = img[order], cls[order], box[order], area[order]
        self.gt_group = group[order]
        self.gt_rle = [gt.rle[i] for i in order.tolist()] if self.iou_type == "segm" else []
        self.gt_out = _outside(self.gt_area, self.params)
        self.counts["groundTruthImages"] = len(self.sizes)
        self.counts["groundTruthInstances"] = len(img)
        self.counts["groundTruthWithoutGeometry"] = gt.skipped
        self.counts["groundTruthMultiInstances"] = gt.multi

    def _image_of(self, d: ImageAnnotation) -> int | None:
        if d.image.uid is not None and d.image.uid in self.uid_index:
            return self.uid_index[d.image.uid]
        for p in d.image.paths:
            if p in self.path_index:
                return self.path_index[p]
        return None

    def read_predictions(self, items: Iterable[DropletInput], batch_images: int) -> None:
        batch: list[tuple[int, ImageAnnotation]] = []
        for item in items:
            d = _decoded(item)
            self.counts["predictionDroplets"] += 1
            i = self._image_of(d)
            if i is None:
                self.counts["unknownImageDroplets"] += 1
                self.counts["unknownImagePredictions"] += sum(len(a.instances) for a in d.classes.values())
                continue
            if self.seen[i]:
                raise EvaluationError(f"predictions: two droplets for image {_where(d)!r}")
            self.seen[i] = True
            batch.append((i, d))
            if len(batch) >= batch_images:
                self._evaluate_batch(batch)
                batch = []
        if batch:
            self._evaluate_batch(batch)
        unseen = np.flatnonzero(~np.asarray(self.seen, bool))
        self.counts["imagesWithoutPredictions"] = len(unseen)
        missed = np.isin(self.gt_img, unseen)
        self.confusion.add_unmatched(self.gt_cls[missed], np.zeros(0, np.int64))

    def _evaluate_batch(self, batch: list[tuple[int, ImageAnnotation]]) -> None:
        dets = _Instances()
        for i, d in batch:
            self.counts["predictions"] += dets.add(d, i, self.sizes[i], self.iou_type, self.classes)
        self.counts["predictionsWithoutGeometry"] += dets.skipped
        self.counts["predictionMultiInstances"] += dets.multi
        img, cls, box, area, score = dets.arrays(self.size_array)
        images = np.asarray(sorted(i for i, _ in batch), np.int64)
        rows = np.flatnonzero(np.isin(self.gt_img, images))
        self._confusion(img, cls, box, score, [dets.rle[i] for i in range(len(dets.rle))], rows)
        group = (img << _SHIFT) | cls
        order = np.lexsort((-score, group))
        group, img, cls, box, area, score = group[order], img[order], cls[order], box[order], area[order], score[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.zeros(0, np.int64)
        rank = np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))
        keep = rank < self.params.max_detections[-1]
        self.counts["predictionsBeyondMaxDetections"] += int((~keep).sum())
        rle = [dets.rle[j] for j in order[keep].tolist()] if self.iou_type == "segm" else []
        group, img, cls, rank = group[keep], img[keep], cls[keep], rank[keep]
        box, area, score = box[keep], area[keep], score[keep]
        g_group = self.gt_group[rows]
        if self.iou_type == "bbox":
            pd, pg, iou = box_pairs(group, box, g_group, self.gt_box[rows])
        else:
            pd, pg, iou = _mask_pairs(group, rle, g_group, [self.gt_rle[j] for j in rows.tolist()])
        matched, ignored = match_detections(group, _outside(area, self.params), g_group, self.gt_out[:, rows],
                                            pd, pg, iou, self.thresholds)
        self.results.append((cls, img, rank.astype(np.int64), score, matched, ignored))

    def _confusion(self, img: Ints, cls: Ints, box: Floats, score: Floats, rle: list[dict[str, Any]],
                   rows: Ints) -> None:
        kept = np.flatnonzero(score >= self.confidence_threshold)
        g_img, g_cls = self.gt_img[rows], self.gt_cls[rows]
        d_img, d_cls = img[kept], cls[kept]
        if self.iou_type == "bbox":
            order = np.argsort(g_img, kind="stable")
            pd, pg, iou = box_pairs(d_img, box[kept], g_img[order], self.gt_box[rows][order])
            pg = order[pg]
        else:
            pd, pg = group_pairs(d_img, g_img)
            iou = np.zeros(len(pd))
            for i in np.unique(d_img[pd]).tolist():
                sel = np.flatnonzero(d_img[pd] == i)
                ds, gs = np.unique(pd[sel]), np.unique(pg[sel])
                m = mask_ious([rle[j] for j in kept[ds].tolist()], [self.gt_rle[j] for j in rows[gs].tolist()])
                iou[sel] = m[np.searchsorted(ds, pd[sel]), np.searchsorted(gs, pg[sel])]
        pos = iou > 0
        kd, kg = kept_pairs(pd[pos], pg[pos], iou[pos], len(d_img), self.iou_threshold)
        self.confusion.add_matched(g_cls[kg], d_cls[kd])
        d_used = np.zeros(len(d_img), bool)
        g_used = np.zeros(len(g_img), bool)
        d_used[kd] = g_used[kg] = True
        self.confusion.add_unmatched(g_cls[~g_used], d_cls[~d_used])

    def finish(self) -> Evaluation:
        names = sorted(self.classes)
        remap = np.zeros(max(len(self.classes), 1), np.int64)
        for name, i in self.classes.items():
            remap[i] = names.index(name)
        parts = list(zip(*self.results, strict=True)) if self.results else None
        n_a = len(self.params.area_ranges)
        if parts is None:
            cls = img = rank = np.zeros(0, np.int64)
            score = np.zeros(0)
            matched = ignored = np.zeros((n_a, 0), np.uint16)
        else:
            cls, img, rank = (np.concatenate(p) for p in parts[:3])
            score = np.concatenate(parts[3])
            matched, ignored = np.concatenate(parts[4], axis=1), np.concatenate(parts[5], axis=1)
        cls = remap[cls]
        gt_cls = remap[self.gt_cls]
        counted = np.stack([np.bincount(gt_cls[~self.gt_out[a]], minlength=len(names)) for a in range(n_a)], axis=1)
        coco = accumulate(self.params, cls, img, rank, score, matched, ignored, counted.astype(np.int64))
        stats = summarize(self.params, coco.precision, coco.recall)
        per_class = {name: summarize(self.params, coco.precision[:, :, [k]], coco.recall[:, [k]])
                     for k, name in enumerate(names)}
        confusion = ConfusionMatrix([BACKGROUND, *names], self.confusion.matrix(names, remap),
                                    self.iou_threshold, self.confidence_threshold)
        curves = []
        order = np.lexsort((rank, img, -score, cls))
        tp = ((matched[0] >> self.pr_index) & 1).astype(bool) & ~((ignored[0] >> self.pr_index) & 1).astype(bool)
        starts = np.searchsorted(cls[order], np.arange(len(names) + 1))
        for k, name in enumerate(names):
            sel = order[starts[k]:starts[k + 1]]
            curves.append(pr_curve(name, score[sel], tp[sel], int(counted[k, 0])))
        return Evaluation(self.iou_type, self.params, names, stats, per_class, coco.precision, coco.recall,
                          confusion, curves, dict(self.counts), self.iou_threshold)


def evaluate(ground_truth: Iterable[DropletInput], predictions: Iterable[DropletInput],
             iou_type: IouType = "bbox", *, image_sizes: ImageSizes = None, iou_threshold: float = 0.5,
             confidence_threshold: float = 0.5, params: CocoParams | None = None,
             batch_images: int = 1000) -> Evaluation:
    """COCO's detection metrics (exactly pycocotools 2.0.11's) and datatap's confusion matrix and PR curves.

    ``iou_type``: ``"bbox"`` (boxes) or ``"segm"`` (segmentation polygons; needs the ``evaluate``
    extra, pycocotools, whose mask rasterisation is the reference). ``image_sizes``: where pixel sizes
    come from when ground-truth droplets carry none (:mod:`.pixels`). ``iou_threshold`` and
    ``confidence_threshold`` are datatap's (confusion matrix; PR curves use the IoU threshold).
    """
    if iou_type not in ("bbox", "segm"):
        raise EvaluationError(f"iou_type must be 'bbox' or 'segm', not {iou_type!r}")
    if not 0 < iou_threshold <= 1:
        raise EvaluationError(f"the IoU threshold must be in (0, 1], not {iou_threshold}")
    if batch_images < 1:
        raise EvaluationError("batch_images must be at least 1")
    ev = _Evaluator(iou_type, params or CocoParams(), iou_threshold, confidence_threshold)
    ev.read_ground_truth(ground_truth, image_sizes)
    ev.read_predictions(predictions, batch_images)
    return ev.finish()

