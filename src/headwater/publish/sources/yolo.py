"""Read a YOLO (Ultralytics/Darknet txt) dataset folder into datatap droplets and a template.

Layouts found automatically under ``root``:

* ``images/…`` + ``labels/…`` with image files directly in ``images/`` (recursively): no explicit split;
* ``images/<split>/…`` + ``labels/<split>/…``: each sub-folder is an explicit split, named as the folder
  (``train``, ``val``, ``test`` — kept as they are);
* ``<split>/images/…`` + ``<split>/labels/…`` (Roboflow-style exports): the same, split from the folder.

The label file of ``…/images/<rel>/x.jpg`` is ``…/labels/<rel>/x.txt``. An image without a label file is
a background image (a droplet with no classes); a label file without an image is an error.

Class names come from ``names`` given explicitly, else ``data.yaml``/``dataset.yaml`` (``names`` as a list
or an ``{index: name}`` mapping; needs PyYAML), else ``classes.txt`` (one name a line) in ``root`` or its
``labels/`` folder. Every name is a class of the template, used or not.

Label lines (blank lines skipped, numbers normalised to [0, 1]):

* ``cls cx cy w h`` → a bounding box;
* ``cls x1 y1 x2 y2 x3 y3 …`` (3+ points) → a polygon segmentation plus the box around it;
* with ``kpt_shape: [K, D]`` in ``data.yaml``: ``cls cx cy w h`` followed by K points of D values
  (``x y`` or ``x y v``) → box + keypoints named by ``kpt_names`` (list, or per-class mapping) or
  ``"0"…"K-1"``; ``v = 0`` → absent (null), ``1`` → occluded, ``2`` → visible.

Each droplet's ``uid`` is the image path inside its images folder without extension, prefixed with the
split (``train/000123``); ``image.paths`` and ``metadata.source`` hold the path relative to ``root``.

Values within ``tolerance`` outside [0, 1] are clipped; anything else wrong is an error naming the label
file and the 1-based line number.

Example:
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "images")); os.makedirs(os.path.join(root, "labels"))
    >>> _ = open(os.path.join(root, "images", "a.jpg"), "wb").write(b"...")
    >>> _ = open(os.path.join(root, "labels", "a.txt"), "w").write("1 0.5 0.5 0.2 0.4\\n")
    >>> item = next(YoloSource(root, names=["cat", "dog"]).items())
    >>> item.droplet["classes"]["dog"]["instances"][0]["boundingBox"]["rectangle"]
    [[0.4, 0.3], [0.6, 0.7]]
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import CoordinateError, YoloFormatError
from .coords import unit_point, unit_rectangle
from .source import SourceItem

__all__ = ["YoloSource", "IMAGE_EXTENSIONS", "read_class_names"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".dng", ".mpo",
                              ".pfm", ".heic"})
_YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")


def _load_yaml(path: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise YoloFormatError(f"reading {path} needs PyYAML (pip install pyyaml), or give the class names "
                              "as classes.txt or names=[…]") from None
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise YoloFormatError(f"cannot read {path}: {err}") from None
    if not isinstance(doc, dict):
        raise YoloFormatError(f"{path}: expected a mapping at the top level")
    return doc


def _names_list(names: Any, where: str) -> list[str]:
    if isinstance(names, Mapping):
        try:
            indexed = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise YoloFormatError(f"{where}: names mapping keys must be class indexes") from None
        if sorted(indexed) != list(range(len(indexed))):
            raise YoloFormatError(f"{where}: names mapping must cover indexes 0..{len(indexed) - 1}, "
                                  f"got {sorted(indexed)}")
        names = [indexed[i] for i in range(len(indexed))]
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        raise YoloFormatError(f"{where}: names must be a non-empty list or {{index: name}} mapping")
    out = [str(n) for n in names]
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise YoloFormatError(f"{where}: class names must be distinct, repeated: {dupes}")
    return out


def read_class_names(root: str | os.PathLike[str]) -> tuple[list[str], dict[str, Any]]:
    """``(class names, data.yaml contents or {})`` for the dataset folder ``root``.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "classes.txt"), "w").write("cat\\ndog\\n")
        >>> read_class_names(d)
        (['cat', 'dog'], {})
    """
    root = os.fspath(root)
    for name in _YAML_NAMES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            doc = _load_yaml(path)
            if "names" in doc:
                return _names_list(doc["names"], path), doc
    for path in (os.path.join(root, "classes.txt"), os.path.join(root, "labels", "classes.txt")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
            return _names_list(names, path), {}
    raise YoloFormatError(f"{root}: no class names found (data.yaml with 'names', or classes.txt)")


def _walk_images(folder: str) -> list[str]:
    found = []
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.relpath(os.path.join(base, name), folder).replace(os.sep, "/"))
    return found


def _walk_labels(folder: str) -> list[str]:
    found = []
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".txt") and name != "classes.txt":
                found.append(os.path.relpath(os.path.join(base, name), folder).replace(os.sep, "/"))
    return found


class YoloSource:
    """A YOLO dataset folder as a publish :class:`~headwater.publish.Source` (see the module doc).

    ``names``: class names (overrides data.yaml / classes.txt). ``split``: the split for a flat layout
    (None lets :func:`~headwater.publish.publish` decide); folder splits always win.
    ``tolerance``: how far outside [0, 1] a value may be and still be clipped.
    """

    def __init__(self, root: str | os.PathLike[str], *, names: Sequence[str] | Mapping[int, str] | None = None,
                 split: str | None = None, tolerance: float = 1e-3) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.name = self.root
        self.images_root = self.root
        if not os.path.isdir(self.root):
            raise YoloFormatError(f"{self.root} is not a folder")
        if names is not None:
            self.names, config = _names_list(names, "names"), {}
            for yaml_name in _YAML_NAMES:
                if os.path.isfile(os.path.join(self.root, yaml_name)):
                    config = _load_yaml(os.path.join(self.root, yaml_name))
                    break
        else:
            self.names, config = read_class_names(self.root)
        self.split = split
        self.tolerance = float(tolerance)
        self._kpt_shape = self._keypoint_shape(config)
        self._kpt_names = self._keypoint_names(config)
        self.groups = self._find_groups()
        self._has_polygons = self._scan_for_polygons()
        classes: dict[str, Any] = {}
        for index, cls in enumerate(self.names):
            inst: dict[str, Any] = {"boundingBox": True}
            if self._has_polygons:
                inst["segmentation"] = True
            if self._kpt_shape:
                inst["keypoints"] = self._kpt_names_for(index)
            classes[cls] = {"instances": inst}
        self.template: dict[str, Any] = {"kind": "ImageAnnotationTemplate", "classes": classes}

    # -- configuration -----------------------------------------------------------------------------
    def _keypoint_shape(self, config: Mapping[str, Any]) -> tuple[int, int] | None:
        shape = config.get("kpt_shape")
        if shape is None:
            return None
        if (not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(v, int) for v in shape)
                or shape[0] < 1 or shape[1] not in (2, 3)):
            raise YoloFormatError(f"{self.root}: kpt_shape must be [K, 2] or [K, 3], got {shape!r}")
        return shape[0], shape[1]

    def _keypoint_names(self, config: Mapping[str, Any]) -> Any:
        names = config.get("kpt_names")
        if self._kpt_shape is None or names is None:
            return None
        k = self._kpt_shape[0]
        per_class = names if isinstance(names, Mapping) else {i: names for i in range(len(self.names))}
        out = {}
        for index, value in per_class.items():
            if not isinstance(value, list) or len(value) != k or len(set(map(str, value))) != k:
                raise YoloFormatError(f"{self.root}: kpt_names must list {k} distinct names, got {value!r}")
            out[int(index)] = [str(v) for v in value]
        return out

    def _kpt_names_for(self, index: int) -> list[str]:
        if self._kpt_names and index in self._kpt_names:
            return list(self._kpt_names[index])
        return [str(i) for i in range(self._kpt_shape[0] if self._kpt_shape else 0)]

    # -- layout ------------------------------------------------------------------------------------
    def _find_groups(self) -> list[tuple[str | None, str, str]]:
        """``(split or None, images folder, labels folder)`` for every group of images."""
        images = os.path.join(self.root, "images")
        if os.path.isdir(images):
            direct = [n for n in os.listdir(images)
                      if os.path.isfile(os.path.join(images, n)) and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
            subdirs = sorted(n for n in os.listdir(images) if os.path.isdir(os.path.join(images, n)))
            if direct or not subdirs:
                return [(None, images, os.path.join(self.root, "labels"))]
            return [(s, os.path.join(images, s), os.path.join(self.root, "labels", s)) for s in subdirs]
        groups: list[tuple[str | None, str, str]] = [
            (s, os.path.join(self.root, s, "images"), os.path.join(self.root, s, "labels"))
                  for s in sorted(os.listdir(self.root)) if os.path.isdir(os.path.join(self.root, s, "images"))]
        if not groups:
            raise YoloFormatError(f"{self.root}: no images/ folder (nor <split>/images/ folders)")
        return groups

    def _scan_for_polygons(self) -> bool:
        if self._kpt_shape is not None:
            return False
        for _split, _images, labels in self.groups:
            for rel in _walk_labels(labels) if os.path.isdir(labels) else []:
                try:
                    with open(os.path.join(labels, rel), encoding="utf-8", errors="replace") as f:
                        if any(len(line.split()) > 5 for line in f):
                            return True
                except OSError:
                    continue
        return False

    def __len__(self) -> int:
        return sum(len(_walk_images(images)) for _s, images, _l in self.groups)

    # -- conversion --------------------------------------------------------------------------------
    def _line(self, values: list[str]) -> tuple[str, dict[str, Any]]:
        try:
            raw_cls = float(values[0])
        except ValueError:
            raise CoordinateError(f"class index {values[0]!r} is not a number") from None
        if not raw_cls.is_integer() or not 0 <= raw_cls < len(self.names):
            raise CoordinateError(f"class index {values[0]} is not in 0..{len(self.names) - 1}")
        index = int(raw_cls)
        try:
            nums = [float(v) for v in values[1:]]
        except ValueError:
            raise CoordinateError(f"not a number in {' '.join(values[1:])!r}") from None
        tol = self.tolerance
        out: dict[str, Any] = {}
        if self._kpt_shape is not None:
            k, d = self._kpt_shape
            if len(nums) != 4 + k * d:
                raise CoordinateError(f"expected class + 4 box values + {k}x{d} keypoint values "
                                      f"({5 + k * d} in all), got {len(values)}")
        elif len(nums) != 4 and (len(nums) < 6 or len(nums) % 2):
            raise CoordinateError(f"expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 …', "
                                  f"got {len(values)} values")
        if len(nums) == 4 or self._kpt_shape is not None:
            cx, cy, w, h = nums[:4]
            if w <= 0 or h <= 0:
                raise CoordinateError(f"box width and height must be positive, got {w:g} x {h:g}")
            out["boundingBox"] = {"rectangle": unit_rectangle(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, tol)}
        else:
            points = [unit_point(nums[j], nums[j + 1], tol, tol) for j in range(0, len(nums), 2)]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            out["boundingBox"] = {"rectangle": unit_rectangle(min(xs), min(ys), max(xs), max(ys), 0.0)}
            out["segmentation"] = {"mask": [points]}
        if self._kpt_shape is not None:
            k, d = self._kpt_shape
            kps: dict[str, Any] = {}
            for j, kp_name in enumerate(self._kpt_names_for(index)):
                vals = nums[4 + j * d:4 + (j + 1) * d]
                v = vals[2] if d == 3 else None
                if v == 0 or (d == 2 and vals[0] == 0 and vals[1] == 0):
                    kps[kp_name] = None
                    continue
                if v is not None and v not in (1, 2):
                    raise CoordinateError(f"keypoint {kp_name!r} visibility must be 0, 1 or 2, got {v:g}")
                try:
                    kp: dict[str, Any] = {"point": unit_point(vals[0], vals[1], tol, tol)}
                except CoordinateError as err:
                    raise CoordinateError(f"keypoint {kp_name!r}: {err}") from None
                if v is not None:
                    kp["occluded"] = v == 1
                kps[kp_name] = kp
            out["keypoints"] = kps
        return self.names[index], out

    def _droplet(self, label_path: str, label_rel: str) -> tuple[dict[str, Any], list[str]]:
        classes: dict[str, dict[str, list[Any]]] = {}
        problems: list[str] = []
        if os.path.isfile(label_path):
            try:
                with open(label_path, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except (OSError, UnicodeDecodeError) as err:
                return {}, [f"cannot read {label_rel}: {err}"]
            for number, line in enumerate(lines, 1):
                values = line.split()
                if not values:
                    continue
                try:
                    cls, wire = self._line(values)
                except CoordinateError as err:
                    problems.append(f"{label_rel} line {number}: {err}")
                    continue
                classes.setdefault(cls, {"instances": [], "multiInstances": []})["instances"].append(wire)
        return classes, problems

    def items(self) -> Iterator[SourceItem]:
        """One item per image (sorted by path, split by split), then one per label file without an image."""
        for split, images, labels in self.groups:
            image_rels = _walk_images(images) if os.path.isdir(images) else []
            stems = set()
            for rel in image_rels:
                stem = os.path.splitext(rel)[0]
                stems.add(stem)
                image_rel = os.path.relpath(os.path.join(images, rel), self.root).replace(os.sep, "/")
                label_path = os.path.join(labels, stem + ".txt")
                label_rel = os.path.relpath(label_path, self.root).replace(os.sep, "/")
                classes, problems = self._droplet(label_path, label_rel)
                uid = stem if split is None else f"{split}/{stem}"
                droplet = {"kind": "ImageAnnotation", "uid": uid, "image": {"paths": [image_rel]},
                           "classes": classes, "metadata": {"source": image_rel}}
                yield SourceItem(image_rel, droplet, split=split if split is not None else self.split,
                                 problems=tuple(problems))
            for rel in _walk_labels(labels) if os.path.isdir(labels) else []:
                if os.path.splitext(rel)[0] not in stems:
                    label_rel = os.path.relpath(os.path.join(labels, rel), self.root).replace(os.sep, "/")
                    yield SourceItem(label_rel, None, problems=("label file without an image",))
