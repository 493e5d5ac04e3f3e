"""COCO and YOLO readers: the droplets and templates they produce, and every error with its place."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import pytest

from headwater.droplet import decode_template, validate_droplet
from headwater.droplet.codec import droplet_from_builtins
from headwater.publish import (
    CocoFormatError,
    CocoSource,
    SourceFormatError,
    SourceItem,
    YoloFormatError,
    YoloSource,
    detect_format,
    open_source,
    read_class_names,
)

from ..support.datasets import coco_dataset, coco_doc, yolo_dataset


def _droplet(item: SourceItem) -> Mapping[str, Any]:
    """The droplet of an item the test expects to have one."""
    assert item.droplet is not None, item.problems
    return item.droplet


def by_uid(source) -> dict:
    return {item.droplet["uid"]: item for item in source.items() if item.droplet is not None}


# -- COCO ---------------------------------------------------------------------------------------------
def test_coco_mapping_boxes_polygons_keypoints_crowds(tmp_path):
    src = CocoSource(coco_doc(), images=str(tmp_path))
    items = by_uid(src)
    assert list(items) == ["1", "2", "3"]
    a = items["1"].droplet
    assert a["image"] == {"paths": ["a.png"]} and a["metadata"] == {"source": "a.png", "width": 100, "height": 50}
    person = a["classes"]["person"]["instances"][0]
    assert person["id"] == "101"
    assert person["boundingBox"]["rectangle"] == [[0.1, 0.1], [0.3, 0.9]]
    assert person["segmentation"]["mask"] == [[[0.1, 0.1], [0.3, 0.1], [0.3, 0.9], [0.1, 0.9]]]
    # v=2 visible, v=1 occluded, v=0 absent (null)
    assert person["keypoints"] == {"nose": {"point": [0.2, 0.2], "occluded": False},
                                   "left_eye": {"point": [0.15, 0.16], "occluded": True},
                                   "right_eye": None}
    # 100.0004 px on a 100 px image: float noise, clipped to the edge
    car = a["classes"]["car"]["instances"][0]
    assert car["boundingBox"]["rectangle"] == [[0.5, 0.0], [1.0, 1.0]]
    # iscrowd=1 with RLE → a multi-instance with the box only (no count, no keypoints)
    b = items["2"].droplet
    assert b["classes"]["person"] == {"instances": [], "multiInstances": [
        {"boundingBox": {"rectangle": [[0.0, 0.0], [1.0, 1.0]]}}]}
    assert src.notes == {"RLE segmentation dropped (box kept)": 1}
    assert items["3"].droplet["classes"] == {}  # an image without annotations is still a droplet
    assert all(not item.problems for item in items.values())


def test_coco_template_lists_every_category_and_fits_the_droplets(tmp_path):
    src = CocoSource(coco_doc(), images=str(tmp_path))
    t = src.template
    assert list(t["classes"]) == ["person", "car", "boat"]  # boat is unused but present
    assert t["classes"]["person"]["instances"] == {"id": True, "boundingBox": True, "segmentation": True,
                                                   "keypoints": ["nose", "left_eye", "right_eye"]}
    assert t["classes"]["boat"]["multiInstances"] == {"boundingBox": True}
    template = decode_template(t)
    for item in src.items():
        validate_droplet(droplet_from_builtins(item.droplet), template, strict=False)


def test_coco_errors_name_the_annotation_or_image(tmp_path):
    doc = coco_doc()
    doc["annotations"] += [
        {"id": 201, "image_id": 3, "category_id": 3, "bbox": [90, 10, 30, 10]},      # 20 px past the edge
        {"id": 202, "image_id": 3, "category_id": 3, "bbox": [10, 10, 0, 10]},       # no area
        {"id": 203, "image_id": 3, "category_id": 77, "bbox": [1, 1, 2, 2]},         # unknown category
        {"id": 204, "image_id": 3, "category_id": 3, "bbox": [1, 1, 2, 2], "segmentation": [[1, 1, 2, 2]]},
        {"id": 205, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "keypoints": [1, 1, 2]},
        {"id": 206, "image_id": 99, "category_id": 3, "bbox": [1, 1, 2, 2]},         # unknown image
    ]
    doc["images"].append({"id": 4, "file_name": "nowhere.png"})  # no size and no file to read it from
    src = CocoSource(doc, images=str(tmp_path))
    problems = {(item.where, p) for item in src.items() for p in item.problems}
    text = "\n".join(f"{w}: {p}" for w, p in sorted(problems))
    assert "image id 3 (c.png): annotation id 201: bbox [90, 10, 30, 10] on the 100x50 image: box" in text
    assert "lies outside the image" in text
    assert "annotation id 202: bbox [10, 10, 0, 10] on the 100x50 image: box" in text and "has no area" in text
    assert "annotation id 203: unknown category_id 77" in text
    assert "annotation id 204: segmentation on the 100x50 image: segmentation polygon has 2 point(s)" in text
    assert "annotation id 205: keypoints must be 9 numbers" in text
    assert "annotation id 206: refers to unknown image_id 99" in text
    assert "image id 4 (nowhere.png): no width/height in the JSON" in text
    # skip_invalid drops them instead (counted), the image itself stays
    lenient = CocoSource(doc, images=str(tmp_path), skip_invalid=True)
    items = list(lenient.items())
    assert [i.where for i in items if i.problems][:1] == ["annotation id 206"]
    assert lenient.notes["invalid annotation skipped"] == 5


def test_coco_reads_size_from_the_image_and_refuses_broken_files(tmp_path):
    path, images, _ = coco_dataset(str(tmp_path))
    with open(path) as f:
        doc = json.load(f)
    for img in doc["images"]:
        del img["width"], img["height"]
    items = list(CocoSource(doc, images=images).items())
    assert _droplet(items[0])["metadata"] == {"source": "a.png", "width": 100, "height": 50}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CocoFormatError, match="not valid JSON"):
        CocoSource(str(tmp_path / "bad.json"))
    with pytest.raises(CocoFormatError, match="'categories' must be a list"):
        CocoSource({"images": []})
    dup = coco_doc()
    dup["categories"].append({"id": 10, "name": "car"})
    with pytest.raises(CocoFormatError, match="category name 'car' is used by ids 3 and 10"):
        CocoSource(dup)


# -- YOLO ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["split", "roboflow"])
def test_yolo_split_layouts(tmp_path, layout):
    root, _ = yolo_dataset(str(tmp_path), layout=layout)
    src = YoloSource(root)
    items = list(src.items())
    pattern = "images/{}/{}.jpg" if layout == "split" else "{}/images/{}.jpg"
    assert [(i.split, _droplet(i)["image"]["paths"][0]) for i in items] == [
        ("train", pattern.format("train", "a")), ("train", pattern.format("train", "b")),
        ("train", pattern.format("train", "c")), ("val", pattern.format("val", "d"))]
    assert [_droplet(i)["uid"] for i in items] == ["train/a", "train/b", "train/c", "val/d"]
    assert _droplet(items[0])["metadata"] == {"source": pattern.format("train", "a")}
    a = _droplet(items[0])
    cat = a["classes"]["cat"]["instances"][0]
    assert cat["boundingBox"]["rectangle"] == [[0.4, 0.3], [0.6, 0.7]]
    dog = a["classes"]["dog"]["instances"][0]  # a polygon line → segmentation + its bounding box
    assert dog["segmentation"]["mask"] == [[[0.1, 0.1], [0.4, 0.1], [0.4, 0.3]]]
    assert dog["boundingBox"]["rectangle"] == [[0.1, 0.1], [0.4, 0.3]]
    assert _droplet(items[2])["classes"] == {}  # no label file: a background image
    assert list(src.template["classes"]) == ["cat", "dog", "bird"]
    assert src.template["classes"]["bird"] == {"instances": {"boundingBox": True, "segmentation": True}}
    assert all(not i.problems for i in items)


def test_yolo_flat_layout_has_no_explicit_split_unless_given(tmp_path):
    root, _ = yolo_dataset(str(tmp_path), layout="flat")
    assert {i.split for i in YoloSource(root).items()} == {None}
    assert {i.split for i in YoloSource(root, split="test").items()} == {"test"}


def test_yolo_errors_carry_file_and_line(tmp_path):
    root, _ = yolo_dataset(str(tmp_path), layout="flat")
    with open(os.path.join(root, "labels", "b.txt"), "w") as f:
        f.write("1 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.2\n0 1.3 0.5 0.2 0.2\nx 1 1 1 1\n"
                "0 0.5 0.5 0 0.1\n0 0.9 0.5 0.2004 0.2\n")
    with open(os.path.join(root, "labels", "orphan.txt"), "w") as f:
        f.write("0 0.5 0.5 0.1 0.1\n")
    items = {i.where: i for i in YoloSource(root).items()}
    b = items["images/b.jpg"]
    assert list(b.problems) == [
        "labels/b.txt line 2: class index 7 is not in 0..2",
        "labels/b.txt line 3: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 …', got 4 values",
        "labels/b.txt line 4: box (1.2, 0.4)-(1.4, 0.6) lies outside the image",
        "labels/b.txt line 5: class index 'x' is not a number",
        "labels/b.txt line 6: box width and height must be positive, got 0 x 0.1",
    ]
    # line 1 is fine; line 7 ends 0.0002 past the right edge (float noise): clipped and kept
    assert len(_droplet(b)["classes"]["dog"]["instances"]) == 1
    (x1, _), (x2, _) = _droplet(b)["classes"]["cat"]["instances"][0]["boundingBox"]["rectangle"]
    assert x2 == 1.0 and x1 == pytest.approx(0.7998)
    assert items["labels/orphan.txt"].problems == ("label file without an image",)


def test_yolo_class_names_sources(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "data.yaml").write_text("names: [x, y]\n")
    assert read_class_names(tmp_path / "a")[0] == ["x", "y"]
    (tmp_path / "b" / "labels").mkdir(parents=True)
    (tmp_path / "b" / "labels" / "classes.txt").write_text("p\nq\n\n")
    assert read_class_names(tmp_path / "b")[0] == ["p", "q"]
    (tmp_path / "c").mkdir()
    with pytest.raises(YoloFormatError, match="no class names found"):
        read_class_names(tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "data.yaml").write_text("names: {0: a, 2: c}\n")
    with pytest.raises(YoloFormatError, match=re.escape("must cover indexes 0..1")):
        read_class_names(tmp_path / "d")
    (tmp_path / "e").mkdir()
    with pytest.raises(YoloFormatError, match="no images/ folder"):
        YoloSource(tmp_path / "e", names=["a"])


def test_yolo_pose_keypoints(tmp_path):
    root = tmp_path / "pose"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "images" / "p.png").write_bytes(b"png")
    (root / "data.yaml").write_text("names: [person]\nkpt_shape: [3, 3]\nkpt_names: [nose, l, r]\n")
    (root / "labels" / "p.txt").write_text("0 0.5 0.5 0.4 0.4 0.5 0.4 2 0.45 0.4 1 0 0 0\n0 0.5 0.5 0.4 0.4 1 2\n")
    src = YoloSource(root)
    assert src.template["classes"]["person"]["instances"] == {"boundingBox": True, "keypoints": ["nose", "l", "r"]}
    item = next(src.items())
    assert _droplet(item)["classes"]["person"]["instances"][0]["keypoints"] == {
        "nose": {"point": [0.5, 0.4], "occluded": False}, "l": {"point": [0.45, 0.4], "occluded": True}, "r": None}
    assert item.problems == (("labels/p.txt line 2: expected class + 4 box values + 3x3 keypoint values "
                              "(14 in all), got 7"),)


# -- format detection -----------------------------------------------------------------------------------
def test_detect_and_open_source(tmp_path):
    coco, images, _ = coco_dataset(str(tmp_path))
    root, _ = yolo_dataset(str(tmp_path / "y"))
    (tmp_path / "d.jsonl").write_text("")
    (tmp_path / "d.json").write_text('{"kind": "ImageAnnotation"}\n')
    assert detect_format(coco) == "coco" and detect_format(root) == "yolo"
    assert detect_format(tmp_path / "d.jsonl") == "jsonl" and detect_format(tmp_path / "d.json") == "jsonl"
    assert isinstance(open_source(coco, images=images, split="validation"), CocoSource)
    with pytest.raises(SourceFormatError, match="does not exist"):
        detect_format(tmp_path / "missing.json")
    (tmp_path / "x.csv").write_text("")
    with pytest.raises(SourceFormatError, match="cannot tell the format"):
        open_source(tmp_path / "x.csv")


def test_integrations_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, headwater.integrations; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
