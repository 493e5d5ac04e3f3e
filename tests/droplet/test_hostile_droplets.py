"""Hostile droplets (issue 8): whatever JSON-ish value or damaged droplet is decoded and validated, the
outcome is a valid droplet or a :class:`DropletError` (a ``HeadwaterError``) whose path starts at ``$`` —
never another exception. Values come from hypothesis: arbitrary JSON trees, and valid wire droplets with one
node replaced, deleted or wrapped, then fed through every entry point (bytes, lines, parsed builtins, the
validator with and without a template)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from headwater.droplet import (
    DropletError,
    ImageAnnotation,
    decode_droplet,
    decode_droplet_lines,
    decode_template,
    droplet_from_builtins,
    infer_template,
    iter_droplet_errors,
)
from headwater.errors import HeadwaterError

from ..support.droplet_strategies import wire_droplets

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
    st.text(max_size=8), st.sampled_from(["", "ImageAnnotation", "pool://", "pool://x", "s3://", "a.jpg"]),
)
json_ish = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["kind", "image", "paths", "uid", "classes", "instances",
                                                             "multiInstances", "boundingBox", "rectangle", "mask",
                                                             "segmentation", "keypoints", "point", "attributes",
                                                             "value", "count", "confidence", "occluded", "metadata"])
                                            | st.text(max_size=5), inner, max_size=4)),
    max_leaves=20,
)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON tree (keys and indexes), the root included."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


@st.composite
def mutated_droplets(draw: st.DrawFn) -> Any:
    """A valid wire droplet with one node replaced by anything, deleted, or wrapped in a list/object."""
    doc = json.loads(json.dumps(draw(wire_droplets)))
    path = draw(st.sampled_from(_nodes(doc)))
    how = draw(st.sampled_from(["replace", "delete", "wrap-list", "wrap-object"]))
    if not path:
        return draw(json_ish) if how in ("replace", "delete") else [doc] if how == "wrap-list" else {"x": doc}
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = draw(json_ish)
    elif how == "delete":
        del parent[last]
    elif how == "wrap-list":
        parent[last] = [parent[last]]
    else:
        parent[last] = {"x": parent[last]}
    return doc


def _encoded(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN/Infinity are not JSON: they must be refused too


def assert_named(err: HeadwaterError) -> None:
    """A refusal is a DropletError whose path is rooted at ``$`` (a line prefix allowed) and has a message."""
    assert isinstance(err, DropletError), repr(err)
    assert err.path.startswith(("$", "line ")), err.path
    assert err.message


def check_everything(value: Any) -> None:
    """Decode ``value`` through every entry point, then validate; only DropletErrors may come out."""
    results: list[ImageAnnotation] = []
    for decode in (lambda: decode_droplet(_encoded(value)), lambda: droplet_from_builtins(value),
                   lambda: decode_droplet_lines(_encoded(value) + b"\n" + _encoded(value))[0]):
        try:
            results.append(decode())
        except HeadwaterError as err:
            assert_named(err)
    for droplet in results:
        errors = list(iter_droplet_errors(droplet))
        template = infer_template([droplet])
        for problem in [*errors, *iter_droplet_errors(droplet, template),
                        *iter_droplet_errors(droplet, template, strict=False)]:
            assert_named(problem)
        if not errors:  # valid: every coordinate is a finite number in [0, 1]
            text = _encoded(value).decode()
            assert "NaN" not in text or "metadata" in text


@FUZZ
@given(json_ish)
@example({"image": {"paths": ["pool://"]}, "classes": {}})
@example({"image": {"paths": [""]}, "classes": {"": {"instances": [{"keypoints": {"": None}}]}}})
@example({"image": {"paths": ["a"]}, "classes": {"c": {"instances": [{"attributes": {"a": "legacy"}}]}}})
@example({"image": {"paths": ["a"]}, "classes": {"c": {"multiInstances": [{"count": -1}]}}})
@example({"image": {"paths": ["a"]}, "classes": {"c": {"instances": [
    {"boundingBox": {"rectangle": [[math.inf, 0], [1, 1]]}}]}}})
def test_arbitrary_json_values_decode_or_raise_droplet_errors(value: Any) -> None:
    check_everything(value)


@FUZZ
@given(mutated_droplets())
def test_mutated_droplets_decode_or_raise_droplet_errors(value: Any) -> None:
    check_everything(value)


@FUZZ
@given(st.one_of(json_ish, mutated_droplets().map(lambda d: {"classes": d.get("classes") if isinstance(d, dict)
                                                              else d})))
@example({"classes": {"c": {"instances": {"keypoints": ["a", "a"]}}}})
@example({"classes": {"c": {"instances": {"attributes": {"a": ["x", "x"]}}}}})
@example({"kind": "Other", "classes": {}})
def test_arbitrary_templates_decode_or_raise_droplet_errors(value: Any) -> None:
    for source in (value, _encoded(value)):
        try:
            decode_template(source)
        except HeadwaterError as err:
            assert_named(err)
