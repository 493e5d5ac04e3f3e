"""What a split can be filtered by and what its statistics are: the types, and their URL query form.

Why a URL form: every view of the viewer is a link one can share, so a filter must survive being written into
a query string and read back (:meth:`SplitFilter.to_query` / :meth:`SplitFilter.from_query` are inverses).
The filters are answered from facets indexed at publish time (:mod:`.facet_index`, :mod:`.facet_search`),
never by reading the split's droplets.

Query parameters (repeatable ones may be given many times; every condition must hold):

=================  ==========================================================================================
``class=NAME``     the class is present (at least one instance or multi-instance); repeatable
``count=NAME:A-B`` the droplet has ``A`` to ``B`` instances of the class (inclusive); ``NAME:A-`` at least,
                   ``NAME:-B`` or ``NAME:0-B`` at most, ``NAME:N`` exactly; the name is what precedes the
                   *last* ``:``, so names may contain ``:``; repeatable
``conf=A-B``       some instance's box confidence lies in ``[A, B]`` (``A-``, ``-B`` open ended), among the
                   ``class=`` classes when given, else among all classes
``uid=PREFIX``     the droplet's uid (its ``uid``, else its image's ``uid``) starts with ``PREFIX``
``meta=KEY=VALUE`` top-level scalar metadata ``KEY`` equals ``VALUE`` (numbers and booleans as JSON writes
                   them: ``meta=year=2021``, ``meta=night=true``); the key is what precedes the first ``=``;
                   repeatable
``sample=N``       a seeded random sample of ``N`` of the matches, in the sample's order
``seed=S``         the sample's seed (an integer, default 0)
=================  ==========================================================================================

An empty value is ignored (an empty form field sends ``uid=``); other parameters (a page number, render
options) are left to the caller. Anything else that does not parse raises
:class:`~headwater.catalog.errors.FilterError` with a one-line message.

Example:
    >>> flt = SplitFilter.from_query([("class", "cat"), ("count", "dog:2-"), ("conf", "0.5-0.9"), ("page", "3")])
    >>> flt.present, flt.counts, flt.min_confidence, flt.max_confidence
    (('cat',), (ClassCount(name='dog', min=2, max=None),), 0.5, 0.9)
    >>> flt.to_query()
    [('class', 'cat'), ('count', 'dog:2-'), ('conf', '0.5-0.9')]
    >>> SplitFilter.from_query(flt.to_query()) == flt
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import FilterError

__all__ = ["ClassCount", "SplitFilter", "FilterPage", "SplitStats", "HISTOGRAM_BINS"]

HISTOGRAM_BINS = 20
"""Bins of the box-size and confidence histograms of :class:`SplitStats` (each ``1/20`` wide over ``[0, 1]``)."""

_INT = re.compile(r"\d{1,18}")
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_BOUNDS = re.compile(rf"({_NUMBER})?-({_NUMBER})?")
_REPEATABLE = {"class", "count", "meta"}
_SINGLE = {"conf", "uid", "sample", "seed"}


def _check_int(what: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FilterError(f"{what} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class ClassCount:
    """Instance-count bounds for one class, inclusive; ``None``: unbounded on that side (``min=0, max=0``:
    the class has no instance).

    >>> ClassCount("cat", 2, 5)
    ClassCount(name='cat', min=2, max=5)
    """

    name: str
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise FilterError(f"a class name must be a non-empty string, got {self.name!r}")
        for what, value in (("min", self.min), ("max", self.max)):
            if value is not None:
                _check_int(f"instance count {what} of class {self.name!r}", value, 0)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FilterError(f"instance count of class {self.name!r}: min {self.min} is above max {self.max}")

    def query_value(self) -> str:
        """The ``count=`` value: ``name:min-max`` with an open side left empty."""
        low = "" if self.min is None else str(self.min)
        high = "" if self.max is None else str(self.max)
        return f"{self.name}:{low}-{high}"


@dataclass(frozen=True)
class SplitFilter:
    """Which droplets of a split to show: every given condition must hold (see the module docstring).

    ``present``: classes that must all be present; ``counts``: instance-count bounds; ``min_confidence`` /
    ``max_confidence``: some instance box's confidence in the range (among ``present`` when given);
    ``uid``: a uid prefix; ``metadata``: ``(key, value)`` pairs on top-level scalar metadata (value as its JSON
    text for numbers and booleans, the plain string for strings); ``sample`` / ``seed``: a seeded random
    sample of the matches.

    >>> SplitFilter(present=("cat",), sample=10, seed=3).to_query()
    [('class', 'cat'), ('sample', '10'), ('seed', '3')]
    """

    present: tuple[str, ...] = ()
    counts: tuple[ClassCount, ...] = ()
    min_confidence: float | None = None
    max_confidence: float | None = None
    uid: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in self.present:
            if not isinstance(name, str) or not name:
                raise FilterError(f"a class name must be a non-empty string, got {name!r}")
        for count in self.counts:
            if not isinstance(count, ClassCount):
                raise FilterError(f"counts must be ClassCount values, got {count!r}")
        for what, bound in (("min_confidence", self.min_confidence), ("max_confidence", self.max_confidence)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)
                                      or not math.isfinite(bound)):
                raise FilterError(f"{what} must be a finite number, got {bound!r}")
        if self.min_confidence is not None and self.max_confidence is not None and \
                self.min_confidence > self.max_confidence:
            raise FilterError(f"confidence range {self.min_confidence}-{self.max_confidence} is empty (min > max)")
        if self.uid is not None and (not isinstance(self.uid, str) or not self.uid):
            raise FilterError(f"uid prefix must be a non-empty string, got {self.uid!r}")
        for pair in self.metadata:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
                    and pair[0]):
                raise FilterError(f"metadata conditions must be (key, value) string pairs, got {pair!r}")
        if self.sample is not None:
            _check_int("sample", self.sample, 1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise FilterError(f"seed must be an integer, got {self.seed!r}")

    @property
    def is_empty(self) -> bool:
        """True when no condition is given (every droplet matches; a sample may still be asked for)."""
        return not (self.present or self.counts or self.min_confidence is not None
                    or self.max_confidence is not None or self.uid is not None or self.metadata)

    @classmethod
    def from_query(cls, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> SplitFilter:
        """The filter a URL query asks for (parameters as in the module docstring; others are ignored).

        ``params``: ``(name, value)`` pairs (``urllib.parse.parse_qsl``), a mapping (one value a name), or a
        multi-mapping with ``multi_items()`` such as Starlette's ``request.query_params`` (every value kept).

        >>> SplitFilter.from_query({"count": "a:b:3", "meta": "camera=x=1"})
        SplitFilter(present=(), counts=(ClassCount(name='a:b', min=3, max=3),), min_confidence=None, \
max_confidence=None, uid=None, metadata=(('camera', 'x=1'),), sample=None, seed=0)
        >>> SplitFilter.from_query({"conf": "high"})
        Traceback (most recent call last):
        ...
        headwater.catalog.errors.FilterError: conf='high': expected LOW-HIGH confidences such as 0.5-0.9, 0.5- or -0.9
        """
        multi = getattr(params, "multi_items", None)  # Starlette's QueryParams: .items() keeps one value a key
        if callable(multi):
            pairs = list(multi())
        else:
            pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        present: list[str] = []
        counts: list[ClassCount] = []
        metadata: list[tuple[str, str]] = []
        single: dict[str, str] = {}
        for key, value in pairs:
            if key not in _REPEATABLE and key not in _SINGLE:
                continue
            if not isinstance(value, str):
                raise FilterError(f"{key}={value!r}: expected a string")
            if value == "":
                continue
            if key == "class":
                present.append(value)
            elif key == "count":
                counts.append(_parse_count(value))
            elif key == "meta":
                meta_key, eq, meta_value = value.partition("=")
                if not eq or not meta_key:
                    raise FilterError(f"meta={value!r}: expected KEY=VALUE such as meta=camera=front")
                metadata.append((meta_key, meta_value))
            elif key in single:
                raise FilterError(f"{key} is given twice ({single[key]!r} and {value!r}); give it once")
            else:
                single[key] = value
        low = high = None
        if "conf" in single:
            match = _BOUNDS.fullmatch(single["conf"])
            if match is None or (match.group(1) is None and match.group(2) is None):
                raise FilterError(f"conf={single['conf']!r}: expected LOW-HIGH confidences such as 0.5-0.9, "
                                  "0.5- or -0.9")
            low = float(match.group(1)) if match.group(1) is not None else None
            high = float(match.group(2)) if match.group(2) is not None else None
        return cls(present=tuple(present), counts=tuple(counts), min_confidence=low, max_confidence=high,
                   uid=single.get("uid"), metadata=tuple(metadata),
                   sample=_parse_int("sample", single["sample"]) if "sample" in single else None,
                   seed=_parse_int("seed", single["seed"], signed=True) if "seed" in single else 0)

    def to_query(self) -> list[tuple[str, str]]:
        """The URL query parameters of this filter (``from_query`` of them gives it back)."""
        out: list[tuple[str, str]] = [("class", name) for name in self.present]
        out += [("count", count.query_value()) for count in self.counts]
        if self.min_confidence is not None or self.max_confidence is not None:
            out.append(("conf", f"{_number(self.min_confidence)}-{_number(self.max_confidence)}"))
        if self.uid is not None:
            out.append(("uid", self.uid))
        for key, value in self.metadata:
            if "=" in key:
                raise FilterError(f"metadata key {key!r} contains '=' and cannot be written as a meta= parameter")
            out.append(("meta", f"{key}={value}"))
        if self.sample is not None:
            out.append(("sample", str(self.sample)))
        if self.seed != 0:
            out.append(("seed", str(self.seed)))
        return out


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if value < 0:
        raise FilterError(f"confidence bound {value!r} is negative and cannot be written as a conf= parameter")
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _parse_int(key: str, text: str, *, signed: bool = False) -> int:
    body = text[1:] if signed and text[:1] == "-" else text
    if not _INT.fullmatch(body):
        raise FilterError(f"{key}={text!r}: expected an integer")
    return int(text)


def _parse_count(value: str) -> ClassCount:
    name, colon, bounds = value.rpartition(":")
    if not colon or not name:
        raise FilterError(f"count={value!r}: expected CLASS:MIN-MAX such as cat:2-5, cat:1-, cat:-3 or cat:2")
    if _INT.fullmatch(bounds):
        return ClassCount(name, int(bounds), int(bounds))
    low, dash, high = bounds.partition("-")
    if not dash or (low and not _INT.fullmatch(low)) or (high and not _INT.fullmatch(high)):
        raise FilterError(f"count={value!r}: expected CLASS:MIN-MAX such as cat:2-5, cat:1-, cat:-3 or cat:2")
    return ClassCount(name, int(low) if low else None, int(high) if high else None)


@dataclass(frozen=True)
class FilterPage:
    """One page of a filtered split: ``total`` matches (after ``sample``, before paging) and the ordinals of
    this page — in split order, or in the sample's order when sampled."""

    total: int
    ordinals: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SplitStats:
    """A split's statistics, computed once at publish time.

    ``count``: droplets; ``instances``: class → instances over the split; ``images``: class → droplets where it
    is present (an instance or a multi-instance); ``instances_per_image``: number of instances in a droplet
    (all classes) → droplets; ``box_sizes``: class → histogram of ``sqrt(w * h)`` of its instances' boxes,
    :data:`HISTOGRAM_BINS` bins over ``[0, 1]`` (larger values in the last bin); ``confidence``: histogram of
    instance box confidences the same way, None when no box carries one.
    """

    count: int
    instances: dict[str, int]
    images: dict[str, int]
    instances_per_image: dict[int, int]
    box_sizes: dict[str, list[int]]
    confidence: list[int] | None

    def to_json(self) -> dict[str, Any]:
        """As JSON-ready builtins (``instances_per_image`` keys become strings, as JSON needs)."""
        return {"count": self.count, "instances": self.instances, "images": self.images,
                "instances_per_image": {str(k): v for k, v in self.instances_per_image.items()},
                "box_sizes": self.box_sizes, "confidence": self.confidence}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitStats:
        """The inverse of :meth:`to_json`."""
        return cls(count=int(data["count"]), instances=dict(data["instances"]), images=dict(data["images"]),
                   instances_per_image={int(k): v for k, v in data["instances_per_image"].items()},
                   box_sizes={k: list(v) for k, v in data["box_sizes"].items()},
                   confidence=list(data["confidence"]) if data["confidence"] is not None else None)
