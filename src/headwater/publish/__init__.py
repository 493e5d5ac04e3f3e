"""Layer 6: publishing — a source of droplets becomes one immutable dataset, all or nothing.

Below both :mod:`headwater.client` and :mod:`headwater.server`, which call it and never each other:

* :mod:`.sources` — what is read: JSONL droplets, COCO JSON, YOLO folders (one :class:`Source` interface);
* :mod:`.split_rule` — where an item without an explicit split goes (seeded, stable);
* :mod:`.validation` — pass 1: every problem named by its place, the plan (images, splits, template);
* :mod:`.jsonl_check` — pass 1's heavy part for JSONL (decode, validate, encode) in blocks, on every core;
* :mod:`.encoded` — the droplets' final bytes kept from pass 1 for pass 2 (each decoded once);
* :mod:`.pool_refs` — the one rule for ``pool://`` references (pool and member exist), local and on a server;
* :mod:`.unique_uids` — each droplet uid once per publish, a repeat named with its first place;
* :mod:`.commit` — the local publish: images staged into a pool, droplets and tags in one transaction;
* :mod:`.errors` — :class:`PublishError` with its :class:`Problem`\\ s, and the source format errors.

Example:
    >>> rule = SplitRule({"validation": 0.1}, seed=3)
    >>> rule("image-17") in ("train", "validation")
    True
"""

from .commit import POOL_MARKER, publish
from .errors import (
    CocoFormatError,
    CoordinateError,
    Problem,
    PublishError,
    SourceFormatError,
    YoloFormatError,
)
from .sources import (
    IMAGE_EXTENSIONS,
    CocoSource,
    JsonlSource,
    Source,
    SourceItem,
    YoloSource,
    detect_format,
    open_source,
    read_class_names,
)
from .split_rule import SplitRule, choose_splits, split_key
from .validation import PlannedItem, PublishPlan, check_names, is_local_path, load_template, prepare_publish

__all__ = [
    "POOL_MARKER", "publish",
    "Problem", "PublishError", "SourceFormatError", "CocoFormatError", "YoloFormatError", "CoordinateError",
    "Source", "SourceItem", "JsonlSource", "CocoSource", "YoloSource", "IMAGE_EXTENSIONS", "read_class_names",
    "detect_format", "open_source",
    "SplitRule", "choose_splits", "split_key",
    "PlannedItem", "PublishPlan", "prepare_publish", "check_names", "is_local_path", "load_template",
]
