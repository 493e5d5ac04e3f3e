"""The droplet wire format as typed dicts, with datatap's names: what the endpoint layer yields.

Why beside the msgspec structs of :mod:`.schema`: the structs are what headwater decodes into and works
with; these describe the same JSON for code written against datatap's endpoint layer
(:class:`~headwater.client.ApiEndpoints`), which receives plain dicts — ``ImageAnnotationJson`` and the
rest keep datatap's names so its type annotations carry over unchanged. Keys are the wire's camelCase;
coordinates are normalised to ``[0, 1]``.

Example:
    >>> box: BoundingBoxJson = {"rectangle": [[0.1, 0.1], [0.5, 0.5]]}
    >>> droplet: ImageAnnotationJson = {"kind": "ImageAnnotation", "image": {"paths": ["a.jpg"]},
    ...                                 "classes": {"cat": {"instances": [{"boundingBox": box}]}}}
    >>> droplet["classes"]["cat"]["instances"][0]["boundingBox"]["rectangle"][1]
    [0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "PointJson",
    "RectangleJson",
    "PolygonJson",
    "MaskJson",
    "AttributeValueJson",
    "BoundingBoxJson",
    "SegmentationJson",
    "KeypointJson",
    "InstanceJson",
    "MultiInstanceJson",
    "ClassAnnotationJson",
    "ImageJson",
    "ImageAnnotationJson",
]

PointJson = Sequence[float]
"""``[x, y]``."""

RectangleJson = Sequence[PointJson]
"""``[[x1, y1], [x2, y2]]``, top-left then bottom-right."""

PolygonJson = Sequence[PointJson]
"""``[[x, y], …]``, at least three points."""

MaskJson = Sequence[PolygonJson]
"""Polygons; a point is inside when an odd number of them enclose it."""


class AttributeValueJson(TypedDict):
    """One candidate value of an attribute."""

    value: str
    confidence: NotRequired[float]


class BoundingBoxJson(TypedDict):
    """A box, with the detector's confidence when there is one."""

    rectangle: RectangleJson
    confidence: NotRequired[float]


class SegmentationJson(TypedDict):
    """A segmentation mask, with its confidence when there is one."""

    mask: MaskJson
    confidence: NotRequired[float]


class KeypointJson(TypedDict):
    """A keypoint (``null`` in an instance's map when absent)."""

    point: PointJson
    occluded: NotRequired[bool]
    confidence: NotRequired[float]


class InstanceJson(TypedDict, total=False):
    """One object: every field optional (the template says which exist)."""

    id: str
    boundingBox: BoundingBoxJson
    segmentation: SegmentationJson
    keypoints: Mapping[str, KeypointJson | None]
    attributes: Mapping[str, Sequence[AttributeValueJson]]


class MultiInstanceJson(TypedDict, total=False):
    """Several objects of a class counted together (a crowd)."""

    boundingBox: BoundingBoxJson
    segmentation: SegmentationJson
    count: int


class ClassAnnotationJson(TypedDict, total=False):
    """What one class holds on one image."""

    instances: Sequence[InstanceJson]
    multiInstances: Sequence[MultiInstanceJson]


class ImageJson(TypedDict):
    """Where the image is: paths (URLs, ``pool://`` refs) and an optional uid."""

    paths: Sequence[str]
    uid: NotRequired[str]


class ImageAnnotationJson(TypedDict):
    """One droplet: an image and what is annotated on it, by class."""

    kind: Literal["ImageAnnotation"]
    image: ImageJson
    classes: Mapping[str, ClassAnnotationJson]
    uid: NotRequired[str]
    mask: NotRequired[MaskJson]
    metadata: NotRequired[Mapping[str, Any]]
