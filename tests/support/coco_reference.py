"""Droplets → COCO files → pycocotools 2.0.11: the reference the evaluate tests compare against.

The conversion follows the rules stated in :mod:`headwater.evaluate.evaluation`: image ids in
ground-truth order, category ids in class-name order, one annotation per instance in droplet order
(pixel box and area of :mod:`headwater.evaluate.pixels`, ``iscrowd`` 0), results in prediction order.
Segmentation results are RLE (pycocotools' ``loadRes`` takes only RLE for them) and carry no ``bbox``,
so their area is the mask's pixel count.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from headwater.droplet import ImageAnnotation
from headwater.evaluate import image_size, pixel_box, pixel_polygons

__all__ = ["coco_files", "pycocotools_stats"]


def coco_files(gt: list[ImageAnnotation], preds: list[ImageAnnotation],
               iou_type: str = "bbox") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from pycocotools import mask as mask_api

    names = sorted({n for d in gt + preds for n in d.classes})
    cat = {n: i + 1 for i, n in enumerate(names)}
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    ids: dict[str, int] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for i, d in enumerate(gt, start=1):
        w, h = image_size(d, None)
        images.append({"id": i, "width": w, "height": h, "file_name": d.image.paths[0]})
        ids[d.image.paths[0]] = i
        sizes[i] = (w, h)
        for name, ca in d.classes.items():
            for inst in ca.instances:
                ann: dict[str, Any] = {"id": len(anns) + 1, "image_id": i, "category_id": cat[name], "iscrowd": 0}
                if iou_type == "bbox":
                    assert inst.bounding_box is not None
                    box = pixel_box(inst.bounding_box.rectangle, w, h)
                    ann.update(bbox=list(box), area=box[2] * box[3])
                else:
                    assert inst.segmentation is not None
                    polys = pixel_polygons(inst.segmentation.mask, w, h)
                    rle = mask_api.merge(mask_api.frPyObjects(polys, h, w))
                    ann.update(segmentation=polys, area=float(mask_api.area(rle)), bbox=[0, 0, 0, 0])
                anns.append(ann)
    results = []
    for d in preds:
        if d.image.paths[0] not in ids:
            continue
        i = ids[d.image.paths[0]]
        w, h = sizes[i]
        for name, ca in d.classes.items():
            for inst in ca.instances:
                res: dict[str, Any] = {"image_id": i, "category_id": cat[name]}
                if iou_type == "bbox":
                    assert inst.bounding_box is not None
                    res["bbox"] = list(pixel_box(inst.bounding_box.rectangle, w, h))
                    conf = inst.bounding_box.confidence
                else:
                    assert inst.segmentation is not None
                    rle = mask_api.merge(mask_api.frPyObjects(pixel_polygons(inst.segmentation.mask, w, h), h, w))
                    rle["counts"] = rle["counts"].decode()
                    res["segmentation"] = rle
                    conf = inst.segmentation.confidence
                res["score"] = 1.0 if conf is None else float(conf)
                results.append(res)
    gt_doc = {"images": images, "annotations": anns,
              "categories": [{"id": cat[n], "name": n} for n in names]}
    return gt_doc, results


def pycocotools_stats(gt_doc: dict[str, Any], results: list[dict[str, Any]], iou_type: str = "bbox") -> list[float]:
    """pycocotools' 12 stats for in-memory COCO documents (its prints silenced)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_doc
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        if not results:
            coco_dt.dataset = {"images": gt_doc["images"], "annotations": [], "categories": gt_doc["categories"]}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats]
