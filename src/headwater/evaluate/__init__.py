"""Layer 8 (beside render): judging predictions against ground truth — COCO's metrics, exactly, and datatap's.

* :mod:`.evaluation` — :func:`evaluate` (two streams of droplets in, an :class:`Evaluation` out);
* :mod:`.params` — COCOeval's thresholds and ranges; :mod:`.pixels` — image sizes, pixel boxes, areas;
* :mod:`.overlaps`, :mod:`.masks` — box IoU and mask IoU as pycocotools computes them;
* :mod:`.matching`, :mod:`.accumulate` — COCOeval's matching and its precision/recall and 12 stats;
* :mod:`.confusion`, :mod:`.assignment`, :mod:`.pr_curves` — datatap's confusion matrix and PR curves;
* :mod:`.plots` — PR curves and the confusion matrix as PNG (Pillow, no display).

It imports droplets and pools, never the catalog, client or server: the CLI composes.

Example:
    >>> from headwater.droplet import ImageAnnotation
    >>> gt = [ImageAnnotation.from_json({"image": {"paths": ["a.jpg"]}, "classes": {},
    ...                                  "metadata": {"width": 10, "height": 10}})]
    >>> evaluate(gt, []).stats[0]  # no ground-truth instance: COCO's -1
    -1.0
"""

from .accumulate import STAT_NAMES
from .confusion import ConfusionMatrix
from .errors import EvaluationError, ImageSizeError
from .evaluation import Evaluation, IouType, evaluate
from .params import AREA_LABELS, CocoParams
from .pixels import ImageSizes, image_header_sizes, image_size, pixel_box, pixel_polygons
from .pr_curves import MaxF1, PrCurve

__all__ = [
    "evaluate",
    "Evaluation",
    "IouType",
    "CocoParams",
    "AREA_LABELS",
    "STAT_NAMES",
    "ConfusionMatrix",
    "PrCurve",
    "MaxF1",
    "ImageSizes",
    "image_header_sizes",
    "image_size",
    "pixel_box",
    "pixel_polygons",
    "EvaluationError",
    "ImageSizeError",
]
