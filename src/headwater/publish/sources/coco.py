"""Read a COCO instances / keypoints JSON into datatap droplets and a template, ready to publish.

Mapping (pixels → normalised coordinates, origin top-left):

* ``categories`` → classes; every category is a class of the template even when no annotation uses
  it (a model trained on the dataset needs the full label set). Two categories with one name are an
  error.
* ``bbox [x, y, w, h]`` → ``boundingBox.rectangle [[x/W, y/H], [(x+w)/W, (y+h)/H]]``. Coordinates up to
  ``tolerance_px`` pixels outside the image are clipped (exporters' float noise); further out, or a box
  with no area, is an error naming the annotation id.
* polygon ``segmentation`` → ``segmentation.mask`` (one polygon per COCO polygon, normalised the same
  way); polygons with fewer than 3 points are errors.
* RLE ``segmentation`` (``{"counts": …}``) cannot be expressed as datatap polygons without tracing
  contours; it is dropped (the box is kept) and counted in :attr:`CocoSource.notes`.
* ``iscrowd = 1`` → a ``MultiInstance`` with the bounding box (and polygon segmentation if given). No
  ``count``: COCO does not say how many objects a crowd holds, and writing 1 would be false.
* ``keypoints [x, y, v, …]`` with the category's ``keypoints`` names → ``{name: {point, occluded}}``;
  ``v = 0`` → ``null`` (absent), ``v = 1`` → ``occluded: true``, ``v = 2`` → ``occluded: false``.
* the annotation ``id`` → ``Instance.id``; the image ``id`` → the droplet ``uid``; ``image.paths`` is
  the image's ``file_name`` (looked up in ``images``; a missing file is reported by image id when
  publishing); ``metadata`` keeps ``source`` (the file name), ``width`` and ``height``.

Classes without annotations on an image are left out of that image's droplet.

Example:
    >>> doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}],
    ...        "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
    ...        "annotations": [{"id": 9, "image_id": 1, "category_id": 3, "bbox": [20, 10, 100, 50],
    ...                         "iscrowd": 0}]}
    >>> src = CocoSource(doc, images="/data/imgs")
    >>> item = next(src.items())
    >>> item.droplet["classes"]["cat"]["instances"][0]["boundingBox"]
    {'rectangle': [[0.1, 0.1], [0.6, 0.6]]}
    >>> sorted(src.template["classes"])
    ['cat', 'dog']
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

import msgspec

from ..errors import CocoFormatError, CoordinateError
from .coords import unit_point, unit_rectangle
from .source import SourceItem

__all__ = ["CocoSource"]


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class CocoSource:
    """A COCO instances JSON (path or already-parsed dict) as a publish :class:`~headwater.publish.Source`.

    ``images``: folder holding the files named by ``file_name`` (default: the JSON's folder).
    ``split``: put every droplet in this split (e.g. ``"validation"`` for ``instances_val2017.json``);
    None lets :func:`~headwater.publish.publish` decide. ``skip_invalid``: drop annotations that
    would be errors (counted in :attr:`notes`) instead of refusing the whole file.
    """

    def __init__(self, annotations: str | os.PathLike[str] | Mapping[str, Any],
                 images: str | os.PathLike[str] | None = None, *, split: str | None = None,
                 tolerance_px: float = 1.0, skip_invalid: bool = False) -> None:
        if isinstance(annotations, Mapping):
            doc: Any = annotations
            self.name = "COCO"
            default_root = os.getcwd()
        else:
            path = os.fspath(annotations)
            self.name = path
            default_root = os.path.dirname(os.path.abspath(path))
            try:
                with open(path, "rb") as f:
                    doc = msgspec.json.decode(f.read())
            except OSError as err:
                raise CocoFormatError(f"cannot read COCO file {path!r}: {err}") from None
            except msgspec.DecodeError as err:
                raise CocoFormatError(f"{path}: not valid JSON: {err}") from None
            except RecursionError:
                raise CocoFormatError(f"{path}: JSON nested too deeply") from None
        self.images_root = os.path.abspath(os.fspath(images)) if images is not None else default_root
        self.split = split
        self.tolerance_px = float(tolerance_px)
        self.skip_invalid = skip_invalid
        self.notes: dict[str, int] = {}
        self._load(doc)

    # -- structure ---------------------------------------------------------------------------------
    def _load(self, doc: Any) -> None:
        if not isinstance(doc, Mapping):
            raise CocoFormatError(f"{self.name}: expected a JSON object with images, annotations, categories")
        for key in ("images", "categories"):
            if not isinstance(doc.get(key), list):
                raise CocoFormatError(f"{self.name}: {key!r} must be a list")
        anns = doc.get("annotations", [])
        if not isinstance(anns, list):
            raise CocoFormatError(f"{self.name}: 'annotations' must be a list")
        self.categories: dict[Any, dict[str, Any]] = {}
        names: dict[str, Any] = {}
        for i, cat in enumerate(doc["categories"]):
            if not isinstance(cat, Mapping) or "id" not in cat or not isinstance(cat.get("name"), str):
                raise CocoFormatError(f"{self.name}: categories[{i}] needs an id and a string name")
            if cat["id"] in self.categories:
                raise CocoFormatError(f"{self.name}: category id {cat['id']} appears twice")
            if cat["name"] in names:
                raise CocoFormatError(f"{self.name}: category name {cat['name']!r} is used by ids "
                                      f"{names[cat['name']]} and {cat['id']} (classes are keyed by name)")
            kps = cat.get("keypoints") or []
            if not isinstance(kps, list) or not all(isinstance(k, str) for k in kps) or len(set(kps)) != len(kps):
                raise CocoFormatError(f"{self.name}: category {cat['name']!r} keypoints must be distinct names")
            names[cat["name"]] = cat["id"]
            self.categories[cat["id"]] = {"name": cat["name"], "keypoints": list(kps)}
        self._images: list[Mapping[str, Any]] = []
        seen: set[Any] = set()
        self._bad_images: list[tuple[str, str]] = []
        for i, img in enumerate(doc["images"]):
            if not isinstance(img, Mapping) or "id" not in img:
                self._bad_images.append((f"images[{i}]", "needs an id"))
                continue
            if img["id"] in seen:
                self._bad_images.append((f"image id {img['id']}", "appears twice in images"))
                continue
            seen.add(img["id"])
            self._images.append(img)
        self._by_image: dict[Any, list[Mapping[str, Any]]] = {}
        self._orphans: list[tuple[str, str]] = []
        any_seg = any_crowd = any_crowd_seg = False
        for i, ann in enumerate(anns):
            if not isinstance(ann, Mapping):
                self._orphans.append((f"annotations[{i}]", "not an object"))
                continue
            if ann.get("image_id") not in seen:
                self._orphans.append((f"annotation id {ann.get('id', f'#{i}')}",
                                      f"refers to unknown image_id {ann.get('image_id')!r}"))
                continue
            self._by_image.setdefault(ann["image_id"], []).append(ann)
            polygons = isinstance(ann.get("segmentation"), list) and bool(ann["segmentation"])
            if ann.get("iscrowd"):
                any_crowd = True
                any_crowd_seg = any_crowd_seg or polygons
            else:
                any_seg = any_seg or polygons
        classes: dict[str, Any] = {}
        for cat in self.categories.values():
            inst: dict[str, Any] = {"id": True, "boundingBox": True}
            if any_seg:
                inst["segmentation"] = True
            if cat["keypoints"]:
                inst["keypoints"] = list(cat["keypoints"])
            entry: dict[str, Any] = {"instances": inst}
            if any_crowd:
                entry["multiInstances"] = {"boundingBox": True, **({"segmentation": True} if any_crowd_seg else {})}
            classes[cat["name"]] = entry
        self.template: dict[str, Any] = {"kind": "ImageAnnotationTemplate", "classes": classes}

    def __len__(self) -> int:
        return len(self._images)

    def _note(self, what: str) -> None:
        self.notes[what] = self.notes.get(what, 0) + 1

    # -- conversion --------------------------------------------------------------------------------
    def _polygons(self, seg: list[Any], w: float, h: float, tx: float, ty: float) -> list[list[list[float]]]:
        polygons = []
        for poly in seg:
            if not isinstance(poly, list) or len(poly) % 2 or not all(_number(v) for v in poly):
                raise CoordinateError("segmentation polygon must be a flat list of x, y numbers")
            if len(poly) < 6:
                raise CoordinateError(f"segmentation polygon has {len(poly) // 2} point(s), needs at least 3")
            polygons.append([unit_point(poly[j] / w, poly[j + 1] / h, tx, ty) for j in range(0, len(poly), 2)])
        return polygons

    def _annotation(self, ann: Mapping[str, Any], w: float, h: float) -> tuple[str, str, dict[str, Any]]:
        """``(class name, "instances"|"multiInstances", wire dict)`` or :class:`CoordinateError`."""
        cat = self.categories.get(ann.get("category_id"))
        if cat is None:
            raise CoordinateError(f"unknown category_id {ann.get('category_id')!r}")
        tx, ty = self.tolerance_px / w, self.tolerance_px / h
        out: dict[str, Any] = {}
        crowd = bool(ann.get("iscrowd"))
        if not crowd and "id" in ann:
            out["id"] = str(ann["id"])
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            raise CoordinateError(f"bbox must be [x, y, w, h] numbers, got {bbox!r}")
        x, y, bw, bh = bbox
        try:
            out["boundingBox"] = {"rectangle": unit_rectangle(x / w, y / h, (x + bw) / w, (y + bh) / h, tx, ty)}
        except CoordinateError as err:
            raise CoordinateError(f"bbox {bbox} on the {w:g}x{h:g} image: {err}") from None
        seg = ann.get("segmentation")
        if isinstance(seg, Mapping):
            self._note("RLE segmentation dropped (box kept)")
        elif isinstance(seg, list) and seg:
            try:
                out["segmentation"] = {"mask": self._polygons(seg, w, h, tx, ty)}
            except CoordinateError as err:
                raise CoordinateError(f"segmentation on the {w:g}x{h:g} image: {err}") from None
        if crowd:
            return cat["name"], "multiInstances", out
        names = cat["keypoints"]
        if names:
            kps = ann.get("keypoints")
            if kps is None:
                kps = [0] * (3 * len(names))
            if not isinstance(kps, list) or len(kps) != 3 * len(names) or not all(_number(v) for v in kps):
                raise CoordinateError(f"keypoints must be {3 * len(names)} numbers (x, y, v for "
                                      f"{len(names)} names), got {len(kps) if isinstance(kps, list) else kps!r}")
            points: dict[str, Any] = {}
            for j, kp_name in enumerate(names):
                kx, ky, v = kps[3 * j:3 * j + 3]
                if v == 0:
                    points[kp_name] = None
                elif v in (1, 2):
                    try:
                        points[kp_name] = {"point": unit_point(kx / w, ky / h, tx, ty), "occluded": v == 1}
                    except CoordinateError as err:
                        raise CoordinateError(f"keypoint {kp_name!r}: {err}") from None
                else:
                    raise CoordinateError(f"keypoint {kp_name!r} visibility must be 0, 1 or 2, got {v!r}")
            out["keypoints"] = points
        return cat["name"], "instances", out

    def _size(self, img: Mapping[str, Any]) -> tuple[float, float] | str:
        w, h = img.get("width"), img.get("height")
        if _number(w) and _number(h) and w > 0 and h > 0:
            return float(w), float(h)
        path = os.path.join(self.images_root, str(img.get("file_name", "")))
        try:
            from PIL import Image

            with Image.open(path) as im:
                return float(im.size[0]), float(im.size[1])
        except (OSError, ValueError) as err:
            return f"no width/height in the JSON and the image cannot be read to find them ({err})"

    def items(self) -> Iterator[SourceItem]:
        """One item per image, in file order (annotation problems are attached to their image).

        :attr:`notes` counts what the latest pass dropped (it is reset at the start of each pass).
        """
        self.notes = {}
        for where, message in self._bad_images:
            yield SourceItem(where, None, problems=(message,))
        for where, message in self._orphans:
            yield SourceItem(where, None, problems=(message,))
        for img in self._images:
            file_name = img.get("file_name")
            where = f"image id {img['id']}" + (f" ({file_name})" if isinstance(file_name, str) else "")
            if not isinstance(file_name, str) or not file_name:
                yield SourceItem(where, None, problems=("needs a file_name",))
                continue
            size = self._size(img)
            if isinstance(size, str):
                yield SourceItem(where, None, problems=(size,))
                continue
            w, h = size
            problems: list[str] = []
            classes: dict[str, dict[str, list[Any]]] = {}
            for ann in self._by_image.get(img["id"], ()):
                try:
                    cls, kind, wire = self._annotation(ann, w, h)
                except CoordinateError as err:
                    if self.skip_invalid:
                        self._note("invalid annotation skipped")
                        continue
                    problems.append(f"annotation id {ann.get('id')}: {err}")
                    continue
                entry = classes.setdefault(cls, {"instances": [], "multiInstances": []})
                entry[kind].append(wire)
            droplet = {
                "kind": "ImageAnnotation",
                "uid": str(img["id"]),
                "image": {"paths": [file_name]},
                "classes": classes,
                "metadata": {"source": file_name, "width": int(w) if w.is_integer() else w,
                             "height": int(h) if h.is_integer() else h},
            }
            yield SourceItem(where, droplet, split=self.split, problems=tuple(problems))
