"""Regenerate ``corpus.json``: droplets and templates as datatap 0.3.0 itself writes them back.

Run with the interpreter of a venv that has ``datatap==0.3.0`` (and shapely, which datatap needs)::

    /tmp/dtv/bin/python tests/data/droplets/make_corpus.py tests/data/droplets/corpus.json

For every input the corpus stores ``json.loads(json.dumps(X.from_json(input).to_json()))`` — the
reference our codec is compared against — plus shapely's IoU of polygon pairs for the geometry
tests. Inputs are hand-written edge cases and seeded random droplets, so the output is reproducible.
Nothing is imported at module level: pytest's doctest collection imports this file.
"""

from __future__ import annotations


def _inputs_droplets(rng):
    cases = [
        {"kind": "ImageAnnotation", "image": {"paths": ["pool://coco/000001.jpg"]}, "classes": {}},
        {"image": {"paths": ["a.jpg", "https://example.com/a.jpg"], "uid": "img-1"}, "classes": {"cat": {}}},
        {"image": {"paths": ["a.jpg"], "uid": None}, "classes": {"cat": {"instances": []}}, "uid": None,
         "metadata": None},
        {"image": {"paths": ["s3://bucket/k.png"]}, "uid": "ann-7", "metadata": {"source": "coco", "n": 3,
         "nested": {"list": [1, 2.5, "x", None, True]}},
         "mask": [[[0, 0], [1, 0], [1, 1], [0, 1]], [[0.25, 0.25], [0.75, 0.25], [0.5, 0.75]]],
         "classes": {
             "person": {
                 "instances": [
                     {"id": "p1", "boundingBox": {"rectangle": [[0.1, 0.2], [0.3, 0.4]], "confidence": 0.75},
                      "segmentation": {"mask": [[[0.1, 0.2], [0.3, 0.2], [0.3, 0.4]]], "confidence": 1},
                      "keypoints": {"nose": {"point": [0.2, 0.25], "occluded": False, "confidence": 0.5},
                                    "left eye": None, "right eye": {"point": [0, 1], "occluded": True}},
                      "attributes": {"pose": [{"value": "standing", "confidence": 0.9}, {"value": "sitting"}],
                                     "mask": "present"}},
                     {"boundingBox": {"rectangle": [[0, 0], [1, 1]]}, "unknownField": {"dropped": True}},
                     {"keypoints": {"nose": {"point": [0.5, 0.5], "occluded": None, "confidence": None}}},
                     {"attributes": {"color": "red", "size": []}},
                     {},
                 ],
                 "multiInstances": [
                     {"boundingBox": {"rectangle": [[0.5, 0.5], [0.9, 0.9]], "confidence": 0.3}, "count": 12},
                     {"segmentation": {"mask": [[[0.5, 0.5], [0.9, 0.5], [0.9, 0.9], [0.5, 0.9]]]}, "count": 0},
                     {"count": None},
                     {},
                 ],
             },
             "traffic light": {"multiInstances": [{"count": 2}]},
             "": {"instances": [{"id": ""}]},
             "ünïcödé 猫": {"instances": [{"boundingBox": {"rectangle": [[1e-9, 0.5], [0.9999999999, 0.75]]}}]},
         }},
    ]
    for n in range(60):
        cases.append(_random_droplet(rng, n))
    return cases


def _coord(rng):
    r = rng.random()
    if r < 0.05:
        return rng.choice([0, 1])
    if r < 0.1:
        return rng.choice([0.0, 1.0, 1e-7, 0.5])
    return round(rng.random(), rng.choice([2, 4, 17]))


def _rect(rng):
    xs = sorted({_coord(rng), _coord(rng)} | {rng.random()})[:2]
    ys = sorted({_coord(rng), _coord(rng)} | {rng.random()})[:2]
    return [[xs[0], ys[0]], [xs[1], ys[1]]]


def _mask(rng):
    return [[[_coord(rng), _coord(rng)] for _ in range(rng.randint(3, 8))] for _ in range(rng.randint(1, 3))]


def _maybe_conf(rng, obj):
    r = rng.random()
    if r < 0.3:
        obj["confidence"] = rng.random()
    elif r < 0.35:
        obj["confidence"] = None
    elif r < 0.4:
        obj["confidence"] = rng.choice([0, 1])
    return obj


