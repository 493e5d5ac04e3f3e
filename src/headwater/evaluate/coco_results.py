"""A COCO results file (``[{"image_id", "category_id", "bbox", "score"}, …]``) as prediction droplets.

COCO results name images and classes by integer ids, which droplets do not have, so the ids are read
against the ground truth in one of two ways:

* with the COCO ground-truth file they refer to (``images``: ``id`` → ``file_name``, ``categories``:
  ``id`` → ``name``): an image is the ground-truth droplet whose ``image.uid``, ``metadata.source``
  (what the COCO importer keeps) or the base name of one of its paths equals ``file_name`` (or its base
  name); a category is the class of that name;
* without it, headwater's own numbering — the one :mod:`.evaluation` states for COCO exports: image id
  ``i`` is the ``i``-th ground-truth droplet (from 1, in split order) and category id ``k`` the ``k``-th
  class name in sorted order.

A box ``[x, y, w, h]`` in pixels becomes the normalised rectangle ``[[x/W, y/H], [(x+w)/W, (y+h)/H]]``
of its image; within an image, results keep their order in the file (COCOeval's order among equal
scores). Only box results are read (segmentation results are RLE, which a droplet polygon cannot hold).

Example:
    >>> gt = [ImageAnnotation.from_json({"image": {"paths": ["a.jpg"]}, "classes": {"cat": {"instances": []}},
    ...                                  "metadata": {"width": 100, "height": 50}})]
    >>> [d] = coco_results_droplets([{"image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10], "score": 0.5}],
    ...                             gt, ["cat"])
    >>> d.to_json()["classes"]["cat"]
    {'instances': [{'boundingBox': {'rectangle': [[0.1, 0.1], [0.3, 0.3]], 'confidence': 0.5}}], 'multiInstances': []}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..droplet import BoundingBox, ClassAnnotation, Image, ImageAnnotation, Instance, Rectangle
from .errors import EvaluationError
from .pixels import ImageSizes, image_size

__all__ = ["coco_results_droplets"]


def _keys(d: ImageAnnotation) -> list[str]:
    keys = [d.image.uid] if d.image.uid else []
    source = (d.metadata or {}).get("source")
    if isinstance(source, str):
        keys += [source, os.path.basename(source)]
    return keys + [os.path.basename(p) for p in d.image.paths]


def coco_results_droplets(results: Sequence[dict[str, Any]], ground_truth: Sequence[ImageAnnotation],
                          class_names: Sequence[str], coco_ground_truth: dict[str, Any] | None = None,
                          image_sizes: ImageSizes = None) -> list[ImageAnnotation]:
    """One prediction droplet per ground-truth image that has results, in ground-truth order."""
    if not isinstance(results, list):
        raise EvaluationError("a COCO results file is a JSON list of {image_id, category_id, bbox, score}")
    if coco_ground_truth is None:
        image_of = {i + 1: i for i in range(len(ground_truth))}
        names = sorted(class_names)
        class_of = {k + 1: name for k, name in enumerate(names)}
    else:
        where: dict[str, int] = {}
        for i, d in enumerate(ground_truth):
            for key in _keys(d):
                where.setdefault(key, i)
        image_of = {}
        for img in coco_ground_truth.get("images", []):
            name = str(img.get("file_name", ""))
            found = where.get(name, where.get(os.path.basename(name)))
            if found is not None:
                image_of[img["id"]] = found
        class_of = {c["id"]: str(c["name"]) for c in coco_ground_truth.get("categories", [])}
    per_image: dict[int, dict[str, list[Instance]]] = {}
    for n, r in enumerate(results):
        try:
            at, cat, (x, y, w, h), score = image_of.get(r["image_id"]), r["category_id"], r["bbox"], r["score"]
        except (KeyError, TypeError, ValueError) as err:
            raise EvaluationError(f"COCO results [{n}]: needs image_id, category_id, bbox [x, y, w, h], score") \
                from err
        if at is None:
            raise EvaluationError(f"COCO results [{n}]: image_id {r['image_id']} is not an image of the ground truth")
        if cat not in class_of:
            raise EvaluationError(f"COCO results [{n}]: unknown category_id {cat}")
        width, height = image_size(ground_truth[at], image_sizes)
        rect = Rectangle.from_xyxy(x / width, y / height, (x + w) / width, (y + h) / height)
        per_image.setdefault(at, {}).setdefault(class_of[cat], []).append(
            Instance(bounding_box=BoundingBox(rect, confidence=float(score))))
    out = []
    for i in sorted(per_image):
        gt = ground_truth[i]
        out.append(ImageAnnotation(Image(list(gt.image.paths), uid=gt.image.uid),
                                   {name: ClassAnnotation(insts) for name, insts in per_image[i].items()}))
    return out
