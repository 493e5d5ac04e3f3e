"""Synthetic street scenes with their annotations, for the viewer's screenshots and its benchmark.

Each scene is a real JPEG (sky, road, cars, trees, people drawn with Pillow) and a droplet whose boxes,
polygon masks and keypoints lie on what was drawn, so a screenshot shows overlays that sit where they
should. :func:`publish_scenes` publishes them through the real publisher (images packed into a pool).

Example::

    >>> import random
    >>> jpeg, classes = scene(random.Random(0), (320, 240))
    >>> jpeg[:2], set(classes) <= {"car", "person", "tree"}
    (b'\\xff\\xd8', True)
"""

from __future__ import annotations

import io
import json
import os
import random
from typing import Any

from PIL import Image, ImageDraw

from headwater.catalog import Catalog, DatasetRecord
from headwater.publish import publish

__all__ = ["scene", "publish_scenes"]


def _unit(v: float, side: int) -> float:
    """Pixel ``v`` on a side of ``side`` pixels, normalised and clipped to [0, 1] (shapes may leave the frame)."""
    return round(min(max(v / side, 0.0), 1.0), 4)


def _box(x1: float, y1: float, x2: float, y2: float, w: int, h: int, conf: float) -> dict[str, Any]:
    return {"rectangle": [[_unit(x1, w), _unit(y1, h)], [_unit(x2, w), _unit(y2, h)]], "confidence": round(conf, 2)}


def _poly(points: list[tuple[float, float]], w: int, h: int) -> list[list[list[float]]]:
    return [[[_unit(x, w), _unit(y, h)] for x, y in points]]


