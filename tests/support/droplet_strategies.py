"""Hypothesis strategies for datatap-wire droplets, and a reference model of datatap's ``to_json``.

The model is written from datatap 0.3.0's source (``X.from_json(x).to_json()``), independently of our
msgspec structs, so the property tests compare two separate implementations; where ``/tmp/dtv``
holds datatap itself, ``test_droplet_codec`` also checks the model against the real thing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["datatap_to_json", "exact", "wire_droplets"]

coords = st.one_of(
    st.floats(min_value=0, max_value=1, allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1]),
)
points = st.lists(coords, min_size=2, max_size=2)
confidences = st.one_of(st.floats(min_value=0, max_value=1), st.sampled_from([0, 1]), st.none())
names = st.text(max_size=8)


@st.composite
def rectangles(draw: st.DrawFn) -> list[list[float]]:
    xs = sorted(draw(st.lists(coords, min_size=2, max_size=2, unique=True)))
    ys = sorted(draw(st.lists(coords, min_size=2, max_size=2, unique=True)))
    return [[xs[0], ys[0]], [xs[1], ys[1]]]


masks = st.lists(st.lists(points, min_size=3, max_size=6), min_size=1, max_size=3)


def _with_optional(required: dict[str, Any], optional: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(required, optional=optional)


boxes = _with_optional({"rectangle": rectangles()}, {"confidence": confidences})
segmentations = _with_optional({"mask": masks}, {"confidence": confidences})
keypoints = st.one_of(
    st.none(),
    _with_optional({"point": points}, {"occluded": st.one_of(st.booleans(), st.none()), "confidence": confidences}),
)
attribute_values = st.one_of(
    st.text(max_size=5),  # the legacy form
    st.lists(_with_optional({"value": st.text(max_size=5)}, {"confidence": confidences}), max_size=3),
)
instances = _with_optional({}, {
    "id": st.text(max_size=5),
    "boundingBox": boxes,
    "segmentation": segmentations,
    "keypoints": st.dictionaries(names, keypoints, max_size=4),
    "attributes": st.dictionaries(names, attribute_values, max_size=3),
    "ignoredByEveryone": st.integers(),
})
multi_instances = _with_optional({}, {
    "boundingBox": boxes,
    "segmentation": segmentations,
    "count": st.one_of(st.integers(min_value=0, max_value=10**6), st.none()),
})
class_annotations = _with_optional({}, {
    "instances": st.lists(instances, max_size=4),
    "multiInstances": st.lists(multi_instances, max_size=2),
})
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)
images = _with_optional({"paths": st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3)},
                        {"uid": st.one_of(st.text(max_size=6), st.none())})
wire_droplets = _with_optional(
    {"image": images, "classes": st.dictionaries(names, class_annotations, max_size=4)},
    {
        "kind": st.just("ImageAnnotation"),
        "uid": st.one_of(st.text(max_size=6), st.none()),
        "mask": masks,
        "metadata": st.one_of(st.none(), st.dictionaries(st.text(max_size=5), json_values, max_size=3)),
    },
)


# -- the reference model ----------------------------------------------------------------------------
def _opt(src: dict[str, Any], out: dict[str, Any], key: str, fn: Any = lambda v: v) -> None:
    if src.get(key) is not None:
        out[key] = fn(src[key])


def _box(b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"rectangle": [list(p) for p in b["rectangle"]]}
    _opt(b, out, "confidence")
    return out


def _seg(s: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"mask": [[list(p) for p in poly] for poly in s["mask"]]}
    _opt(s, out, "confidence")
    return out


def _kp(k: dict[str, Any] | None) -> dict[str, Any] | None:
    if k is None:
        return None
    out: dict[str, Any] = {"point": list(k["point"])}
    _opt(k, out, "occluded")
    _opt(k, out, "confidence")
    return out


def _attr(v: Any) -> list[dict[str, Any]]:
    if isinstance(v, str):
        return [{"value": v}]
    out = []
    for c in v:
        item: dict[str, Any] = {"value": c["value"]}
        _opt(c, item, "confidence")
        out.append(item)
    return out


def _instance(i: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _opt(i, out, "id")
    _opt(i, out, "boundingBox", _box)
    _opt(i, out, "segmentation", _seg)
    _opt(i, out, "keypoints", lambda kps: {k: _kp(v) for k, v in kps.items()})
    _opt(i, out, "attributes", lambda attrs: {k: _attr(v) for k, v in attrs.items()})
    return out


def _multi(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _opt(m, out, "boundingBox", _box)
    _opt(m, out, "segmentation", _seg)
    _opt(m, out, "count")
    return out


def datatap_to_json(x: dict[str, Any]) -> dict[str, Any]:
    """What datatap 0.3.0's ``ImageAnnotation.from_json(x).to_json()`` returns, as JSON would carry it."""
    image: dict[str, Any] = {"paths": list(x["image"]["paths"])}
    _opt(x["image"], image, "uid")
    out: dict[str, Any] = {
        "kind": "ImageAnnotation",
        "image": image,
        "classes": {
            name: {
                "instances": [_instance(i) for i in c.get("instances", [])],
                "multiInstances": [_multi(m) for m in c.get("multiInstances", [])],
            }
            for name, c in x["classes"].items()
        },
    }
    if "mask" in x:
        out["mask"] = [[list(p) for p in poly] for poly in x["mask"]]
    _opt(x, out, "uid")
    _opt(x, out, "metadata")
    return out


def exact(value: Any) -> Any:
    """A comparable form that also distinguishes key order and int from float from bool."""
    if isinstance(value, dict):
        return ("{", [(k, exact(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return ("[", [exact(v) for v in value])
    return (type(value).__name__, value)
