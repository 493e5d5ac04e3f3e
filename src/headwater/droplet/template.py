"""Templates: what a dataset's droplets contain (datatap's ``ImageAnnotationTemplate`` JSON).

A template is a promise about every droplet of a dataset (datatap's semantics): for each class, whether
it has instances and/or multi-instances, and for those which fields are present. ``boundingBox: true``
means *every* instance has a box; ``keypoints: [names]`` means every instance maps each name to a
keypoint or ``null``; ``attributes: {name: [values]}`` means every instance gives each attribute,
with values from the allowed set. :func:`validate_droplet` holds droplets to that promise.

Wire form (``false`` flags and empty lists omitted, as datatap writes them)::

    {"kind": "ImageAnnotationTemplate",
     "classes": {name: {"instances"?: {"id"?: true, "boundingBox"?: true, "segmentation"?: true,
                                       "keypoints"?: [str], "attributes"?: {name: [str]}},
                        "multiInstances"?: {"boundingBox"?: true, "segmentation"?: true, "count"?: true}}}}

Keypoint names and attribute values keep their order (a skeleton's order means something) and must
not repeat.

Example:
    >>> t = ImageAnnotationTemplate({"person": ClassAnnotationTemplate(
    ...     instances=InstanceTemplate(bounding_box=True, keypoints=["nose", "neck"]))})
    >>> encode_template(t)
    b'{"kind":"ImageAnnotationTemplate","classes":{"person":{"instances":{"boundingBox":true,"keypoints":["nose","neck"]}}}}'
    >>> decode_template(encode_template(t)) == t
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from .errors import TemplateError
from .jsonpath import decode_error
from .schema import ImageAnnotation

__all__ = [
    "ClassAnnotationTemplate",
    "ImageAnnotationTemplate",
    "InstanceTemplate",
    "MultiInstanceTemplate",
    "decode_template",
    "encode_template",
    "infer_template",
    "merge_templates",
]


def _no_repeats(values: list[str], what: str) -> None:
    if len(set(values)) != len(values):
        seen: set[str] = set()
        dup = next(v for v in values if v in seen or seen.add(v))  # type: ignore[func-returns-value]  # add: None
        raise ValueError(f"{what} {dup!r} is listed twice")


class InstanceTemplate(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Which fields every instance of a class has."""

    id: bool = False
    bounding_box: bool = False
    segmentation: bool = False
    keypoints: list[str] = msgspec.field(default_factory=list)
    attributes: dict[str, list[str]] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _no_repeats(self.keypoints, "keypoint")
        for values in self.attributes.values():
            _no_repeats(values, "attribute value")


