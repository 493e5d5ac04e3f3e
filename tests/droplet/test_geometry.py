"""Geometry: exact areas and IoU, checked against hand-computed values and shapely's (via the corpus)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from headwater.droplet import Keypoint, Mask, Point, Polygon, Rectangle, Segmentation

CORPUS = json.loads((Path(__file__).parent.parent / "data" / "droplets" / "corpus.json").read_text(encoding="utf-8"))


def R(x1: float, y1: float, x2: float, y2: float) -> Rectangle:  # noqa: N802 - short like the cases it builds
    return Rectangle.from_xyxy(x1, y1, x2, y2)


def P(*pts: tuple[float, float]) -> Polygon:  # noqa: N802 - short like the cases it builds
    return Polygon([Point(x, y) for x, y in pts])


@pytest.mark.parametrize(("a", "b", "expected"), [
    (R(0, 0, 1, 1), R(0, 0, 1, 1), 1.0),
    (R(0, 0, 0.5, 0.5), R(0.25, 0.25, 0.75, 0.75), 0.0625 / 0.4375),
    (R(0, 0, 0.5, 1), R(0.5, 0, 1, 1), 0.0),  # touching edges
    (R(0, 0, 0.2, 0.2), R(0.5, 0.5, 0.7, 0.7), 0.0),
    (R(0, 0, 1, 1), R(0.25, 0.25, 0.75, 0.75), 0.25),  # contained
    (R(0, 0, 0.4, 0.1), R(0.1, 0, 0.3, 0.5), 0.02 / (0.04 + 0.1 - 0.02)),  # a cross
])
def test_rectangle_iou_known_values(a: Rectangle, b: Rectangle, expected: float) -> None:
    assert a.iou(b) == pytest.approx(expected, abs=1e-12)
    assert b.iou(a) == pytest.approx(expected, abs=1e-12)
    # the general (slab) algorithm agrees with the closed form
    assert a.to_polygon().iou(b.to_polygon()) == pytest.approx(expected, abs=1e-12)
    assert a.iou(b.to_polygon()) == pytest.approx(expected, abs=1e-12)


def test_empty_rectangles_never_divide_by_zero() -> None:
    assert R(0.5, 0.5, 0.5, 0.8).area() == 0
    assert R(0.5, 0.5, 0.5, 0.8).iou(R(0.5, 0.5, 0.5, 0.8)) == 0.0
    assert R(0.6, 0.6, 0.5, 0.5).area() == 0  # inverted
    assert R(0.6, 0.6, 0.5, 0.5).iou(P((0, 0), (1, 0), (0, 1))) == 0.0
    assert P((0, 0), (1, 1)).area() == 0.0 and P((0, 0), (1, 1)).iou(R(0, 0, 1, 1)) == 0.0


def test_polygon_known_values() -> None:
    tri = P((0, 0), (1, 0), (0, 1))
    assert tri.area() == 0.5
    assert tri.iou(R(0, 0, 1, 1)) == 0.5
    other = P((1, 1), (0, 1), (1, 0))  # the other half of the square
    assert tri.iou(other) == 0.0
    assert tri.iou(tri) == 1.0
    # a unit square and the same square rotated 45° about its centre: overlap is a regular octagon
    c, h = 0.5, 0.5
    r = h * math.sqrt(2)
    diamond = P((c, c - r), (c + r, c), (c, c + r), (c - r, c))
    octagon = 2 * (math.sqrt(2) - 1)  # area of the regular octagon inscribed in the unit square this way
    assert diamond.iou(R(0, 0, 1, 1)) == pytest.approx(octagon / (2 - octagon), rel=1e-12)
    # an L-shaped (non-convex) polygon against a square covering its corner
    ell = P((0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2))
    assert ell.area() == 3.0
    assert ell.iou(R(0.5, 0.5, 1.5, 1.5)) == pytest.approx(0.75 / (3 + 1 - 0.75), rel=1e-12)
    # vertex order (clockwise or not) does not matter
    assert Polygon(reversed(ell.points)).iou(ell) == 1.0


def test_self_intersecting_polygon_uses_even_odd() -> None:
    bowtie = P((0, 0), (1, 1), (1, 0), (0, 1))  # two triangles meeting at (0.5, 0.5)
    assert bowtie.area() == pytest.approx(0.5)
    assert bowtie.iou(R(0, 0, 1, 1)) == pytest.approx(0.5)
    assert bowtie.iou(P((0, 0), (0.5, 0.5), (0, 1))) == pytest.approx(0.5)


def test_mask_holes_and_disjoint_parts() -> None:
    outer = P((0, 0), (4, 0), (4, 4), (0, 4))
    hole = P((1, 1), (3, 1), (3, 3), (1, 3))
    ring = Mask([outer, hole])
    assert ring.area() == 12.0
    assert ring.iou(hole) == 0.0
    assert ring.iou(outer) == 0.75
    assert ring.iou(Mask([hole, outer])) == 1.0  # polygon order does not matter
    two = Mask([P((0, 0), (1, 0), (1, 1), (0, 1)), P((2, 0), (3, 0), (3, 1), (2, 1))])
    assert two.area() == 2.0
    assert two.iou(R(0, 0, 3, 1)) == pytest.approx(2 / 3)
    assert ring.bounds() == R(0, 0, 4, 4)


def test_segmentation_wire_to_mask() -> None:
    seg = Segmentation([[Point(0, 0), Point(1, 0), Point(1, 1), Point(0, 1)]])
    assert seg.to_mask().area() == 1.0
    assert seg.to_mask().to_wire() == seg.mask
    assert Mask.from_wire(seg.mask) == seg.to_mask()


@pytest.mark.parametrize("case", CORPUS["iou"], ids=lambda c: f"{c['iou']:.4f}")
def test_polygon_iou_matches_shapely(case: dict[str, Any]) -> None:
    a, b = Polygon(case["a"]), Polygon(case["b"])
    assert a.area() == pytest.approx(case["area_a"], rel=1e-9, abs=1e-15)
    assert b.area() == pytest.approx(case["area_b"], rel=1e-9, abs=1e-15)
    assert a.iou(b) == pytest.approx(case["iou"], rel=1e-9, abs=1e-12)


def test_corpus_has_overlapping_polygon_pairs() -> None:
    assert sum(1 for c in CORPUS["iou"] if 0.05 < c["iou"] < 0.95) >= 10


coord = st.floats(min_value=0, max_value=1, allow_nan=False)


@st.composite
def rects(draw: st.DrawFn) -> Rectangle:
    x1, x2 = sorted(draw(st.lists(coord, min_size=2, max_size=2)))
    y1, y2 = sorted(draw(st.lists(coord, min_size=2, max_size=2)))
    return R(x1, y1, x2, y2)


@given(rects(), rects())
@settings(max_examples=200, deadline=None)
def test_rectangle_closed_form_equals_slab_algorithm(a: Rectangle, b: Rectangle) -> None:
    expected = a.iou(b)
    assert 0.0 <= expected <= 1.0
    assert expected == b.iou(a)
    if a.area() > 1e-9 and b.area() > 1e-9:
        assert a.to_polygon().iou(b.to_polygon()) == pytest.approx(expected, abs=1e-9)


@given(st.lists(st.tuples(coord, coord), min_size=3, max_size=8),
       st.lists(st.tuples(coord, coord), min_size=3, max_size=8))
@settings(max_examples=100, deadline=None)
def test_iou_bounds_and_symmetry(pa: list[tuple[float, float]], pb: list[tuple[float, float]]) -> None:
    a, b = Polygon(pa), Polygon(pb)
    v = a.iou(b)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(b.iou(a), abs=1e-9)
    # a mask of both is their XOR: |A xor B| = |A| + |B| - 2 |A and B|, with |A and B| from the IoU
    area_a, area_b = a.area(), b.area()
    inter = (area_a + area_b) * v / (1 + v)
    assert Mask([a, b]).area() == pytest.approx(area_a + area_b - 2 * inter, abs=1e-9)
    assume(area_a > 1e-6)
    assert a.iou(a) == pytest.approx(1.0)


def test_large_polygons_stay_fast() -> None:
    n = 300
    circle = Polygon([(0.5 + 0.4 * math.cos(2 * math.pi * k / n), 0.5 + 0.4 * math.sin(2 * math.pi * k / n))
                      for k in range(n)])
    shifted = Polygon([(p.x + 0.05, p.y) for p in circle.points])
    start = time.perf_counter()
    v = circle.iou(shifted)
    assert time.perf_counter() - start < 5
    assert 0.8 < v < 0.9


def test_keypoint_distance_and_similarity() -> None:
    a, b = Keypoint(Point(0, 0)), Keypoint(Point(0.3, 0.4))
    assert a.distance(b) == pytest.approx(0.5)
    assert a.similarity(b, scale=0.5) == pytest.approx(math.exp(-0.25 / 0.5))
    with pytest.raises(ValueError):
        a.similarity(b, scale=0)


def test_rectangle_conversions() -> None:
    r = R(0.1, 0.2, 0.4, 0.6)
    assert r.to_xywh() == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert r.to_polygon().area() == pytest.approx(r.area())
    assert P((0.1, 0.6), (0.4, 0.2), (0.2, 0.3)).bounds() == r
    with pytest.raises(ValueError):
        Mask([]).bounds()
