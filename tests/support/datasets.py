"""Builders for publish/importer/CLI tests: real image files (Pillow), COCO JSON, YOLO folders, JSONL."""

from __future__ import annotations

import json
import os
from typing import Any

from PIL import Image

from headwater.catalog import Catalog


def make_image(path: str, size: tuple[int, int] = (40, 30), color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    """Write a tiny PNG or JPEG (by extension) and return its bytes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)
    with open(path, "rb") as f:
        return f.read()


def droplet(path: str, uid: str | None = None, classes: dict[str, Any] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": "ImageAnnotation", "image": {"paths": [path]}, "classes": classes or {}}
    if uid is not None:
        d["uid"] = uid
    return d


def box(x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    return {"boundingBox": {"rectangle": [[x1, y1], [x2, y2]]}}


def write_jsonl(path: str, rows: list[Any]) -> str:
    with open(path, "w") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def jsonl_dataset(root: str, n: int = 6) -> tuple[str, str, list[dict[str, Any]], dict[str, bytes]]:
    """``(jsonl path, images dir, droplets, image name → bytes)``: n droplets over n PNG/JPEG files."""
    images = os.path.join(root, "imgs")
    blobs: dict[str, bytes] = {}
    rows = []
    for i in range(n):
        name = f"sub/img{i}.{'png' if i % 2 else 'jpg'}"
        blobs[name] = make_image(os.path.join(images, name), color=(i * 30 % 256, 50, 90))
        classes = {"cat": {"instances": [box(0.1, 0.1, 0.2 + i / 20, 0.5)]}} if i % 3 else {}
        rows.append(droplet(name, uid=f"u{i}", classes=classes))
    path = write_jsonl(os.path.join(root, "droplets.jsonl"), rows)
    return path, images, rows, blobs


def coco_doc() -> dict[str, Any]:
    """Three images 100x50; person (with keypoints), car, and an unused 'boat' category."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 100, "height": 50},
            {"id": 2, "file_name": "b.png", "width": 100, "height": 50},
            {"id": 3, "file_name": "c.png", "width": 100, "height": 50},
        ],
        "categories": [
            {"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"]},
            {"id": 3, "name": "car"},
            {"id": 9, "name": "boat"},
        ],
        "annotations": [
            {"id": 101, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 40], "iscrowd": 0,
             "segmentation": [[10, 5, 30, 5, 30, 45, 10, 45]], "keypoints": [20, 10, 2, 15, 8, 1, 0, 0, 0]},
            {"id": 102, "image_id": 1, "category_id": 3, "bbox": [50, 0, 50.0004, 50], "iscrowd": 0,
             "segmentation": [[50, 0, 100, 0, 100, 50]]},
            {"id": 103, "image_id": 2, "category_id": 1, "bbox": [0, 0, 100, 50], "iscrowd": 1,
             "segmentation": {"counts": [0, 5000], "size": [50, 100]}, "keypoints": [0] * 9},
        ],
    }


def coco_dataset(root: str) -> tuple[str, str, dict[str, bytes]]:
    images = os.path.join(root, "coco_images")
    blobs = {name: make_image(os.path.join(images, name), (100, 50), (i * 60, 0, 0))
             for i, name in enumerate(("a.png", "b.png", "c.png"))}
    path = os.path.join(root, "instances.json")
    with open(path, "w") as f:
        json.dump(coco_doc(), f)
    return path, images, blobs


def yolo_dataset(root: str, *, layout: str = "split") -> tuple[str, dict[str, bytes]]:
    """A YOLO folder: ``split`` (images/train, images/val), ``flat`` or ``roboflow`` (train/images)."""
    blobs: dict[str, bytes] = {}
    files = {"train": ["a", "b", "c"], "val": ["d"]}
    for split, stems in files.items():
        for i, stem in enumerate(stems):
            if layout == "split":
                img, lbl = f"images/{split}/{stem}.jpg", f"labels/{split}/{stem}.txt"
            elif layout == "flat":
                img, lbl = f"images/{stem}.jpg", f"labels/{stem}.txt"
            else:
                img, lbl = f"{split}/images/{stem}.jpg", f"{split}/labels/{stem}.txt"
            blobs[img] = make_image(os.path.join(root, img), (64, 48), (10 * i, 100, 0))
            if stem == "c":
                continue  # background image: no label file
            os.makedirs(os.path.dirname(os.path.join(root, lbl)), exist_ok=True)
            with open(os.path.join(root, lbl), "w") as f:
                f.write("0 0.5 0.5 0.2 0.4\n\n1 0.1 0.1 0.4 0.1 0.4 0.3\n" if stem == "a" else "1 0.25 0.75 0.5 0.5\n")
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n  2: bird\n")
    return root, blobs


def new_catalog(root: str, database: str = "main") -> Catalog:
    cat = Catalog(os.path.join(root, "catalog.sqlite"))
    cat.create_database(database)
    return cat


def catalog_is_empty(cat: Catalog, database: str = "main") -> bool:
    return cat.repositories(database) == [] or all(
        not cat.datasets(database, r.namespace, r.name) for r in cat.repositories(database))
