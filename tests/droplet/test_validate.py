"""validate_droplet: every bad input named by its JSON path, against geometry rules and templates."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.droplet import (
    AttributeValue,
    BoundingBox,
    ClassAnnotation,
    DropletError,
    DropletValidator,
    Image,
    ImageAnnotation,
    Instance,
    Keypoint,
    MultiInstance,
    Point,
    Rectangle,
    Segmentation,
    decode_droplet,
    decode_template,
    encode_droplet,
    iter_droplet_errors,
    validate_droplet,
)

BOX = {"rectangle": [[0.1, 0.1], [0.5, 0.5]], "confidence": 0.5}
SEG = {"mask": [[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]], "confidence": 1}
GOOD: dict[str, Any] = {
    "image": {"paths": ["pool://coco/1.jpg", "https://x.test/1.jpg", "local/1.jpg"]},
    "mask": [[[0, 0], [1, 0], [1, 1]]],
    "classes": {
        "person": {
            "instances": [
                {"boundingBox": BOX, "segmentation": SEG,
                 "keypoints": {"nose": {"point": [0.2, 0.2], "occluded": False, "confidence": 0.9}, "left eye": None},
                 "attributes": {"pose": [{"value": "standing", "confidence": 0.7}]}}
                for _ in range(4)
            ],
            "multiInstances": [{"boundingBox": BOX, "count": 0}],
        },
        "traffic light": {"instances": [{"id": "t1", "boundingBox": BOX}]},
    },
}
TEMPLATE = decode_template({"classes": {
    "person": {"instances": {"boundingBox": True, "segmentation": True, "keypoints": ["nose", "left eye"],
                             "attributes": {"pose": ["standing", "sitting"]}},
               "multiInstances": {"boundingBox": True, "count": True}},
    "traffic light": {"instances": {"id": True, "boundingBox": True}},
    "dog": {"instances": {"boundingBox": True}},
}})


def edited(path: list[Any], value: Any, *, delete: bool = False) -> ImageAnnotation:
    doc = json.loads(json.dumps(GOOD))  # no shared sub-objects
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return decode_droplet(json.dumps(doc))


def test_good_droplet_passes() -> None:
    d = decode_droplet(json.dumps(GOOD))
    validate_droplet(d)
    validate_droplet(d, TEMPLATE)
    validate_droplet(d, TEMPLATE.to_json())
    assert list(iter_droplet_errors(d, TEMPLATE)) == []


P3 = ["classes", "person", "instances", 3]
GEOMETRY_CASES = [
    # coordinates outside [0, 1]
    ([*P3, "boundingBox", "rectangle", 1, 0], 1.5, "$.classes.person.instances[3].boundingBox.rectangle[1][0]",
     "coordinate 1.5 is outside [0, 1]"),
    ([*P3, "boundingBox", "rectangle", 0, 1], -0.1, "$.classes.person.instances[3].boundingBox.rectangle[0][1]",
     "outside [0, 1]"),
    ([*P3, "segmentation", "mask", 0, 2, 0], 2, "$.classes.person.instances[3].segmentation.mask[0][2][0]",
     "coordinate 2 is outside"),
    ([*P3, "keypoints", "nose", "point", 1], 1.0000001, "$.classes.person.instances[3].keypoints.nose.point[1]",
     "outside [0, 1]"),
    (["mask", 0, 1, 1], -1, "$.mask[0][1][1]", "outside [0, 1]"),
    (["classes", "person", "multiInstances", 0, "boundingBox", "rectangle", 1, 1], 7,
     "$.classes.person.multiInstances[0].boundingBox.rectangle[1][1]", "outside"),
    # empty rectangles
    ([*P3, "boundingBox", "rectangle"], [[0.5, 0.1], [0.5, 0.4]], "$.classes.person.instances[3].boundingBox.rectangle",
     "no area"),
    ([*P3, "boundingBox", "rectangle"], [[0.5, 0.4], [0.6, 0.1]], "$.classes.person.instances[3].boundingBox.rectangle",
     "no area"),
    ([*P3, "boundingBox", "rectangle"], [[0.6, 0.1], [0.5, 0.4]], "$.classes.person.instances[3].boundingBox.rectangle",
     "x1 < x2"),
    # polygons under 3 points, masks without polygons
    ([*P3, "segmentation", "mask", 0], [[0.1, 0.1], [0.2, 0.2]], "$.classes.person.instances[3].segmentation.mask[0]",
     "at least 3 points, got 2"),
    ([*P3, "segmentation", "mask"], [], "$.classes.person.instances[3].segmentation.mask", "at least one polygon"),
    (["mask"], [[[0, 0], [1, 1], [0, 1]], []], "$.mask[1]", "at least 3 points, got 0"),
    (["mask"], [], "$.mask", "at least one polygon"),
    # confidences
    ([*P3, "boundingBox", "confidence"], 1.5, "$.classes.person.instances[3].boundingBox.confidence",
     "confidence 1.5 is outside [0, 1]"),
    ([*P3, "segmentation", "confidence"], -1, "$.classes.person.instances[3].segmentation.confidence", "outside"),
    ([*P3, "keypoints", "nose", "confidence"], 2, "$.classes.person.instances[3].keypoints.nose.confidence", "outside"),
    ([*P3, "attributes", "pose", 0, "confidence"], 1.01,
     "$.classes.person.instances[3].attributes.pose[0].confidence", "outside"),
    # counts
    (["classes", "person", "multiInstances", 0, "count"], -1, "$.classes.person.multiInstances[0].count",
     "must not be negative, got -1"),
    # image paths
    (["image", "paths"], [], "$.image.paths", "at least one path"),
    (["image", "paths", 1], "", "$.image.paths[1]", "non-empty string"),
    (["image", "paths", 0], "pool://coco/", "$.image.paths[0]", "key is empty"),
    (["image", "paths", 0], "pool://bad name/1.jpg", "$.image.paths[0]", "not a pool name"),
]


@pytest.mark.parametrize(("path", "value", "where", "words"), GEOMETRY_CASES)
def test_bad_geometry_is_named(path: list[Any], value: Any, where: str, words: str) -> None:
    d = edited(path, value)
    with pytest.raises(DropletError) as info:
        validate_droplet(d)
    assert info.value.path == where
    assert words in info.value.message
    # the same with the template, and through the full list
    with pytest.raises(DropletError) as info:
        validate_droplet(d, TEMPLATE)
    assert info.value.path == where
    assert [e.path for e in iter_droplet_errors(d, TEMPLATE)] == [where]


def test_decode_does_not_validate_geometry() -> None:
    d = edited([*P3, "boundingBox", "rectangle"], [[0.9, 0.9], [0.1, 5]])
    box = d.classes["person"].instances[3].bounding_box
    assert box is not None and box.rectangle.p2.y == 5


def test_non_finite_numbers() -> None:
    d = decode_droplet(json.dumps(GOOD))
    box = d.classes["person"].instances[0].bounding_box
    assert box is not None
    box.confidence = math.nan
    d.classes["person"].instances[1].bounding_box = BoundingBox(Rectangle(Point(0.1, math.inf), Point(0.2, 0.3)))
    errors = [str(e) for e in iter_droplet_errors(d)]
    assert errors == [
        "$.classes.person.instances[0].boundingBox.confidence: confidence nan is outside [0, 1]",
        "$.classes.person.instances[1].boundingBox.rectangle[0][1]: coordinate inf is not finite",
    ]


TEMPLATE_CASES = [
    # unknown classes
    (["classes", "cat"], {"instances": []}, False, "$.classes.cat", "class 'cat' is not in the template"),
    # fields the template does not allow
    ([*P3, "id"], "x", False, "$.classes.person.instances[3].id", "does not allow an id"),
    (["classes", "traffic light", "instances", 0, "segmentation"], SEG, False,
     '$.classes["traffic light"].instances[0].segmentation', "does not allow a segmentation"),
    (["classes", "person", "multiInstances", 0, "segmentation"], SEG, False,
     "$.classes.person.multiInstances[0].segmentation", "does not allow a segmentation"),
    (["classes", "traffic light", "multiInstances"], [{}], False, '$.classes["traffic light"].multiInstances',
     "no multi-instances"),
    (["classes", "dog"], {"multiInstances": [{"count": 1}]}, False, "$.classes.dog.multiInstances",
     "no multi-instances"),
    # keypoints and attributes the template does not list
    ([*P3, "keypoints", "tail"], None, False, "$.classes.person.instances[3].keypoints.tail",
     "keypoint 'tail' is not in the template"),
    ([*P3, "attributes", "color"], [{"value": "red"}], False, "$.classes.person.instances[3].attributes.color",
     "attribute 'color' is not in the template"),
    ([*P3, "attributes", "pose", 0, "value"], "flying", False,
     "$.classes.person.instances[3].attributes.pose[0].value", "value 'flying' is not allowed"),
    ([*P3, "attributes", "pose"], "lying", False, "$.classes.person.instances[3].attributes.pose[0].value",
     "value 'lying' is not allowed"),  # the legacy string form is checked the same way
    # required fields missing
    ([*P3, "boundingBox"], None, True, "$.classes.person.instances[3].boundingBox", "missing a bounding box"),
    ([*P3, "segmentation"], None, True, "$.classes.person.instances[3].segmentation", "missing a segmentation"),
    (["classes", "traffic light", "instances", 0, "id"], None, True, '$.classes["traffic light"].instances[0].id',
     "missing an id"),
    (["classes", "person", "multiInstances", 0, "count"], None, True, "$.classes.person.multiInstances[0].count",
     "missing a count"),
    ([*P3, "keypoints", "left eye"], None, True, "$.classes.person.instances[3].keypoints",
     "missing keypoint(s) ['left eye']"),
    ([*P3, "keypoints"], None, True, "$.classes.person.instances[3].keypoints", "missing keypoints"),
    ([*P3, "attributes", "pose"], None, True, "$.classes.person.instances[3].attributes",
     "missing attribute(s) ['pose']"),
    ([*P3, "attributes"], None, True, "$.classes.person.instances[3].attributes", "missing attributes"),
]


@pytest.mark.parametrize(("path", "value", "delete", "where", "words"), TEMPLATE_CASES)
def test_template_breaches_are_named(path: list[Any], value: Any, delete: bool, where: str, words: str) -> None:
    d = edited(path, value, delete=delete)
    validate_droplet(d)  # geometrically fine
    with pytest.raises(DropletError) as info:
        validate_droplet(d, TEMPLATE)
    assert info.value.path == where
    assert words in info.value.message
    if delete:  # only "missing" errors go away when not strict
        validate_droplet(d, TEMPLATE, strict=False)
    else:
        with pytest.raises(DropletError):
            validate_droplet(d, TEMPLATE, strict=False)


def test_all_errors_in_document_order() -> None:
    doc = json.loads(json.dumps(GOOD))  # no shared sub-objects
    doc["image"]["paths"] = []
    doc["classes"]["person"]["instances"][0]["boundingBox"]["rectangle"] = [[0.5, 0.5], [0.4, 0.6]]
    doc["classes"]["person"]["instances"][2]["keypoints"]["tail"] = None
    doc["classes"]["cat"] = {}
    paths = [e.path for e in iter_droplet_errors(decode_droplet(json.dumps(doc)), TEMPLATE)]
    assert paths == ["$.image.paths", "$.classes.person.instances[0].boundingBox.rectangle",
                     "$.classes.person.instances[2].keypoints.tail", "$.classes.cat"]


def test_droplets_built_in_python_with_wrong_types() -> None:
    d = ImageAnnotation(
        Image(["a.jpg"], uid=3),  # type: ignore[arg-type]
        {"c": ClassAnnotation(
            instances=[
                Instance(bounding_box=BoundingBox(((0, 0), (1, 1)))),  # type: ignore[arg-type]
                Instance(keypoints={"k": Keypoint(Point("0", 0.5))}),  # type: ignore[arg-type]
                Instance(attributes={"a": "legacy"}),  # type: ignore[dict-item]
                Instance(attributes={"a": [AttributeValue(1)]}),  # type: ignore[arg-type]
                Instance(segmentation=Segmentation([[Point(0, 0), Point(1, 0), (1, 1)]])),  # type: ignore[list-item]
                "not an instance",  # type: ignore[list-item]
            ],
            multi_instances=[MultiInstance(count=True), MultiInstance(count=2.0)],  # type: ignore[arg-type]
        ), 5: ClassAnnotation()},  # type: ignore[dict-item]
        metadata=[1],  # type: ignore[arg-type]
    )
    errors = [(e.path, e.message) for e in iter_droplet_errors(d)]
    assert [p for p, _ in errors] == [
        "$.image.uid",
        "$.metadata",
        "$.classes.c.instances[0].boundingBox.rectangle",
        "$.classes.c.instances[1].keypoints.k.point[0]",
        "$.classes.c.instances[2].attributes.a",
        "$.classes.c.instances[3].attributes.a[0].value",
        "$.classes.c.instances[4].segmentation.mask[0][2]",
        "$.classes.c.instances[5]",
        "$.classes.c.multiInstances[0].count",
        "$.classes.c.multiInstances[1].count",
        "$.classes[5]",
    ]
    assert "a count must be an integer, got bool" in errors[8][1]
    with pytest.raises(DropletError) as info:
        validate_droplet("{}")  # type: ignore[arg-type]
    assert info.value.path == "$"


def test_template_given_as_json_text() -> None:
    d = edited(["classes", "cat"], {})
    with pytest.raises(DropletError) as info:
        validate_droplet(d, json.dumps(TEMPLATE.to_json()))
    assert info.value.path == "$.classes.cat"


def test_class_without_template_parts_allows_empty_lists() -> None:
    t = decode_template({"classes": {"person": {}, "traffic light": {}}})
    d = decode_droplet(json.dumps({"image": {"paths": ["a"]}, "classes": {"person": {}, "traffic light": {
        "instances": [], "multiInstances": []}}}))
    validate_droplet(d, t)


# -- DropletValidator: the publish fast path must accept exactly what the full validator accepts ----------
def edited_json(path: list[Any], value: Any, *, delete: bool = False) -> bytes:
    doc = json.loads(json.dumps(GOOD))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(doc).encode()


def agrees(data: bytes, template: Any, strict: bool = True, *, legacy: bool = False) -> ImageAnnotation | None:
    """DropletValidator's answer, checked against decode_droplet + iter_droplet_errors (``legacy``: the data
    has a bare-string attribute, which only the full path upgrades, so "not sure" is the right answer)."""
    fast = DropletValidator(template, strict=strict).decode(data)
    full = decode_droplet(data)
    errors = list(iter_droplet_errors(full, template, strict=strict))
    if fast is not None:  # accepted: the full validator finds nothing, and the bytes written are the same
        assert errors == []
        assert isinstance(fast, ImageAnnotation)
        assert encode_droplet(fast) == encode_droplet(full)
    else:
        assert errors != [] or legacy
    return fast


def test_validator_accepts_good_droplets() -> None:
    data = json.dumps(GOOD).encode()
    for template in (None, TEMPLATE, TEMPLATE.to_json()):
        assert agrees(data, template) is not None
        assert agrees(data, template, strict=False) is not None


@pytest.mark.parametrize(("path", "value", "where", "words"), GEOMETRY_CASES)
def test_validator_refuses_bad_geometry(path: list[Any], value: Any, where: str, words: str) -> None:
    """The msgspec constraints (coordinates, confidences in [0, 1], >= 3 points, counts >= 0, non-empty
    paths) and the area and pool-ref rules refuse what validate_droplet refuses."""
    data = edited_json(path, value)
    for template in (None, TEMPLATE):
        assert agrees(data, template) is None
        assert agrees(data, template, strict=False) is None


@pytest.mark.parametrize(("path", "value", "delete", "where", "words"), TEMPLATE_CASES)
def test_validator_refuses_template_breaches(path: list[Any], value: Any, delete: bool, where: str,
                                             words: str) -> None:
    data = edited_json(path, value, delete=delete)
    legacy = isinstance(value, str) and path[-1] == "pose"  # a bare-string attribute: always the full path
    assert (agrees(data, None, legacy=legacy) is None) == legacy
    assert agrees(data, TEMPLATE) is None
    if delete:  # only "missing" errors go away when not strict
        assert agrees(data, TEMPLATE, strict=False) is not None
    else:
        assert agrees(data, TEMPLATE, strict=False) is None


@pytest.mark.parametrize("number", ["1e999", "-0.0", "0", "1", "1.0", "true", "\"0.5\"", "null"])
def test_validator_numbers_at_the_edges(number: str) -> None:
    data = edited_json([*P3, "boundingBox", "rectangle", 0, 0], 0).replace(b"[[0, 0.1]", f"[[{number}, 0.1]".encode())
    assert b"[[" + number.encode() in data
    if number in ("1e999", "true", "\"0.5\"", "null"):  # decode_droplet refuses these, and so does the validator
        with pytest.raises(DropletError):
            decode_droplet(data)
        assert DropletValidator(TEMPLATE).decode(data) is None
    else:
        agrees(data, TEMPLATE)


def test_checked_structs_mirror_the_schema() -> None:
    """Each checked struct redefines every field of its schema struct in the same order, so a checked droplet
    encodes exactly like a plain one (a redefined field keeps its place only when all are redefined)."""
    import msgspec

    from headwater.droplet import validate

    checked = [getattr(validate, name) for name in dir(validate) if name.startswith("_Checked")
               and isinstance(getattr(validate, name), type)]
    assert len(checked) >= 10
    for cls in checked:
        base = cls.__mro__[1]
        assert [(f.name, f.encode_name) for f in msgspec.structs.fields(cls)] == \
            [(f.name, f.encode_name) for f in msgspec.structs.fields(base)], cls
        assert cls.__struct_config__.tag == base.__struct_config__.tag
        assert cls.__struct_config__.array_like == base.__struct_config__.array_like
        assert cls.__struct_config__.omit_defaults == base.__struct_config__.omit_defaults


_coord = st.one_of(st.floats(-0.2, 1.2, allow_nan=False), st.sampled_from([0, 1, 2, -1, 0.0, 1.0]))
_conf = st.one_of(st.none(), _coord)
_point = st.lists(_coord, min_size=2, max_size=2)
_polygon = st.lists(_point, min_size=0, max_size=4)
_box = st.fixed_dictionaries({"rectangle": st.lists(_point, min_size=2, max_size=2)}, optional={"confidence": _conf})
_seg = st.fixed_dictionaries({"mask": st.lists(_polygon, min_size=0, max_size=2)}, optional={"confidence": _conf})
_keypoint = st.one_of(st.none(), st.fixed_dictionaries({"point": _point},
                                                       optional={"occluded": st.booleans(), "confidence": _conf}))
_attr_values = st.lists(st.fixed_dictionaries({"value": st.sampled_from(["standing", "sitting", "flying"])},
                                              optional={"confidence": _conf}), max_size=2)
_instance = st.fixed_dictionaries({}, optional={
    "id": st.sampled_from(["a", "t1"]), "boundingBox": _box, "segmentation": _seg,
    "keypoints": st.dictionaries(st.sampled_from(["nose", "left eye", "tail"]), _keypoint, max_size=3),
    "attributes": st.dictionaries(st.sampled_from(["pose", "color"]), _attr_values, max_size=2)})
_multi = st.fixed_dictionaries({}, optional={"boundingBox": _box, "segmentation": _seg,
                                             "count": st.sampled_from([0, 3, -1])})
_class = st.fixed_dictionaries({}, optional={"instances": st.lists(_instance, max_size=2),
                                             "multiInstances": st.lists(_multi, max_size=1)})
_droplet = st.fixed_dictionaries(
    {"image": st.fixed_dictionaries({"paths": st.lists(st.sampled_from(
        ["a.jpg", "https://x/1.jpg", "pool://coco/1.jpg", "pool://coco/", "pool://a b/1", "", "file:///x.png"]),
        max_size=2)}),
     "classes": st.dictionaries(st.sampled_from(["person", "traffic light", "dog", "cat"]), _class, max_size=3)},
    optional={"mask": st.lists(_polygon, max_size=2), "uid": st.sampled_from(["u1", ""])})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_droplet, strict=st.booleans(), with_template=st.booleans())
def test_validator_never_accepts_what_the_full_validator_refuses(doc: dict[str, Any], strict: bool,
                                                                  with_template: bool) -> None:
    """Random droplets near every rule's edge: whatever DropletValidator accepts, validate_droplet accepts
    too, and it encodes to the same bytes (it may say "not sure" more often: then the full path decides)."""
    data = json.dumps(doc).encode()
    template = TEMPLATE if with_template else None
    fast = DropletValidator(template, strict=strict).decode(data)
    if fast is None:
        return
    full = decode_droplet(data)
    assert list(iter_droplet_errors(full, template, strict=strict)) == []
    assert encode_droplet(fast) == encode_droplet(full)
