"""The droplet: datatap's ``ImageAnnotation`` JSON as msgspec structs.

The structs *are* the wire format — camelCase names, absent optional fields omitted, keys in datatap's
order — so ``encode_droplet(decode_droplet(x))`` is what datatap's
``json.dumps(ImageAnnotation.from_json(x).to_json())`` gives (numbers keep their int/float type).
Decoding checks only types and shape; geometry and template rules are :func:`validate_droplet`'s
job, run once at publish time rather than on every read.

Wire shape::

    {"kind": "ImageAnnotation",
     "image": {"paths": [str, ...], "uid"?: str},
     "classes": {name: {"instances": [Instance, ...], "multiInstances": [MultiInstance, ...]}},
     "mask"?: [[[x, y], ...], ...], "uid"?: str, "metadata"?: {...}}
    Instance      = {"id"?, "boundingBox"?: {"rectangle": [[x1, y1], [x2, y2]], "confidence"?},
                     "segmentation"?: {"mask": [[[x, y], ...], ...], "confidence"?},
                     "keypoints"?: {name: {"point": [x, y], "occluded"?, "confidence"?} | null},
                     "attributes"?: {name: [{"value": str, "confidence"?}, ...]}}
    MultiInstance = {"boundingBox"?, "segmentation"?, "count"?: int}

A legacy attribute written as a bare string (``"attributes": {"color": "red"}``) is accepted and
becomes ``[AttributeValue("red")]``, which is also how it is written back (as datatap does).
``null`` for an optional field means absent. Unknown keys are ignored, as datatap ignores them.

Optional fields are keyword-only (``Instance(bounding_box=...)``) so positional calls cannot silently
fill the wrong one.

Example:
    >>> box = BoundingBox(Rectangle(Point(0.1, 0.1), Point(0.5, 0.6)), confidence=0.9)
    >>> d = ImageAnnotation(Image(["pool://images/1.jpg"]),
    ...                     {"person": ClassAnnotation([Instance(bounding_box=box)])}, uid="a1")
    >>> d.kind, d.classes["person"].instances[0].bounding_box.rectangle.area()
    ('ImageAnnotation', 0.2)
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from .geometry import Mask, Point, Rectangle

__all__ = [
    "AttributeValue",
    "BoundingBox",
    "ClassAnnotation",
    "Image",
    "ImageAnnotation",
    "Instance",
    "Keypoint",
    "MultiInstance",
    "Segmentation",
]

_WIRE = {"rename": "camel", "omit_defaults": True, "gc": False}


class AttributeValue(msgspec.Struct, **_WIRE):
    """One candidate value of an instance attribute, with an optional confidence."""

    value: str
    confidence: int | float | None = None


class Keypoint(msgspec.Struct, **_WIRE):
    """A named keypoint's position; ``occluded`` says it is hidden but inferrable (None: unknown).

    >>> Keypoint(Point(0.5, 0.5)).similarity(Keypoint(Point(0.5, 0.5)), scale=0.1)
    1.0
    """

    point: Point
    occluded: bool | None = None
    confidence: int | float | None = None

    def distance(self, other: Keypoint) -> float:
        """Euclidean distance between the two points."""
        return self.point.distance(other.point)

    def similarity(self, other: Keypoint, *, scale: float, kappa: float = 1.0) -> float:
        """COCO's per-keypoint similarity ``exp(-d² / (2 s² κ²))`` (``scale`` = sqrt of the object area)."""
        if scale <= 0 or kappa <= 0:
            raise ValueError("scale and kappa must be positive")
        d = self.distance(other)
        return math.exp(-(d * d) / (2 * scale * scale * kappa * kappa))


class BoundingBox(msgspec.Struct, **_WIRE):
    """An instance's axis-aligned box, with an optional confidence."""

    rectangle: Rectangle
    confidence: int | float | None = None

    def meets_confidence_threshold(self, threshold: float) -> bool:
        """True when no confidence is set or it is at least ``threshold`` (datatap's rule)."""
        return self.confidence is None or self.confidence >= threshold


