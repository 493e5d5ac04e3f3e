"""Droplet decode/encode: datatap's wire format kept exactly, and decode errors that name the field."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.droplet import (
    AttributeValue,
    BoundingBox,
    ClassAnnotation,
    DropletError,
    Image,
    ImageAnnotation,
    Instance,
    Keypoint,
    MultiInstance,
    Point,
    Rectangle,
    Segmentation,
    decode_droplet,
    decode_droplet_lines,
    encode_droplet,
    encode_droplet_lines,
)

from ..support.droplet_strategies import datatap_to_json, exact, wire_droplets

DATA = Path(__file__).parent.parent / "data" / "droplets"
CORPUS = json.loads((DATA / "corpus.json").read_text(encoding="utf-8"))


def roundtrip(x: Any) -> Any:
    return json.loads(encode_droplet(decode_droplet(json.dumps(x))))


# -- the wire format, against datatap's own output ----------------------------------------------------
@pytest.mark.parametrize("case", CORPUS["droplets"], ids=lambda c: str(len(json.dumps(c["input"]))))
def test_corpus_roundtrip_equals_datatap(case: dict[str, Any]) -> None:
    assert exact(roundtrip(case["input"])) == exact(case["expected"])


def test_corpus_covers_every_feature() -> None:
    """The fixed corpus really exercises what the issue lists (so the test above means something)."""
    text = json.dumps([c["input"] for c in CORPUS["droplets"]])
    for needle in ('"id"', '"boundingBox"', '"segmentation"', '"keypoints"', '"occluded"', ': null',
                   '"attributes"', '"multiInstances"', '"count"', '"uid"', '"mask"', '"metadata"', '"confidence"'):
        assert needle in text, needle
    legacy = [c for c in CORPUS["droplets"]
              if any(isinstance(v, str) for cls in c["input"]["classes"].values() for i in cls.get("instances", [])
                     for v in i.get("attributes", {}).values())]
    assert legacy and all(isinstance(v, list) for c in legacy for cls in c["expected"]["classes"].values()
                          for i in cls["instances"] for v in i.get("attributes", {}).values())


def test_corpus_matches_reference_model() -> None:
    for case in CORPUS["droplets"]:
        assert exact(datatap_to_json(case["input"])) == exact(case["expected"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_droplets)
def test_roundtrip_property(x: dict[str, Any]) -> None:
    once = roundtrip(x)
    assert exact(once) == exact(datatap_to_json(x))
    assert exact(roundtrip(once)) == exact(once)  # the written form is a fixed point


@given(wire_droplets)
@settings(max_examples=100, deadline=None)
def test_struct_roundtrip_and_to_json(x: dict[str, Any]) -> None:
    d = decode_droplet(json.dumps(x))
    assert decode_droplet(encode_droplet(d)) == d
    assert ImageAnnotation.from_json(d.to_json()) == d
    assert exact(d.to_json()) == exact(json.loads(encode_droplet(d)))
    assert pickle.loads(pickle.dumps(d)) == d


def test_against_real_datatap(datatap_python: str) -> None:
    """Random droplets through the real datatap (one subprocess) and through us agree exactly."""
    examples: list[dict[str, Any]] = []

    @settings(max_examples=100, deadline=None, database=None)
    @given(wire_droplets)
    def collect(x: dict[str, Any]) -> None:
        examples.append(x)

    collect()
    script = (
        "import json, sys, types\n"
        "try:\n    import PIL.Image\n"
        "except ImportError:\n"
        "    p = types.ModuleType('PIL'); p.Image = types.ModuleType('PIL.Image'); p.Image.Image = object\n"
        "    sys.modules['PIL'] = p; sys.modules['PIL.Image'] = p.Image\n"
        "from datatap.droplet import ImageAnnotation\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps(ImageAnnotation.from_json(json.loads(line)).to_json()))\n"
    )
    stdin = "".join(json.dumps(x) + "\n" for x in examples)
    result = subprocess.run([datatap_python, "-c", script], input=stdin, capture_output=True, text=True,
                            timeout=120, check=True)
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(outputs) == len(examples)
    for x, expected in zip(examples, outputs, strict=True):
        assert exact(roundtrip(x)) == exact(expected)


def test_committed_corpus_is_current(datatap_python: str, tmp_path: Path) -> None:
    out = tmp_path / "corpus.json"
    subprocess.run([datatap_python, str(DATA / "make_corpus.py"), str(out)], check=True, timeout=120)
    assert json.loads(out.read_text(encoding="utf-8")) == CORPUS


# -- building droplets in Python ------------------------------------------------------------------------
def test_constructed_droplet_encodes_like_datatap() -> None:
    d = ImageAnnotation(
        Image(["pool://coco/1.jpg"], uid="i1"),
        {"person": ClassAnnotation(
            instances=[Instance(
                id="a",
                bounding_box=BoundingBox(Rectangle(Point(0, 0.5), Point(1, 1)), confidence=0.5),
                segmentation=Segmentation([[Point(0, 0), Point(1, 0), Point(1, 1)]]),
                keypoints={"nose": Keypoint(Point(0.5, 0.5), occluded=True), "ear": None},
                attributes={"pose": [AttributeValue("standing", confidence=0.25)]},
            )],
            multi_instances=[MultiInstance(count=3)],
        )},
        uid="u", metadata={"k": [1, 2.0]},
    )
    assert json.loads(encode_droplet(d)) == {
        "kind": "ImageAnnotation",
        "image": {"paths": ["pool://coco/1.jpg"], "uid": "i1"},
        "classes": {"person": {
            "instances": [{"id": "a", "boundingBox": {"rectangle": [[0, 0.5], [1, 1]], "confidence": 0.5},
                           "segmentation": {"mask": [[[0, 0], [1, 0], [1, 1]]]},
                           "keypoints": {"nose": {"point": [0.5, 0.5], "occluded": True}, "ear": None},
                           "attributes": {"pose": [{"value": "standing", "confidence": 0.25}]}}],
            "multiInstances": [{"count": 3}]}},
        "uid": "u", "metadata": {"k": [1, 2.0]},
    }
    assert encode_droplet(d).startswith(b'{"kind":"ImageAnnotation","image":')
    assert d.kind == "ImageAnnotation"


def test_optional_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ImageAnnotation(Image(["a"]), {}, None, "uid")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Instance("id")  # type: ignore[call-arg]


def test_lines_roundtrip_and_blank_lines() -> None:
    ds = [ImageAnnotation(Image([f"{i}.jpg"]), {}, uid=str(i)) for i in range(5)]
    data = encode_droplet_lines(ds)
    assert data.count(b"\n") == 5 and b"\n\n" not in data
    assert decode_droplet_lines(data) == ds
    assert decode_droplet_lines(data.decode()) == ds
    assert decode_droplet_lines(b"") == []


def test_legacy_attributes_in_lines_and_builtins() -> None:
    line = b'{"image":{"paths":["a"]},"classes":{"c":{"instances":[{"attributes":{"color":"red"}}]}}}'
    (d,) = decode_droplet_lines(line + b"\n")
    assert d.classes["c"].instances[0].attributes == {"color": [AttributeValue("red")]}
    raw = json.loads(line)
    before = copy.deepcopy(raw)
    assert ImageAnnotation.from_json(raw) == d
    assert raw == before  # the caller's object is not rewritten


# -- decode errors ---------------------------------------------------------------------------------------
GOOD: dict[str, Any] = {
    "image": {"paths": ["a.jpg"]},
    "classes": {
        "person": {"instances": [{}, {}, {}, {
            "boundingBox": {"rectangle": [[0.1, 0.1], [0.5, 0.5]]},
            "keypoints": {"left eye": {"point": [0.2, 0.2]}},
            "attributes": {"pose": [{"value": "up"}]},
        }], "multiInstances": [{"count": 1}]},
        "traffic light": {},
    },
}


def broken(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(("doc", "path", "words"), [
    (broken(["classes", "person", "instances", 3, "boundingBox", "rectangle", 1, 0], "0.5"),
     "$.classes.person.instances[3].boundingBox.rectangle[1][0]", "got `str`"),
    (broken(["classes", "person", "instances", 3, "boundingBox", "rectangle"], [[0.1, 0.1]]),
     "$.classes.person.instances[3].boundingBox.rectangle", "length"),
    (broken(["classes", "person", "instances", 3, "boundingBox"], {"confidence": 1}),
     "$.classes.person.instances[3].boundingBox", "missing required field `rectangle`"),
    (broken(["classes", "person", "instances", 3, "keypoints", "left eye", "point"], [0.1, True]),
     '$.classes.person.instances[3].keypoints["left eye"].point[1]', "got `bool`"),
    (broken(["classes", "person", "instances", 3, "attributes", "pose", 0, "value"], 3),
     "$.classes.person.instances[3].attributes.pose[0].value", "got `int`"),
    (broken(["classes", "person", "multiInstances", 0, "count"], 1.5),
     "$.classes.person.multiInstances[0].count", "got `float`"),
    (broken(["classes", "traffic light"], {"instances": {}}),
     '$.classes["traffic light"].instances', "Expected `array`"),
    (broken(["classes", "person", "instances", 1, "segmentation"], {"mask": [[[0, 0], [1, 0], "x"]]}),
     "$.classes.person.instances[1].segmentation.mask[0][2]", "got `str`"),
    (broken(["image"], {"uid": "x"}), "$.image", "missing required field `paths`"),
    (broken(["image", "paths", 0], None), "$.image.paths[0]", "got `null`"),
    (broken(["kind"], "VideoAnnotation"), "$.kind", "Invalid value 'VideoAnnotation'"),
    (broken(["mask"], [[[0, 0], [1, 0], [1, "1"]]]), "$.mask[0][2][1]", "got `str`"),
    (broken(["metadata"], [1, 2]), "$.metadata", "Expected `object | null`"),
    ({"classes": {}}, "$", "missing required field `image`"),
    ([], "$", "Expected `object`"),
])
def test_decode_errors_name_the_path(doc: Any, path: str, words: str) -> None:
    with pytest.raises(DropletError) as info:
        decode_droplet(json.dumps(doc))
    assert info.value.path == path
    assert words in info.value.message
    assert str(info.value).startswith(path + ": ")
    with pytest.raises(DropletError) as info2:  # the same from an already parsed object
        ImageAnnotation.from_json(doc)
    assert info2.value.path == path


def test_good_document_decodes() -> None:
    d = decode_droplet(json.dumps(GOOD))
    keypoints = d.classes["person"].instances[3].keypoints
    assert keypoints is not None
    eye = keypoints["left eye"]
    assert eye is not None and eye.point == Point(0.2, 0.2)


def test_malformed_json() -> None:
    with pytest.raises(DropletError) as info:
        decode_droplet(b'{"image": {"paths": ["a"]}, "classes": {')
    assert info.value.path == "$" and "not valid JSON" in info.value.message
    with pytest.raises(DropletError):
        decode_droplet(b"")


def test_lines_error_names_the_line() -> None:
    data = b'{"image":{"paths":["a"]},"classes":{}}\n\n{"image":{"paths":[1]},"classes":{}}\n'
    with pytest.raises(DropletError) as info:
        decode_droplet_lines(data)
    assert info.value.path == "line 2: $.image.paths[0]"


def test_legacy_attribute_does_not_hide_a_real_error() -> None:
    doc = broken(["classes", "person", "instances", 3, "attributes"], {"pose": "up"})
    doc["classes"]["person"]["instances"][0]["boundingBox"] = {"rectangle": "nope"}
    with pytest.raises(DropletError) as info:
        decode_droplet(json.dumps(doc))
    assert info.value.path == "$.classes.person.instances[0].boundingBox.rectangle"


@given(st.binary(max_size=64))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_raise_only_droplet_errors(data: bytes) -> None:
    try:
        decode_droplet(data)
    except DropletError as err:
        assert err.path.startswith("$")


def test_decode_accepts_buffers() -> None:
    raw = json.dumps(GOOD).encode()
    assert decode_droplet(memoryview(raw)) == decode_droplet(bytearray(raw)) == decode_droplet(raw)


def test_struct_is_msgspec_native() -> None:
    """Other layers may embed droplets in their own msgspec messages."""
    d = decode_droplet(json.dumps(GOOD))
    assert msgspec.json.decode(msgspec.json.encode({"d": d}), type=dict[str, ImageAnnotation])["d"] == d