def _random_droplet(rng, n):
    from typing import Any

    names = ["person", "car", "dog", "bicycle", "stop sign"]
    kps = ["nose", "neck", "left hand", "right hand"]
    classes = {}
    for name in rng.sample(names, rng.randint(0, len(names))):
        ann = {}
        if rng.random() < 0.8:
            insts = []
            for i in range(rng.randint(0, 5)):
                inst: dict[str, Any] = {}
                if rng.random() < 0.3:
                    inst["id"] = f"{name}-{i}"
                if rng.random() < 0.8:
                    inst["boundingBox"] = _maybe_conf(rng, {"rectangle": _rect(rng)})
                if rng.random() < 0.4:
                    inst["segmentation"] = _maybe_conf(rng, {"mask": _mask(rng)})
                if rng.random() < 0.3:
                    inst["keypoints"] = {}
                    for k in rng.sample(kps, rng.randint(0, len(kps))):
                        if rng.random() < 0.3:
                            inst["keypoints"][k] = None
                        else:
                            kp = {"point": [_coord(rng), _coord(rng)]}
                            if rng.random() < 0.5:
                                kp["occluded"] = rng.random() < 0.5
                            inst["keypoints"][k] = _maybe_conf(rng, kp)
                if rng.random() < 0.3:
                    inst["attributes"] = {}
                    for a in rng.sample(["color", "pose", "truncated"], rng.randint(0, 3)):
                        if rng.random() < 0.4:
                            inst["attributes"][a] = rng.choice(["red", "blue", "yes"])
                        else:
                            values = rng.sample(["red", "blue", "yes", "no"], rng.randint(0, 2))
                            inst["attributes"][a] = [_maybe_conf(rng, {"value": v}) for v in values]
                insts.append(inst)
            ann["instances"] = insts
        if rng.random() < 0.4:
            multis = []
            for _ in range(rng.randint(0, 3)):
                multi = {}
                if rng.random() < 0.7:
                    multi["boundingBox"] = _maybe_conf(rng, {"rectangle": _rect(rng)})
                if rng.random() < 0.3:
                    multi["segmentation"] = _maybe_conf(rng, {"mask": _mask(rng)})
                if rng.random() < 0.6:
                    multi["count"] = rng.randint(0, 50)
                multis.append(multi)
            ann["multiInstances"] = multis
        classes[name] = ann
    droplet: dict[str, Any] = {
        "image": {"paths": [f"pool://coco/{n:06d}.jpg"] + ([f"https://x.test/{n}.jpg"] if n % 3 == 0 else [])},
        "classes": classes}
    if n % 2 == 0:
        droplet = {"kind": "ImageAnnotation", **droplet}
    if n % 4 == 1:
        droplet["image"]["uid"] = f"img{n}"
    if n % 5 == 2:
        droplet["uid"] = f"ann{n}"
    if n % 7 == 3:
        droplet["mask"] = _mask(rng)
    if n % 6 == 4:
        droplet["metadata"] = {"split": rng.choice(["train", "val"]), "score": rng.random(), "n": n}
    return droplet


def _inputs_templates():
    return [
        {"kind": "ImageAnnotationTemplate", "classes": {}},
        {"classes": {"cat": {}}},
        {"kind": "ImageAnnotationTemplate", "classes": {
            "person": {"instances": {"id": True, "boundingBox": True, "segmentation": True,
                                     "keypoints": ["nose"], "attributes": {"pose": ["standing"]}},
                       "multiInstances": {"boundingBox": True, "segmentation": True, "count": True}},
            "car": {"instances": {"boundingBox": True, "segmentation": False, "id": False, "keypoints": [],
                                  "attributes": {}}},
            "crowd": {"multiInstances": {"count": True, "boundingBox": False}},
        }},
    ]


def _star_polygon(rng, cx, cy, r):
    import math

    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(rng.randint(3, 9)))
    return [[cx + r * rng.uniform(0.3, 1) * math.cos(a), cy + r * rng.uniform(0.3, 1) * math.sin(a)] for a in angles]


def _iou_cases(rng):
    from shapely.geometry import Polygon

    cases = []
    for _ in range(40):
        cx, cy = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
        a = _star_polygon(rng, cx, cy, rng.uniform(0.1, 0.3))
        b = _star_polygon(rng, cx + rng.uniform(-0.15, 0.15), cy + rng.uniform(-0.15, 0.15), rng.uniform(0.1, 0.3))
        pa, pb = Polygon(a), Polygon(b)
        if not (pa.is_valid and pb.is_valid):
            continue
        inter = pa.intersection(pb).area
        cases.append({"a": a, "b": b, "area_a": pa.area, "area_b": pb.area,
                      "iou": inter / (pa.area + pb.area - inter)})
    return cases


def main() -> None:
    import json
    import random
    import sys
    import types

    try:
        import PIL.Image  # noqa: F401 - datatap imports it, but only uses it to load images
    except ImportError:
        pil = types.ModuleType("PIL")
        pil.Image = types.ModuleType("PIL.Image")  # type: ignore[attr-defined]
        pil.Image.Image = object
        sys.modules["PIL"], sys.modules["PIL.Image"] = pil, pil.Image
    from datatap.droplet import ImageAnnotation
    from datatap.template import ImageAnnotationTemplate

    rng = random.Random(20240521)
    droplets = [{"input": x, "expected": json.loads(json.dumps(ImageAnnotation.from_json(x).to_json()))}
                for x in _inputs_droplets(rng)]
    templates = [{"input": x, "expected": ImageAnnotationTemplate.from_json(x).to_json()} for x in _inputs_templates()]
    for t in templates:  # datatap keeps keypoints and attribute values in sets: make the order stable
        for ct in t["expected"]["classes"].values():
            it = ct.get("instances", {})
            if "keypoints" in it:
                it["keypoints"] = sorted(it["keypoints"])
            for k, v in it.get("attributes", {}).items():
                it["attributes"][k] = sorted(v)
    corpus = {"datatap": "0.3.0", "droplets": droplets, "templates": templates, "iou": _iou_cases(rng)}
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(corpus, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
