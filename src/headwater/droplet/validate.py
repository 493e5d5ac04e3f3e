"""Check a droplet's geometry, and its fit to a template, naming the path of every bad field.

Decoding only checks JSON types; this is the full check, run when a droplet is published (once),
not when it is read (millions of times). Rules:

* geometry — every coordinate a finite number in ``[0, 1]``; rectangles with positive area
  (``x2 > x1`` and ``y2 > y1``); masks with at least one polygon, polygons with at least 3 points;
  confidences in ``[0, 1]``; counts integers ``>= 0``; ``image.paths`` non-empty strings (pool
  references well formed);
* template — classes, fields, keypoint names, attribute names and values the template does not
  allow are errors; with ``strict=True`` (default) so are fields the template promises but an
  instance lacks (datatap's semantics: ``boundingBox: true`` means every instance has one; listed
  keypoints must each be present, possibly ``null``; listed attributes must each be given).

Every error is a :class:`DropletError` whose ``path`` points at the field, e.g.
``$.classes.person.instances[3].boundingBox.rectangle[1][0]``.

Publishing checks millions of droplets, nearly all of them good, so it uses :class:`DropletValidator`:
one msgspec decode into *checked* structs (subclasses of the schema's, whose fields carry the range and
length rules as ``msgspec.Meta`` constraints: coordinates and confidences in ``[0, 1]``, polygons of at
least 3 points, counts ``>= 0``, non-empty paths), then the few rules a constraint cannot say (rectangle
area, the template, pool-reference syntax) in one tight loop. It only answers "good, here is the
droplet" or "not sure": for anything else the caller takes the full path above, so every message and
path stays exactly what :func:`iter_droplet_errors` says.

Example:
    >>> from headwater.droplet import decode_droplet, decode_template
    >>> d = decode_droplet(b'{"image":{"paths":["a.jpg"]},"classes":{"cat":{"instances":'
    ...                    b'[{"boundingBox":{"rectangle":[[0.1,0.1],[1.5,0.4]]}}]}}}')
    >>> validate_droplet(d)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    headwater.droplet.errors.DropletError: $.classes.cat.instances[0].boundingBox.rectangle[1][0]:
    coordinate 1.5 is outside [0, 1]
    >>> t = decode_template({"classes": {"dog": {"instances": {"boundingBox": True}}}})
    >>> [e.path for e in iter_droplet_errors(d, t)]
    ['$.classes.cat']
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import msgspec

from .errors import DropletError, ImageRefError
from .geometry import Point, Rectangle
from .jsonpath import key_path
from .refs import parse_image_ref
from .schema import (
    AttributeValue,
    BoundingBox,
    ClassAnnotation,
    Image,
    ImageAnnotation,
    Instance,
    Keypoint,
    MultiInstance,
    Segmentation,
)
from .template import (
    ImageAnnotationTemplate,
    InstanceTemplate,
    MultiInstanceTemplate,
    decode_template,
)

__all__ = ["DropletValidator", "iter_droplet_errors", "validate_droplet"]

_NUMBER = (int, float)


def validate_droplet(
    droplet: ImageAnnotation, template: ImageAnnotationTemplate | Mapping[str, Any] | bytes | str | None = None,
    *, strict: bool = True,
) -> None:
    """Raise the first :class:`DropletError` of ``droplet`` (see the module docstring for the rules).

    >>> from headwater.droplet import Image
    >>> validate_droplet(ImageAnnotation(Image([]), {}))
    Traceback (most recent call last):
    ...
    headwater.droplet.errors.DropletError: $.image.paths: an image needs at least one path
    """
    for error in iter_droplet_errors(droplet, template, strict=strict):
        raise error


def iter_droplet_errors(
    droplet: ImageAnnotation, template: ImageAnnotationTemplate | Mapping[str, Any] | bytes | str | None = None,
    *, strict: bool = True,
) -> Iterator[DropletError]:
    """Every problem of ``droplet``, in document order (for reports that list them all).

    >>> from headwater.droplet import Image
    >>> [str(e) for e in iter_droplet_errors(ImageAnnotation(Image(["a.jpg"]), {}, uid=5))]
    ['$.uid: expected a string, got int']
    """
    if not isinstance(droplet, ImageAnnotation):
        yield DropletError("$", f"expected an ImageAnnotation, got {type(droplet).__name__}")
        return
    tmpl = decode_template(template) if template is not None else None
    yield from _image(droplet.image)
    if droplet.mask is not None:
        yield from _mask(droplet.mask, "$.mask")
    yield from _optional_str(droplet.uid, "$.uid")
    if droplet.metadata is not None and not isinstance(droplet.metadata, dict):
        yield DropletError("$.metadata", f"expected an object, got {type(droplet.metadata).__name__}")
    if not isinstance(droplet.classes, dict):
        yield DropletError("$.classes", f"expected an object, got {type(droplet.classes).__name__}")
        return
    for name, annotation in droplet.classes.items():
        cpath = key_path("$.classes", name) if isinstance(name, str) else f"$.classes[{name!r}]"
        if not isinstance(name, str):
            yield DropletError(cpath, "class names must be strings")
            continue
        if not isinstance(annotation, ClassAnnotation):
            yield DropletError(cpath, f"expected a ClassAnnotation, got {type(annotation).__name__}")
            continue
        instance_t: InstanceTemplate | None = None
        multi_t: MultiInstanceTemplate | None = None
        if tmpl is not None:
            ct = tmpl.classes.get(name)
            if ct is None:
                known = ", ".join(repr(c) for c in tmpl.classes) or "none"
                yield DropletError(cpath, f"class {name!r} is not in the template (its classes: {known})")
                continue
            if ct.instances is None and annotation.instances:
                yield DropletError(f"{cpath}.instances", f"the template gives class {name!r} no instances")
            if ct.multi_instances is None and annotation.multi_instances:
                yield DropletError(f"{cpath}.multiInstances", f"the template gives class {name!r} no multi-instances")
            instance_t, multi_t = ct.instances, ct.multi_instances
            if instance_t is None and multi_t is None:
                continue
        if tmpl is None or instance_t is not None:
            for i, instance in enumerate(annotation.instances):
                yield from _instance(instance, f"{cpath}.instances[{i}]", instance_t, strict)
        if tmpl is None or multi_t is not None:
            for i, multi in enumerate(annotation.multi_instances):
                yield from _multi(multi, f"{cpath}.multiInstances[{i}]", multi_t, strict)


def _image(image: Any) -> Iterator[DropletError]:
    if not isinstance(image, Image):
        yield DropletError("$.image", f"expected an Image, got {type(image).__name__}")
        return
    if not isinstance(image.paths, list) or not image.paths:
        yield DropletError("$.image.paths", "an image needs at least one path")
    else:
        for i, path in enumerate(image.paths):
            try:
                parse_image_ref(path)
            except ImageRefError as err:
                yield DropletError(f"$.image.paths[{i}]", str(err))
    yield from _optional_str(image.uid, "$.image.uid")


def _optional_str(value: Any, path: str) -> Iterator[DropletError]:
    if value is not None and not isinstance(value, str):
        yield DropletError(path, f"expected a string, got {type(value).__name__}")


def _field(present: bool, allowed: bool | None, strict: bool, path: str, what: str) -> DropletError | None:
    """The template error for one optional field, if any (``allowed=None``: no template)."""
    if allowed is None:
        return None
    if present and not allowed:
        return DropletError(path, f"the template does not allow {what} here")
    if strict and allowed and not present:
        return DropletError(path, f"missing {what} (the template says every one has it)")
    return None


def _instance(inst: Any, path: str, t: InstanceTemplate | None, strict: bool) -> Iterator[DropletError]:
    if not isinstance(inst, Instance):
        yield DropletError(path, f"expected an Instance, got {type(inst).__name__}")
        return
    checks = (
        (inst.id is not None, t.id if t else None, ".id", "an id"),
        (inst.bounding_box is not None, t.bounding_box if t else None, ".boundingBox", "a bounding box"),
        (inst.segmentation is not None, t.segmentation if t else None, ".segmentation", "a segmentation"),
    )
    for present, allowed, suffix, what in checks:
        error = _field(present, allowed, strict, path + suffix, what)
        if error is not None:
            yield error
    yield from _optional_str(inst.id, path + ".id")
    if inst.bounding_box is not None:
        yield from _box(inst.bounding_box, path + ".boundingBox")
    if inst.segmentation is not None:
        yield from _segmentation(inst.segmentation, path + ".segmentation")
    yield from _keypoints(inst.keypoints, path + ".keypoints", t, strict)
    yield from _attributes(inst.attributes, path + ".attributes", t, strict)


def _multi(multi: Any, path: str, t: MultiInstanceTemplate | None, strict: bool) -> Iterator[DropletError]:
    if not isinstance(multi, MultiInstance):
        yield DropletError(path, f"expected a MultiInstance, got {type(multi).__name__}")
        return
    checks = (
        (multi.bounding_box is not None, t.bounding_box if t else None, ".boundingBox", "a bounding box"),
        (multi.segmentation is not None, t.segmentation if t else None, ".segmentation", "a segmentation"),
        (multi.count is not None, t.count if t else None, ".count", "a count"),
    )
    for present, allowed, suffix, what in checks:
        error = _field(present, allowed, strict, path + suffix, what)
        if error is not None:
            yield error
    if multi.bounding_box is not None:
        yield from _box(multi.bounding_box, path + ".boundingBox")
    if multi.segmentation is not None:
        yield from _segmentation(multi.segmentation, path + ".segmentation")
    count = multi.count
    if count is not None:
        if type(count) is not int:
            yield DropletError(path + ".count", f"a count must be an integer, got {type(count).__name__}")
        elif count < 0:
            yield DropletError(path + ".count", f"a count must not be negative, got {count}")


def _confidence(value: Any, path: str) -> Iterator[DropletError]:
    if value is None:
        return
    if type(value) not in _NUMBER:
        yield DropletError(path, f"a confidence must be a number, got {type(value).__name__}")
    elif not 0 <= value <= 1:
        yield DropletError(path, f"confidence {value!r} is outside [0, 1]")


def _point(point: Any, path: str) -> Iterator[DropletError]:
    if not isinstance(point, Point):
        yield DropletError(path, f"expected a point [x, y], got {type(point).__name__}")
        return
    for i, v in enumerate((point.x, point.y)):
        if type(v) not in _NUMBER:
            yield DropletError(f"{path}[{i}]", f"a coordinate must be a number, got {type(v).__name__}")
        elif not 0 <= v <= 1:
            what = "is not finite" if not math.isfinite(v) else "is outside [0, 1]"
            yield DropletError(f"{path}[{i}]", f"coordinate {v!r} {what}")


def _box(box: Any, path: str) -> Iterator[DropletError]:
    if not isinstance(box, BoundingBox):
        yield DropletError(path, f"expected a BoundingBox, got {type(box).__name__}")
        return
    yield from _confidence(box.confidence, path + ".confidence")
    rect = box.rectangle
    rpath = path + ".rectangle"
    if not isinstance(rect, Rectangle):
        yield DropletError(rpath, f"expected a rectangle [[x1, y1], [x2, y2]], got {type(rect).__name__}")
        return
    bad = list(_point(rect.p1, rpath + "[0]")) + list(_point(rect.p2, rpath + "[1]"))
    if bad:
        yield from bad
        return
    if rect.p2.x <= rect.p1.x or rect.p2.y <= rect.p1.y:
        yield DropletError(rpath, f"the rectangle has no area (needs x1 < x2 and y1 < y2): {rect.to_xyxy()}")


def _segmentation(seg: Any, path: str) -> Iterator[DropletError]:
    if not isinstance(seg, Segmentation):
        yield DropletError(path, f"expected a Segmentation, got {type(seg).__name__}")
        return
    yield from _mask(seg.mask, path + ".mask")
    yield from _confidence(seg.confidence, path + ".confidence")


def _mask(mask: Any, path: str) -> Iterator[DropletError]:
    if not isinstance(mask, list) or not mask:
        yield DropletError(path, "a mask needs at least one polygon")
        return
    for i, polygon in enumerate(mask):
        ppath = f"{path}[{i}]"
        if not isinstance(polygon, list) or len(polygon) < 3:
            n = len(polygon) if isinstance(polygon, list) else type(polygon).__name__
            yield DropletError(ppath, f"a polygon needs at least 3 points, got {n}")
            continue
        for j, point in enumerate(polygon):
            if type(point) is Point and type(point.x) in _NUMBER and type(point.y) in _NUMBER \
                    and 0 <= point.x <= 1 and 0 <= point.y <= 1:
                continue  # the common case, without building a path
            yield from _point(point, f"{ppath}[{j}]")


def _keypoints(kps: Any, path: str, t: InstanceTemplate | None, strict: bool) -> Iterator[DropletError]:
    allowed = t.keypoints if t is not None else None
    if kps is None:
        if strict and allowed:
            yield DropletError(path, f"missing keypoints (the template lists {allowed})")
        return
    if not isinstance(kps, dict):
        yield DropletError(path, f"expected an object of keypoints, got {type(kps).__name__}")
        return
    for name, kp in kps.items():
        kpath = key_path(path, name)
        if allowed is not None and name not in allowed:
            yield DropletError(kpath, f"keypoint {name!r} is not in the template (its keypoints: {allowed})")
            continue
        if kp is None:
            continue
        if not isinstance(kp, Keypoint):
            yield DropletError(kpath, f"expected a Keypoint or null, got {type(kp).__name__}")
            continue
        yield from _point(kp.point, kpath + ".point")
        if kp.occluded is not None and not isinstance(kp.occluded, bool):
            yield DropletError(kpath + ".occluded", f"expected true/false, got {type(kp.occluded).__name__}")
        yield from _confidence(kp.confidence, kpath + ".confidence")
    if strict and allowed:
        missing = [k for k in allowed if k not in kps]
        if missing:
            yield DropletError(path, f"missing keypoint(s) {missing} (the template lists them; use null for "
                                     "an absent keypoint)")


def _attributes(attrs: Any, path: str, t: InstanceTemplate | None, strict: bool) -> Iterator[DropletError]:
    allowed = t.attributes if t is not None else None
    if attrs is None:
        if strict and allowed:
            yield DropletError(path, f"missing attributes (the template lists {list(allowed)})")
        return
    if not isinstance(attrs, dict):
        yield DropletError(path, f"expected an object of attributes, got {type(attrs).__name__}")
        return
    for name, values in attrs.items():
        apath = key_path(path, name)
        if allowed is not None and name not in allowed:
            yield DropletError(apath, f"attribute {name!r} is not in the template (its attributes: {list(allowed)})")
            continue
        if not isinstance(values, list):
            yield DropletError(apath, f"expected a list of values, got {type(values).__name__}")
            continue
        for i, value in enumerate(values):
            vpath = f"{apath}[{i}]"
            if not isinstance(value, AttributeValue):
                yield DropletError(vpath, f"expected an AttributeValue, got {type(value).__name__}")
                continue
            if not isinstance(value.value, str):
                yield DropletError(vpath + ".value", f"expected a string, got {type(value.value).__name__}")
            elif allowed is not None and value.value not in allowed[name]:
                yield DropletError(vpath + ".value", f"value {value.value!r} is not allowed for attribute {name!r} "
                                                     f"(allowed: {allowed[name]})")
            yield from _confidence(value.confidence, vpath + ".confidence")
    if strict and allowed:
        missing = [a for a in allowed if a not in attrs]
        if missing:
            yield DropletError(path, f"missing attribute(s) {missing} (the template lists them)")


# -- the publish fast path: decode into checked structs, then the rules constraints cannot say -------------
# Each checked struct redefines ALL fields of its schema struct, in the same order (a redefined field keeps
# its place only then), so that a checked droplet is an ImageAnnotation and encodes to the same bytes.
_Unit = Annotated[int, msgspec.Meta(ge=0, le=1)] | Annotated[float, msgspec.Meta(ge=0, le=1)]


class _CheckedPoint(Point, frozen=True):
    x: _Unit
    y: _Unit


class _CheckedRectangle(Rectangle, frozen=True):
    p1: _CheckedPoint
    p2: _CheckedPoint


_CheckedMask = Annotated[list[Annotated[list[_CheckedPoint], msgspec.Meta(min_length=3)]], msgspec.Meta(min_length=1)]


class _CheckedAttributeValue(AttributeValue):
    value: str
    confidence: _Unit | None = None


class _CheckedKeypoint(Keypoint):
    point: _CheckedPoint
    occluded: bool | None = None
    confidence: _Unit | None = None


class _CheckedBoundingBox(BoundingBox):
    rectangle: _CheckedRectangle
    confidence: _Unit | None = None


class _CheckedSegmentation(Segmentation):
    mask: _CheckedMask  # type: ignore[assignment]  # narrower items, only read
    confidence: _Unit | None = None


class _CheckedInstance(Instance):
    id: str | None = None
    bounding_box: _CheckedBoundingBox | None = None
    segmentation: _CheckedSegmentation | None = None
    keypoints: dict[str, _CheckedKeypoint | None] | None = None  # type: ignore[assignment]  # narrower items, only read
    attributes: dict[str, list[_CheckedAttributeValue]] | None = None  # type: ignore[assignment]  # narrower items, only read


class _CheckedMultiInstance(MultiInstance):
    bounding_box: _CheckedBoundingBox | None = None
    segmentation: _CheckedSegmentation | None = None
    count: Annotated[int, msgspec.Meta(ge=0)] | None = None


class _CheckedClassAnnotation(ClassAnnotation):
    instances: list[_CheckedInstance] = msgspec.field(default_factory=list)  # type: ignore[assignment]  # narrower items, only read
    multi_instances: list[_CheckedMultiInstance] = msgspec.field(default_factory=list)  # type: ignore[assignment]  # narrower items, only read


class _CheckedImage(Image):
    paths: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]
    uid: str | None = None


class _CheckedImageAnnotation(ImageAnnotation, tag="ImageAnnotation"):
    image: _CheckedImage
    classes: dict[str, _CheckedClassAnnotation]  # type: ignore[assignment]  # narrower items, only read
    mask: _CheckedMask | None = None  # type: ignore[assignment]  # narrower items, only read
    uid: str | None = None
    metadata: dict[str, Any] | None = None


_CHECKED_DECODER = msgspec.json.Decoder(_CheckedImageAnnotation)

# a compiled template: class name -> (instance rules or None, multi-instance rules or None)
_InstanceRules = tuple[bool, bool, bool, frozenset[str], dict[str, frozenset[str]]]
_MultiRules = tuple[bool, bool, bool]


class DropletValidator:
    """Decode and validate a droplet in one step, for the many good droplets of a publish.

    :meth:`decode` returns the droplet when it decodes and breaks no rule of :func:`iter_droplet_errors`
    for ``template``/``strict``; otherwise None — then the caller decodes it the usual way and lists its
    problems with :func:`iter_droplet_errors`, which names each one exactly. The droplet it returns is an
    :class:`~headwater.droplet.schema.ImageAnnotation` (of a checked subclass) that encodes to the same
    bytes as :func:`~headwater.droplet.decode_droplet`'s.

    Measured on realistic droplets (1-3 classes x 1-4 instances with boxes, masks, keypoints) it is ~10x
    faster than ``decode_droplet`` + ``validate_droplet``: the range checks run inside msgspec's decode, and
    the template is compiled to sets once.

    >>> v = DropletValidator({"classes": {"cat": {"instances": {"boundingBox": True}}}})
    >>> good = (b'{"image":{"paths":["a.jpg"]},"classes":{"cat":{"instances":[{"boundingBox":'
    ...         b'{"rectangle":[[0,0],[1,1]]}}]}}}')
    >>> v.decode(good).classes["cat"].instances[0].bounding_box.rectangle.to_xyxy()
    (0, 0, 1, 1)
    >>> v.decode(good.replace(b"[1,1]", b"[1,1.5]")) is None, v.decode(good.replace(b"cat", b"dog")) is None
    (True, True)
    """

    def __init__(self, template: ImageAnnotationTemplate | Mapping[str, Any] | bytes | str | None = None, *,
                 strict: bool = True) -> None:
        self.template = decode_template(template) if template is not None else None
        self.strict = strict
        self._classes: dict[str, tuple[_InstanceRules | None, _MultiRules | None]] | None = None
        if self.template is not None:
            self._classes = {}
            for name, ct in self.template.classes.items():
                it, mt = ct.instances, ct.multi_instances
                rules = None if it is None else (
                    it.id, it.bounding_box, it.segmentation, frozenset(it.keypoints),
                    {attr: frozenset(values) for attr, values in it.attributes.items()})
                multi = None if mt is None else (mt.bounding_box, mt.segmentation, mt.count)
                self._classes[name] = (rules, multi)

    def decode(self, data: bytes | bytearray | memoryview | str) -> ImageAnnotation | None:
        """The droplet of JSON ``data`` if it is good; None when it is not (or may not be)."""
        try:
            droplet: ImageAnnotation = _CHECKED_DECODER.decode(data)
        except (msgspec.MsgspecError, RecursionError):
            return None
        return droplet if self._fits(droplet) else None

    def _fits(self, droplet: ImageAnnotation) -> bool:
        for path in droplet.image.paths:
            if path[:7].lower() == "pool://":  # only a pool reference can be malformed (paths: non-empty strings)
                try:
                    parse_image_ref(path)
                except ImageRefError:
                    return False
        classes = self._classes
        strict = self.strict
        for name, annotation in droplet.classes.items():
            if classes is None:
                rules: _InstanceRules | None = None
                multi: _MultiRules | None = None
            else:
                compiled = classes.get(name)
                if compiled is None:
                    return False
                rules, multi = compiled
                if rules is None and annotation.instances:
                    return False
                if multi is None and annotation.multi_instances:
                    return False
            for inst in annotation.instances:
                box = inst.bounding_box
                if box is not None:
                    r = box.rectangle
                    if not (r.p2.x > r.p1.x and r.p2.y > r.p1.y):
                        return False
                if rules is None:
                    continue
                want_id, want_box, want_seg, keypoints, attributes = rules
                has_id, has_box, has_seg = inst.id is not None, box is not None, inst.segmentation is not None
                if strict:
                    if has_id != want_id or has_box != want_box or has_seg != want_seg:
                        return False
                elif (has_id and not want_id) or (has_box and not want_box) or (has_seg and not want_seg):
                    return False
                kps = inst.keypoints
                if kps is None:
                    if strict and keypoints:
                        return False
                elif not (kps.keys() == keypoints if strict else kps.keys() <= keypoints):
                    return False
                attrs = inst.attributes
                if attrs is None:
                    if strict and attributes:
                        return False
                else:
                    if strict and len(attrs) != len(attributes):  # with every name allowed: all are given
                        return False
                    for attr, values in attrs.items():
                        allowed = attributes.get(attr)
                        if allowed is None:
                            return False
                        for value in values:
                            if value.value not in allowed:
                                return False
            for m in annotation.multi_instances:
                box = m.bounding_box
                if box is not None:
                    r = box.rectangle
                    if not (r.p2.x > r.p1.x and r.p2.y > r.p1.y):
                        return False
                if multi is None:
                    continue
                present = (box is not None, m.segmentation is not None, m.count is not None)
                for has, want in zip(present, multi, strict=True):
                    if has != want if strict else has and not want:
                        return False
        return True
