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
from typing import Any

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

__all__ = ["iter_droplet_errors", "validate_droplet"]

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
