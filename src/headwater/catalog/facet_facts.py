"""What a droplet's facets need, read from its bytes or from its decoded ImageAnnotation — by one digest.

Why a module of its own, without the database: ``headwater publish``'s worker processes compute these facts
where they decode droplets anyway, and the publish package is imported by the remote client, which must not
load SQLAlchemy; :mod:`.facet_index` accumulates them and writes the facet tables.

Example:
    >>> facts = list(droplet_facts([b'{"uid":"a","image":{"paths":[]},"classes":{"cat":{"instances":[{}]}}}', b'1']))
    >>> facts
    [(b'a', [('cat', 1, [], [])], None), None]
    >>> [unpack_facts(packed) for packed in pack_facts(facts)]
    [[b'a', [['cat', 1, [], []]], None], None]
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator, Sequence

import msgspec

from ..droplet import ImageAnnotation

__all__ = ["ClassFacts", "DropletFacts", "MAX_INDEXED_BYTES", "annotation_facts", "droplet_facts", "encode_text",
           "pack_facts", "unpack_facts"]

MAX_INDEXED_BYTES = 1000
"""Keys, values and uids longer than this (UTF-8) are not indexed: database index entries have a size limit."""


def encode_text(text: str) -> bytes:
    """How names, uids, keys and values are stored: UTF-8 (lone surrogates, which JSON allows, kept)."""
    return text.encode("utf-8", "surrogatepass")


class _Point(msgspec.Struct, array_like=True, gc=False):  # the fields of headwater.droplet's Point
    x: float
    y: float


class _Rectangle(msgspec.Struct, array_like=True, gc=False):  # and of its Rectangle: one digest reads both
    p1: _Point
    p2: _Point


class _Box(msgspec.Struct, gc=False):
    rectangle: _Rectangle
    confidence: float | None = None


class _Instance(msgspec.Struct, rename="camel", gc=False):
    bounding_box: _Box | None = None


class _Skipped(msgspec.Struct, gc=False):
    """Any JSON object, none of its fields kept (a multi-instance: only how many there are matters)."""


class _Class(msgspec.Struct, rename="camel", gc=False):
    instances: tuple[_Instance, ...] | None = None  # tuples, not lists: fewer objects for the collector to see
    multi_instances: tuple[_Skipped, ...] | None = None


class _Image(msgspec.Struct, gc=False):
    uid: str | None = None


class _Droplet(msgspec.Struct, gc=False):
    image: _Image | None = None
    classes: dict[str, _Class] | None = None
    uid: str | None = None
    metadata: dict[str, msgspec.Raw] | None = None


_decode = msgspec.json.Decoder(_Droplet).decode
_decode_any = msgspec.json.decode
_encode = msgspec.json.encode


def _decode_or_none(data: bytes) -> _Droplet | None:
    try:
        return _decode(data)
    except msgspec.DecodeError:
        return None


ClassFacts = tuple[str, int, list[float], list[float]]
"""A class present in a droplet: its name, instance count, every box's size ``sqrt(w * h)`` and every box's
confidence (boxes without one: none), in instance order."""

DropletFacts = tuple[bytes | None, list[ClassFacts], dict[str, bytes] | None] | None
"""What a droplet's facets need: its indexed uid (None: none, or too long), its present classes and its raw
metadata (JSON bytes a key); None for bytes that are not an ImageAnnotation."""


def _facts(droplet: _Droplet | ImageAnnotation | None) -> DropletFacts:
    if droplet is None:
        return None
    present: list[ClassFacts] = []
    sqrt = math.sqrt
    for name, cls in (droplet.classes or {}).items():
        instances = cls.instances or ()
        if not instances and not cls.multi_instances:
            continue
        sizes: list[float] = []
        confidences: list[float] = []
        for instance in instances:
            box = instance.bounding_box
            if box is not None:
                p1, p2 = box.rectangle.p1, box.rectangle.p2
                sizes.append(sqrt(abs((p2.x - p1.x) * (p2.y - p1.y))))
                if box.confidence is not None:
                    confidences.append(box.confidence)
        present.append((name, len(instances), sizes, confidences))
    uid = droplet.uid or (droplet.image.uid if droplet.image is not None else None)
    encoded = encode_text(uid) if uid else None
    if encoded is not None and len(encoded) > MAX_INDEXED_BYTES:
        encoded = None
    # raw JSON (the bytes'), or a decoded value encoded as encode_droplet does it (an ImageAnnotation's)
    metadata = {key: _encode(value) for key, value in droplet.metadata.items()} if droplet.metadata else None
    return encoded, present, metadata


def droplet_facts(items: Sequence[bytes]) -> Iterator[DropletFacts]:
    """Decode droplets (once each) into what their facets need."""
    try:
        decoded: list[_Droplet | None] = list(map(_decode, items))
    except msgspec.DecodeError:  # one is not an ImageAnnotation: find which, one by one
        decoded = [_decode_or_none(data) for data in items]
    return map(_facts, decoded)


def annotation_facts(droplets: Iterable[ImageAnnotation]) -> Iterator[DropletFacts]:
    """What the facets of decoded droplets need: the same as :func:`droplet_facts` of their
    :func:`~headwater.droplet.encode_droplet` bytes (one digest reads both, the bytes' structs and
    ImageAnnotations having the same fields), without decoding them again."""
    return map(_facts, droplets)


def pack_facts(facts: Iterable[DropletFacts]) -> list[bytes]:
    """Each droplet's facts packed as MessagePack (floats as binary: unpacked in a fraction of the time decoding
    the droplet takes) — for the process that decodes droplets anyway to compute them
    (:func:`annotation_facts`), and :meth:`SplitFacets.add` in the publishing one to take them."""
    collecting = gc.isenabled()
    gc.disable()  # see SplitFacets.add
    try:
        return list(map(_pack, facts))
    finally:
        if collecting:
            gc.enable()


_pack = msgspec.msgpack.Encoder().encode
_unpack_any = msgspec.msgpack.Decoder().decode


def unpack_facts(data: bytes) -> DropletFacts:
    """One droplet's facts as :func:`pack_facts` packed them."""
    facts: DropletFacts = _unpack_any(data)
    return facts
