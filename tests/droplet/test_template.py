"""Templates: datatap's JSON kept (``kind`` included), errors with paths, and inference from droplets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.droplet import (
    ClassAnnotationTemplate,
    DropletError,
    ImageAnnotationTemplate,
    InstanceTemplate,
    MultiInstanceTemplate,
    TemplateError,
    decode_droplet,
    decode_template,
    encode_template,
    infer_template,
    validate_droplet,
)

CORPUS = json.loads((Path(__file__).parent.parent / "data" / "droplets" / "corpus.json").read_text(encoding="utf-8"))


def sort_sets(doc: dict[str, Any]) -> dict[str, Any]:
    """datatap keeps keypoints and attribute values in sets; the corpus stores them sorted."""
    for ct in doc["classes"].values():
        it = ct.get("instances", {})
        if "keypoints" in it:
            it["keypoints"] = sorted(it["keypoints"])
        for k, v in it.get("attributes", {}).items():
            it["attributes"][k] = sorted(v)
    return doc


@pytest.mark.parametrize("case", CORPUS["templates"])
def test_template_matches_datatap(case: dict[str, Any]) -> None:
    t = decode_template(json.dumps(case["input"]))
    assert sort_sets(json.loads(encode_template(t))) == case["expected"]
    assert sort_sets(t.to_json()) == case["expected"]
    assert encode_template(t).startswith(b'{"kind":"ImageAnnotationTemplate"')
    assert decode_template(case["input"]) == t == ImageAnnotationTemplate.from_json(case["input"])


names = st.text(min_size=1, max_size=6)
instance_templates = st.builds(
    InstanceTemplate, id=st.booleans(), bounding_box=st.booleans(), segmentation=st.booleans(),
    keypoints=st.lists(names, unique=True, max_size=4),
    attributes=st.dictionaries(names, st.lists(names, unique=True, max_size=3), max_size=3),
)
multi_templates = st.builds(MultiInstanceTemplate, bounding_box=st.booleans(), segmentation=st.booleans(),
                            count=st.booleans())
templates = st.builds(ImageAnnotationTemplate, st.dictionaries(st.text(max_size=6), st.builds(
    ClassAnnotationTemplate, instances=st.none() | instance_templates, multi_instances=st.none() | multi_templates,
), max_size=4))


@given(templates)
@settings(max_examples=100, deadline=None)
def test_template_roundtrip_property(t: ImageAnnotationTemplate) -> None:
    data = encode_template(t)
    assert decode_template(data) == t
    assert decode_template(json.loads(data)) == t
    doc = json.loads(data)
    assert doc["kind"] == "ImageAnnotationTemplate"
    for ct in doc["classes"].values():  # false flags and empty lists are left out, as datatap does
        for part in ct.values():
            assert all(v not in (False, [], {}) for v in part.values())


def test_kind_is_optional_on_input_but_checked() -> None:
    assert decode_template(b'{"classes":{}}') == ImageAnnotationTemplate({})
    assert decode_template(b"{}") == ImageAnnotationTemplate({})  # datatap defaults classes to {}
    with pytest.raises(TemplateError) as info:
        decode_template(b'{"kind":"VideoAnnotationTemplate","frames":{}}')
    assert info.value.path == "$.kind"
    assert ImageAnnotationTemplate({}).kind == "ImageAnnotationTemplate"


@pytest.mark.parametrize(("doc", "path", "words"), [
    ({"classes": {"big cat": {"instances": {"boundingBox": "yes"}}}},
     '$.classes["big cat"].instances.boundingBox', "Expected `bool`"),
    ({"classes": {"cat": {"instances": {"keypoints": ["a", "b", "a"]}}}},
     "$.classes.cat.instances", "keypoint 'a' is listed twice"),
    ({"classes": {"cat": {"instances": {"attributes": {"color": ["red", "red"]}}}}},
     "$.classes.cat.instances", "attribute value 'red' is listed twice"),
    ({"classes": {"cat": {"instances": {"attributes": {"color": "red"}}}}},
     "$.classes.cat.instances.attributes.color", "Expected `array`"),
    ({"classes": {"cat": {"multiInstances": {"count": 1}}}},
     "$.classes.cat.multiInstances.count", "Expected `bool`"),
    ({"classes": []}, "$.classes", "Expected `object`"),
])
def test_template_errors_name_the_path(doc: dict[str, Any], path: str, words: str) -> None:
    for source in (doc, json.dumps(doc), json.dumps(doc).encode()):
        with pytest.raises(TemplateError) as info:
            decode_template(source)
        assert info.value.path == path and words in info.value.message
        assert isinstance(info.value, DropletError)


def test_malformed_template_json() -> None:
    with pytest.raises(TemplateError) as info:
        decode_template(b"{")
    assert info.value.path == "$"


def test_decode_template_passes_a_template_through() -> None:
    t = ImageAnnotationTemplate({"cat": ClassAnnotationTemplate()})
    assert decode_template(t) is t


def droplet(classes: dict[str, Any]) -> Any:
    return decode_droplet(json.dumps({"image": {"paths": ["a.jpg"]}, "classes": classes}))


BOX = {"rectangle": [[0.1, 0.1], [0.2, 0.2]]}
SEG = {"mask": [[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]]}


def test_infer_template_is_the_union() -> None:
    a = droplet({"person": {"instances": [
        {"boundingBox": BOX, "keypoints": {"nose": None, "eye": {"point": [0.5, 0.5]}},
         "attributes": {"pose": "up"}}]}})
    b = droplet({"person": {"instances": [
        {"id": "x", "boundingBox": BOX, "segmentation": SEG, "keypoints": {"ear": None, "nose": None},
         "attributes": {"pose": [{"value": "down"}, {"value": "up"}], "color": []}}],
        "multiInstances": [{"count": 3}]},
        "crowd": {"multiInstances": [{"boundingBox": BOX, "segmentation": SEG}]},
        "empty": {}})
    t = infer_template([a, b])
    assert t == ImageAnnotationTemplate({
        "person": ClassAnnotationTemplate(
            instances=InstanceTemplate(id=True, bounding_box=True, segmentation=True,
                                       keypoints=["nose", "eye", "ear"],
                                       attributes={"pose": ["up", "down"], "color": []}),
            multi_instances=MultiInstanceTemplate(count=True)),
        "crowd": ClassAnnotationTemplate(multi_instances=MultiInstanceTemplate(bounding_box=True, segmentation=True)),
        "empty": ClassAnnotationTemplate(),
    })
    # the union is a promise droplet `a` does not keep (no id, segmentation, ear, color) ...
    with pytest.raises(DropletError) as info:
        validate_droplet(a, t)
    assert info.value.path == "$.classes.person.instances[0].id"
    # ... but it fits everything that is present
    validate_droplet(a, t, strict=False)
    validate_droplet(b, t, strict=False)
    assert infer_template([]) == ImageAnnotationTemplate({})


def test_inferred_template_validates_uniform_droplets() -> None:
    ds = [droplet({"cat": {"instances": [{"boundingBox": BOX, "keypoints": {"nose": None}}]}}) for _ in range(3)]
    t = infer_template(iter(ds))
    for d in ds:
        validate_droplet(d, t)