class MultiInstanceTemplate(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Which fields every multi-instance of a class has."""

    bounding_box: bool = False
    segmentation: bool = False
    count: bool = False


class ClassAnnotationTemplate(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A class's instance and multi-instance templates; ``None`` means the class has none of them."""

    instances: InstanceTemplate | None = None
    multi_instances: MultiInstanceTemplate | None = None


class ImageAnnotationTemplate(msgspec.Struct, rename="camel", tag_field="kind", tag="ImageAnnotationTemplate"):
    """The template of an image dataset: class name → :class:`ClassAnnotationTemplate`."""

    classes: dict[str, ClassAnnotationTemplate] = msgspec.field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "ImageAnnotationTemplate"

    @staticmethod
    def from_json(json: Any) -> ImageAnnotationTemplate:
        """From a parsed JSON object (datatap's name)."""
        return decode_template(json)

    def to_json(self) -> dict[str, Any]:
        """To a JSON-ready dict (datatap's name), as :func:`encode_template` writes it.

        >>> ImageAnnotationTemplate({"cat": ClassAnnotationTemplate()}).to_json()
        {'kind': 'ImageAnnotationTemplate', 'classes': {'cat': {}}}
        """
        builtins: dict[str, Any] = msgspec.to_builtins(self)  # a struct becomes a dict
        return builtins


_DECODER = msgspec.json.Decoder(ImageAnnotationTemplate)
_ENCODER = msgspec.json.Encoder()


def decode_template(data: bytes | str | Mapping[str, Any] | ImageAnnotationTemplate) -> ImageAnnotationTemplate:
    """A template from JSON bytes/str or a parsed dict; raises :class:`TemplateError` with the path.

    ``kind`` may be omitted (datatap does not require it) but if present must be
    ``"ImageAnnotationTemplate"``.

    >>> decode_template({"classes": {"cat": {"instances": {"boundingBox": True}}}}).classes["cat"].instances
    InstanceTemplate(id=False, bounding_box=True, segmentation=False, keypoints=[], attributes={})
    >>> decode_template({"kind": "VideoAnnotationTemplate", "frames": {}})
    Traceback (most recent call last):
    ...
    headwater.droplet.errors.TemplateError: $.kind: Invalid value 'VideoAnnotationTemplate'
    """
    if isinstance(data, ImageAnnotationTemplate):
        return data
    try:
        if isinstance(data, (bytes, bytearray, memoryview, str)):
            return _DECODER.decode(data)
        return msgspec.convert(data, ImageAnnotationTemplate)
    except msgspec.MsgspecError as err:
        if isinstance(data, (bytes, bytearray, memoryview, str)):
            raise decode_error(err, data, ImageAnnotationTemplate, error_type=TemplateError) from None
        raise decode_error(err, None, ImageAnnotationTemplate, raw=data, error_type=TemplateError) from None


def encode_template(template: ImageAnnotationTemplate) -> bytes:
    """Compact JSON of ``template`` (``kind`` first, false flags and empty lists omitted).

    >>> encode_template(ImageAnnotationTemplate({}))
    b'{"kind":"ImageAnnotationTemplate","classes":{}}'
    """
    return _ENCODER.encode(template)


def infer_template(droplets: Iterable[ImageAnnotation]) -> ImageAnnotationTemplate:
    """The smallest template the droplets fit *in what they use*: the union of their fields.

    A field is marked present if any instance has it, so droplets that use a field only sometimes
    will fail :func:`validate_droplet` against the result with a "missing" error at the first one
    that lacks it (pass ``strict=False`` to check only what is present). Keypoint names, attribute
    names and values keep first-seen order.

    >>> from headwater.droplet import decode_droplet
    >>> d = decode_droplet(b'{"image":{"paths":["a"]},"classes":{"cat":{"instances":[{"boundingBox":'
    ...                    b'{"rectangle":[[0,0],[1,1]]},"attributes":{"color":"red"}}]}}}')
    >>> encode_template(infer_template([d]))
    b'{"kind":"ImageAnnotationTemplate","classes":{"cat":{"instances":{"boundingBox":true,"attributes":{"color":["red"]}}}}}'
    """
    classes: dict[str, ClassAnnotationTemplate] = {}
    keypoints: dict[str, dict[str, None]] = {}
    attributes: dict[str, dict[str, dict[str, None]]] = {}
    for droplet in droplets:
        for name, annotation in droplet.classes.items():
            ct = classes.setdefault(name, ClassAnnotationTemplate())
            if annotation.instances:
                it = ct.instances = ct.instances or InstanceTemplate()
                kps = keypoints.setdefault(name, {})
                attrs = attributes.setdefault(name, {})
                for inst in annotation.instances:
                    it.id |= inst.id is not None
                    it.bounding_box |= inst.bounding_box is not None
                    it.segmentation |= inst.segmentation is not None
                    if inst.keypoints:
                        kps.update(dict.fromkeys(inst.keypoints))
                    if inst.attributes:
                        for attr, values in inst.attributes.items():
                            seen = attrs.setdefault(attr, {})
                            seen.update(dict.fromkeys(v.value for v in values))
            if annotation.multi_instances:
                mt = ct.multi_instances = ct.multi_instances or MultiInstanceTemplate()
                for multi in annotation.multi_instances:
                    mt.bounding_box |= multi.bounding_box is not None
                    mt.segmentation |= multi.segmentation is not None
                    mt.count |= multi.count is not None
    for name, ct in classes.items():
        if ct.instances is not None:
            ct.instances.keypoints = list(keypoints.get(name, {}))
            ct.instances.attributes = {a: list(vs) for a, vs in attributes.get(name, {}).items()}
    return ImageAnnotationTemplate(classes)


def _merge_bool(a: Mapping[str, Any], b: Mapping[str, Any], out: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if a.get(key) or b.get(key):
            out[key] = True


def merge_templates(templates: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The union of several ``ImageAnnotationTemplate`` wire dicts (classes, fields, keypoint names
    and attribute values), so droplets of every input validate against the result.

    Example:
        >>> a = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"boundingBox": True}}}}
        >>> b = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"keypoints": ["nose"]}},
        ...                                                      "dog": {}}}
        >>> merge_templates([a, b])["classes"]
        {'cat': {'instances': {'boundingBox': True, 'keypoints': ['nose']}}, 'dog': {}}
    """
    classes: dict[str, dict[str, Any]] = {}
    for template in templates:
        for name, cls in (template.get("classes") or {}).items():
            merged = classes.setdefault(name, {})
            if "instances" in cls:
                old, new = merged.get("instances", {}), cls["instances"] or {}
                inst: dict[str, Any] = {}
                _merge_bool(old, new, inst, ("id", "boundingBox", "segmentation"))
                kps = list(dict.fromkeys([*old.get("keypoints", []), *new.get("keypoints", [])]))
                if kps:
                    inst["keypoints"] = kps
                attrs: dict[str, list[str]] = {k: list(v) for k, v in old.get("attributes", {}).items()}
                for key, values in (new.get("attributes") or {}).items():
                    attrs[key] = list(dict.fromkeys([*attrs.get(key, []), *values]))
                if attrs:
                    inst["attributes"] = attrs
                merged["instances"] = inst
            if "multiInstances" in cls:
                old, new = merged.get("multiInstances", {}), cls["multiInstances"] or {}
                multi: dict[str, Any] = {}
                _merge_bool(old, new, multi, ("boundingBox", "segmentation", "count"))
                merged["multiInstances"] = multi
    return {"kind": "ImageAnnotationTemplate", "classes": classes}