def scene(rng: random.Random, size: tuple[int, int] = (640, 480)) -> tuple[bytes, dict[str, Any]]:
    """One scene: ``(JPEG bytes, droplet classes)`` — cars (box + body polygon), trees (box + crown
    polygon), people (box + keypoints, some occluded)."""
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.45, 0.6))
    top, bottom = (90 + rng.randrange(40), 150 + rng.randrange(40), 220), (200, 225, 245)
    for y in range(horizon):
        t = y / max(1, horizon - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    draw.rectangle((0, horizon, w, h), fill=(95, 140, 80))
    road_top = horizon + (h - horizon) // 3
    draw.rectangle((0, road_top, w, h), fill=(85, 85, 90))
    for x in range(0, w, 60):
        draw.rectangle((x, (road_top + h) // 2 - 2, x + 30, (road_top + h) // 2 + 2), fill=(230, 230, 230))
    classes: dict[str, Any] = {}

    def add(name: str, instance: dict[str, Any]) -> None:
        classes.setdefault(name, {"instances": []})["instances"].append(instance)

    for _ in range(rng.randint(1, 3)):  # trees behind the road
        cx, tw = rng.uniform(0.05, 0.95) * w, rng.uniform(0.08, 0.14) * w
        base, th = horizon + rng.uniform(0, 0.08) * h, rng.uniform(0.25, 0.4) * h
        draw.rectangle((cx - tw * 0.08, base - th * 0.3, cx + tw * 0.08, base), fill=(100, 70, 40))
        crown = [(cx, base - th), (cx - tw / 2, base - th * 0.25), (cx + tw / 2, base - th * 0.25)]
        draw.polygon(crown, fill=(40, 110 + rng.randrange(40), 50))
        add("tree", {"boundingBox": _box(cx - tw / 2, base - th, cx + tw / 2, base, w, h, rng.uniform(0.6, 0.99)),
                     "segmentation": {"mask": _poly(crown, w, h)}})
    for _ in range(rng.randint(1, 3)):  # cars on the road
        cw, ch = rng.uniform(0.15, 0.25) * w, rng.uniform(0.08, 0.12) * h
        x1, y2 = rng.uniform(0, w - cw), rng.uniform(road_top + ch, h - 4)
        colour = tuple(rng.randrange(40, 230) for _ in range(3))
        body = [(x1, y2 - ch * 0.2), (x1, y2 - ch * 0.6), (x1 + cw * 0.25, y2 - ch * 0.6),
                (x1 + cw * 0.35, y2 - ch), (x1 + cw * 0.7, y2 - ch), (x1 + cw * 0.8, y2 - ch * 0.6),
                (x1 + cw, y2 - ch * 0.6), (x1 + cw, y2 - ch * 0.2)]
        draw.polygon(body, fill=colour)
        for wx in (x1 + cw * 0.22, x1 + cw * 0.78):
            draw.ellipse((wx - ch * 0.2, y2 - ch * 0.4, wx + ch * 0.2, y2), fill=(20, 20, 20))
        add("car", {"boundingBox": _box(x1, y2 - ch, x1 + cw, y2, w, h, rng.uniform(0.5, 0.99)),
                    "segmentation": {"mask": _poly(body, w, h)}})
    for _ in range(rng.randint(0, 2)):  # people on the verge
        px, ph = rng.uniform(0.05, 0.95) * w, rng.uniform(0.15, 0.22) * h
        feet = rng.uniform(horizon + ph * 0.6, road_top + ph * 0.3)
        head_r, neck, hip = ph * 0.1, feet - ph * 0.8, feet - ph * 0.4
        skin = (230, 190, 150)
        draw.ellipse((px - head_r, feet - ph, px + head_r, feet - ph + 2 * head_r), fill=skin)
        draw.line([(px, neck), (px, hip)], fill=(30, 30, 120), width=max(2, int(ph * 0.08)))
        hands = [(px - ph * 0.22, neck + ph * 0.2), (px + ph * 0.22, neck + ph * 0.2)]
        foot_pts = [(px - ph * 0.15, feet), (px + ph * 0.15, feet)]
        for hx, hy in hands:
            draw.line([(px, neck + ph * 0.05), (hx, hy)], fill=skin, width=max(2, int(ph * 0.05)))
        for fx, fy in foot_pts:
            draw.line([(px, hip), (fx, fy)], fill=(40, 40, 40), width=max(2, int(ph * 0.06)))
        occluded = rng.random() < 0.5

        def kp(x: float, y: float, hidden: bool = False) -> dict[str, Any]:
            return {"point": [_unit(x, w), _unit(y, h)], **({"occluded": True} if hidden else {})}

        add("person", {"boundingBox": _box(px - ph * 0.25, feet - ph, px + ph * 0.25, feet, w, h,
                                           rng.uniform(0.4, 0.99)),
                       "keypoints": {"head": kp(px, feet - ph + head_r), "left_hand": kp(*hands[0]),
                                     "right_hand": kp(*hands[1], hidden=occluded), "left_foot": kp(*foot_pts[0]),
                                     "right_foot": kp(*foot_pts[1])}})
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue(), classes


def publish_scenes(catalog: Catalog, root: str, count: int, *, database: str = "demo", namespace: str = "city",
                   name: str = "streets", size: tuple[int, int] = (640, 480), seed: int = 0,
                   splits: Any = None) -> DatasetRecord:
    """Publish ``count`` scenes as ``database/namespace/name`` through the real publisher (the database is
    created public if missing): the JPEGs are written under ``root`` and packed into a new pool there."""
    catalog.create_database(database, public=True, exist_ok=True)
    rng = random.Random(seed)
    folder = os.path.join(root, f"{name}-images")
    os.makedirs(folder, exist_ok=True)
    jsonl = os.path.join(root, f"{name}.jsonl")
    with open(jsonl, "w") as f:
        for i in range(count):
            jpeg, classes = scene(rng, size)
            with open(os.path.join(folder, f"{i:05d}.jpg"), "wb") as img:
                img.write(jpeg)
            droplet = {"kind": "ImageAnnotation", "uid": f"{name}-{i:05d}", "image": {"paths": [f"{i:05d}.jpg"]},
                       "classes": classes, "metadata": {"camera": f"cam{i % 4}", "hour": 6 + i % 14}}
            f.write(json.dumps(droplet) + "\n")
    return publish(catalog, database, namespace, name, jsonl, images=folder,
                   pool_dir=os.path.join(root, f"{name}-pool"), splits=splits, silent=True)