class Segmentation(msgspec.Struct, **_WIRE):
    """An instance's shape as even-odd polygons (wire: ``list[list[Point]]``), with a confidence."""

    mask: list[list[Point]]
    confidence: int | float | None = None

    def to_mask(self) -> Mask:
        """The polygons as a :class:`~headwater.droplet.geometry.Mask` (for areas and IoU)."""
        return Mask.from_wire(self.mask)

    def meets_confidence_threshold(self, threshold: float) -> bool:
        """True when no confidence is set or it is at least ``threshold`` (datatap's rule)."""
        return self.confidence is None or self.confidence >= threshold


class Instance(msgspec.Struct, kw_only=True, **_WIRE):
    """One object of a class: any of an id, a box, a segmentation, keypoints and attributes.

    A keypoint mapped to ``None`` reports that the keypoint is absent (not visible, no inferrable
    position). Each attribute maps to its candidate values; the legacy bare-string form is accepted
    when *decoding* (it becomes a one-element list), not when constructing.

    >>> Instance(attributes={"color": [AttributeValue("red", confidence=0.8)]}).attributes["color"][0].value
    'red'
    """

    id: str | None = None
    bounding_box: BoundingBox | None = None
    segmentation: Segmentation | None = None
    keypoints: dict[str, Keypoint | None] | None = None
    attributes: dict[str, list[AttributeValue]] | None = None


class MultiInstance(msgspec.Struct, kw_only=True, **_WIRE):
    """A group of objects of one class (e.g. a crowd), with an optional count of them."""

    bounding_box: BoundingBox | None = None
    segmentation: Segmentation | None = None
    count: int | None = None


class ClassAnnotation(msgspec.Struct, rename="camel", gc=False):
    """The instances and multi-instances of one class; both lists are always written (as datatap does)."""

    instances: list[Instance] = msgspec.field(default_factory=list)
    multi_instances: list[MultiInstance] = msgspec.field(default_factory=list)


class Image(msgspec.Struct, **_WIRE):
    """The annotated image: where to load it (tried in order) and an optional uid.

    A path may be ``pool://{pool}/{key}`` (see :mod:`headwater.droplet.refs`), an http(s)/s3/hf/file
    URL or a local path.
    """

    paths: list[str]
    uid: str | None = None


class _ImageAnnotationBase(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    image: Image
    classes: dict[str, ClassAnnotation]


class ImageAnnotation(_ImageAnnotationBase, kw_only=True, gc=False, tag_field="kind", tag="ImageAnnotation"):
    """One annotated image (a *droplet*); ``kind`` is always ``"ImageAnnotation"``.

    ``mask`` is an optional region of interest (only what lies inside it was annotated); ``metadata``
    any JSON object. ``image`` and ``classes`` may be positional, the rest are keyword-only.

    Like every droplet struct it is not tracked by the cyclic garbage collector (decoding millions
    of them would otherwise trigger long collections), so do not build reference cycles through it
    (e.g. by putting a droplet inside its own ``metadata``): such a cycle would never be freed.

    >>> d = ImageAnnotation.from_json({"image": {"paths": ["a.jpg"]}, "classes": {}})
    >>> d.to_json()
    {'kind': 'ImageAnnotation', 'image': {'paths': ['a.jpg']}, 'classes': {}}
    """

    mask: list[list[Point]] | None = None
    uid: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return "ImageAnnotation"

    @staticmethod
    def from_json(json: Any) -> ImageAnnotation:
        """From a parsed JSON object (datatap's name); raises :class:`DropletError` with the path."""
        from .codec import droplet_from_builtins

        return droplet_from_builtins(json)

    def to_json(self) -> dict[str, Any]:
        """To a JSON-ready dict (datatap's name), exactly as :func:`encode_droplet` writes it."""
        builtins: dict[str, Any] = msgspec.to_builtins(self)  # a struct becomes a dict
        return builtins

    def to_mask(self) -> Mask | None:
        """The region-of-interest mask, if any, as a :class:`~headwater.droplet.geometry.Mask`."""
        return Mask.from_wire(self.mask) if self.mask is not None else None
