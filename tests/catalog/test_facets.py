"""Split filters and statistics (catalog/facets.py, facet_index.py, facet_search.py, migration 0005): every filter
and the statistics on SQLite and PostgreSQL against a brute-force evaluation over the same droplets, the URL query
form, hostile class names, the backfill of splits published before the facets existed."""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from headwater.catalog import (
    Catalog,
    CatalogError,
    ClassCount,
    FilterError,
    FilterPage,
    SplitFilter,
    SplitStats,
)
from headwater.catalog import publisher as publisher_module
from headwater.catalog.engine import migrate, open_engine, write_connection
from headwater.catalog.facet_facts import annotation_facts, droplet_facts, pack_facts
from headwater.droplet import decode_droplet, encode_droplet
from headwater.errors import HeadwaterError

from ..support.facet_tables import facet_tables

HOSTILE = "<img src=x onerror=alert(1)>"
CLASSES = ["cat", "dog", "a:b=c", HOSTILE, "ünïcödé 😀", "nul\x00byte", "' OR 1=1 --"]
UIDS = ["a1", "a2", "ab", "b1", "é", "a\x00"]
META_VALUES: list[Any] = ["x", "y", "", 1, 2, 0.5, True, False, None, {"nested": 1}, [1]]
CONFIDENCES = [0.0, 0.25, 0.5, 0.75, 1.0, 0.3333]


# -- droplets and the brute force -------------------------------------------------------------------------------
@st.composite
def droplets(draw: st.DrawFn) -> dict[str, Any]:
    classes: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(CLASSES), max_size=3, unique=True)):
        instances = []
        for _ in range(draw(st.integers(0, 3))):
            instance: dict[str, Any] = {}
            if draw(st.booleans()):
                x1, y1 = draw(st.floats(0, 1)), draw(st.floats(0, 1))
                x2, y2 = draw(st.floats(0, 1)), draw(st.floats(0, 1))
                instance["boundingBox"] = {"rectangle": [[x1, y1], [x2, y2]]}
                if draw(st.booleans()):
                    instance["boundingBox"]["confidence"] = draw(st.sampled_from(CONFIDENCES))
            instances.append(instance)
        multi = [{"count": 3}] * draw(st.integers(0, 1))
        classes[name] = {"instances": instances, "multiInstances": multi}
    droplet: dict[str, Any] = {"kind": "ImageAnnotation", "image": {"paths": ["x.jpg"]}, "classes": classes}
    if draw(st.booleans()):
        droplet["uid"] = draw(st.sampled_from(UIDS))
    if draw(st.booleans()):
        droplet["image"]["uid"] = draw(st.sampled_from(UIDS))
    if draw(st.booleans()):
        droplet["metadata"] = draw(st.dictionaries(st.sampled_from(["k", "n", "ü"]), st.sampled_from(META_VALUES),
                                                   max_size=2))
    return droplet


def encode(droplet: dict[str, Any]) -> bytes:
    return json.dumps(droplet, separators=(",", ":")).encode()


def instances_of(droplet: dict[str, Any] | None, name: str) -> int:
    cls = (droplet or {}).get("classes", {}).get(name)
    return len(cls["instances"]) if cls else 0


def is_present(droplet: dict[str, Any] | None, name: str) -> bool:
    cls = (droplet or {}).get("classes", {}).get(name)
    return bool(cls and (cls["instances"] or cls["multiInstances"]))


def uid_of(droplet: dict[str, Any] | None) -> str | None:
    if droplet is None:
        return None
    return droplet.get("uid") or droplet["image"].get("uid")


def meta_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list):
        return None
    return json.dumps(value)


def brute_matches(items: list[dict[str, Any] | None], flt: SplitFilter) -> list[int]:
    """The ordinals matching ``flt``'s conditions, by looking at every droplet."""
    out = []
    for ordinal, droplet in enumerate(items):
        ok = all(is_present(droplet, name) for name in flt.present)
        for count in flt.counts:
            n = instances_of(droplet, count.name)
            ok = ok and (count.min is None or n >= count.min) and (count.max is None or n <= count.max)
        if flt.min_confidence is not None or flt.max_confidence is not None:
            names = flt.present or list((droplet or {}).get("classes", {}))
            confidences = [inst["boundingBox"]["confidence"] for name in names
                           for inst in (droplet or {}).get("classes", {}).get(name, {}).get("instances", [])
                           if "confidence" in inst.get("boundingBox", {})]
            ok = ok and any((flt.min_confidence is None or c >= flt.min_confidence)
                            and (flt.max_confidence is None or c <= flt.max_confidence) for c in confidences)
        if flt.uid is not None:
            uid = uid_of(droplet)
            ok = ok and uid is not None and uid.startswith(flt.uid)
        for key, value in flt.metadata:
            meta = (droplet or {}).get("metadata") or {}
            ok = ok and key in meta and meta_text(meta[key]) == value
        if ok:
            out.append(ordinal)
    return out


def bin_of(value: float) -> int:
    return min(max(int(value * 20), 0), 19)


def brute_stats(items: list[dict[str, Any] | None]) -> SplitStats:
    instances: dict[str, int] = {}
    images: dict[str, int] = {}
    per_image: dict[int, int] = {}
    sizes: dict[str, list[int]] = {}
    confidence = [0] * 20
    any_confidence = False
    for droplet in items:
        total = 0
        for name, cls in (droplet or {}).get("classes", {}).items():
            if not is_present(droplet, name):
                continue
            images[name] = images.get(name, 0) + 1
            instances[name] = instances.get(name, 0) + len(cls["instances"])
            total += len(cls["instances"])
            hist = sizes.setdefault(name, [0] * 20)
            for inst in cls["instances"]:
                box = inst.get("boundingBox")
                if box:
                    (x1, y1), (x2, y2) = box["rectangle"]
                    hist[bin_of(math.sqrt(abs((x2 - x1) * (y2 - y1))))] += 1
                    if "confidence" in box:
                        confidence[bin_of(box["confidence"])] += 1
                        any_confidence = True
        per_image[total] = per_image.get(total, 0) + 1
    return SplitStats(count=len(items), instances=instances, images=images, instances_per_image=per_image,
                      box_sizes=sizes, confidence=confidence if any_confidence else None)


@st.composite
def filters(draw: st.DrawFn) -> SplitFilter:
    """A filter of a few conditions (each one is drawn rarely, so that matches are common)."""
    def maybe(strategy: st.SearchStrategy[Any], default: Any) -> Any:
        return draw(strategy) if draw(st.integers(0, 2)) == 0 else default
    present = tuple(maybe(st.lists(st.sampled_from(CLASSES), max_size=2, unique=True), []))
    counts = []
    for name in maybe(st.lists(st.sampled_from(CLASSES), max_size=2), []):
        low = draw(st.none() | st.integers(0, 3))
        high = draw(st.none() | st.integers(low or 0, 4))
        counts.append(ClassCount(name, low, high))
    low_conf = high_conf = None
    if maybe(st.just(True), False):
        low_conf = draw(st.none() | st.sampled_from(CONFIDENCES))
        high_conf = draw(st.none() | st.sampled_from([c for c in CONFIDENCES if low_conf is None or c >= low_conf]))
    uid = maybe(st.sampled_from(["a", "a1", "b", "é", "z", "a\x00"]), None)
    metadata = tuple(maybe(st.lists(st.tuples(st.sampled_from(["k", "n", "ü"]),
                                              st.sampled_from(["x", "", "1", "0.5", "true", "false"])),
                                    max_size=2), []))
    sample = maybe(st.integers(1, 12), None)
    return SplitFilter(present=present, counts=tuple(counts), min_confidence=low_conf, max_confidence=high_conf,
                       uid=uid, metadata=metadata, sample=sample, seed=draw(st.integers(-5, 5)))


def single_conditions() -> list[SplitFilter]:
    """Every condition alone, at every boundary the droplets above can sit on."""
    out = [SplitFilter(present=(name,)) for name in CLASSES]
    out += [SplitFilter(counts=(ClassCount(name, low, high),)) for name in CLASSES[:3]
            for low, high in [(0, 0), (1, 1), (2, None), (None, 1), (3, 3)]]
    out += [SplitFilter(min_confidence=c) for c in CONFIDENCES] + [SplitFilter(max_confidence=c) for c in CONFIDENCES]
    out += [SplitFilter(min_confidence=c, max_confidence=c, present=("cat",)) for c in CONFIDENCES]
    out += [SplitFilter(uid=prefix) for prefix in ["a", "a1", "é", "a\x00", "\x00"]]
    out += [SplitFilter(metadata=((key, value),)) for key in ["k", "ü"] for value in ["x", "", "1", "0.5", "true"]]
    return out


SINGLE_CONDITIONS = single_conditions()


@pytest.fixture
def cat(catalog_url: str) -> Iterator[Catalog]:
    with Catalog(catalog_url) as catalog:
        catalog.create_database("main")
        yield catalog


def publish(cat: Catalog, items: list[bytes], split: str = "train") -> str:
    return cat.publish("main", "acme", "cats", template={}, splits={split: items}).uid


# -- against the brute force ---------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(droplets(), max_size=60), flts=st.lists(filters(), min_size=1, max_size=4))
def test_filters_and_stats_equal_a_brute_force(cat: Catalog, items: list[dict[str, Any]],
                                               flts: list[SplitFilter]) -> None:
    uid = publish(cat, [encode(d) for d in items])
    assert cat.split_stats(uid, "train") == brute_stats(list(items))
    for flt in SINGLE_CONDITIONS:
        expected = brute_matches(list(items), flt)
        assert cat.filter_split(uid, "train", flt, limit=10**6) == FilterPage(len(expected), expected), flt
    for flt in flts:
        expected = brute_matches(list(items), flt)
        whole = cat.filter_split(uid, "train", flt, limit=10**6)
        if flt.sample is None:
            assert whole == FilterPage(total=len(expected), ordinals=expected)
        else:
            assert whole.total == len(whole.ordinals) == min(flt.sample, len(expected))
            assert len(set(whole.ordinals)) == whole.total and set(whole.ordinals) <= set(expected)
        pages = [cat.filter_split(uid, "train", flt, offset=offset, limit=3).ordinals
                 for offset in range(0, whole.total + 3, 3)]
        assert list(itertools.chain(*pages)) == whole.ordinals  # pages of a sample are one sample
        assert pages[-1] == []
    first = {uid_of(d): i for i, d in reversed(list(enumerate(items)))}
    for droplet_uid in UIDS:
        assert cat.ordinal_of(uid, "train", droplet_uid) == first.get(droplet_uid)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.one_of(droplets().map(encode), st.sampled_from([b"1", b'{"classes": 5}', b'"t"'])),
                      max_size=40))
def test_packed_facts_give_the_facets_the_publisher_computes(cat: Catalog, items: list[bytes]) -> None:
    """What a publish's workers hand the publisher (pack_facts) indexes a split exactly as the publisher's own
    decoding of the same bytes does — batches cut anywhere, runs of facts and of none in one publish."""
    with cat.publisher("main", "acme", "own", template={}, batch_size=7) as pub:
        pub.add_many("train", items)
    with cat.publisher("main", "acme", "packed", template={}, batch_size=7) as packed:
        packed.add_many("train", items[:5])
        packed.add_many("train", items[5:], facts=pack_facts(droplet_facts(items[5:])))
    assert facet_tables(cat, packed.record.uid) == facet_tables(cat, pub.record.uid)


@settings(max_examples=50, deadline=None)
@given(items=st.lists(droplets(), max_size=10))
def test_decoded_droplets_have_the_facts_of_their_bytes(items: list[dict[str, Any]]) -> None:
    """A publish's workers digest the ImageAnnotations they decoded, the publisher the bytes they encode to."""
    annotations = [decode_droplet(encode(d)) for d in items]
    encoded = [encode_droplet(a) for a in annotations]
    assert pack_facts(annotation_facts(annotations)) == pack_facts(droplet_facts(encoded))


def test_facts_must_be_one_a_droplet(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match="split 'train': 2 droplets but 1 facts"), \
            cat.publisher("main", "acme", "cats", template={}) as pub:
        pub.add_many("train", [b"1", b"2"], facts=pack_facts(droplet_facts([b"1"])))


def test_a_sample_is_seeded(cat: Catalog) -> None:
    items = [encode({"image": {"paths": []}, "classes": {"cat": {"instances": [{}] * (i % 3),
                                                                   "multiInstances": []}}}) for i in range(500)]
    uid = publish(cat, items)
    flt = SplitFilter(present=("cat",), sample=50, seed=7)
    first = cat.filter_split(uid, "train", flt)
    assert first == cat.filter_split(uid, "train", flt) and first.total == 50 and len(first.ordinals) == 50
    assert all(o % 3 for o in first.ordinals) and first.ordinals != sorted(first.ordinals)
    assert cat.filter_split(uid, "train", SplitFilter(present=("cat",), sample=50, seed=8)) != first
    everything = cat.filter_split(uid, "train", SplitFilter(sample=1000, seed=1), limit=1000)
    assert everything.total == 500 and sorted(everything.ordinals) == list(range(500))


def test_droplets_that_are_not_image_annotations_are_counted_without_facets(cat: Catalog) -> None:
    good = encode({"uid": "g", "image": {"paths": []}, "classes": {"cat": {"instances": [{}], "multiInstances": []}}})
    uid = publish(cat, [b"1", good, b'{"classes": 5}', b'"text"', good])
    stats = cat.split_stats(uid, "train")
    assert stats.count == 5 and stats.instances == {"cat": 2} and stats.instances_per_image == {0: 3, 1: 2}
    assert cat.filter_split(uid, "train", SplitFilter(present=("cat",))) == FilterPage(2, [1, 4])
    assert cat.filter_split(uid, "train", SplitFilter(counts=(ClassCount("cat", 0, 0),))) == FilterPage(3, [0, 2, 3])
    assert cat.ordinal_of(uid, "train", "g") == 1


def test_an_empty_filter_pages_through_the_split(cat: Catalog) -> None:
    uid = publish(cat, [b"1"] * 10)
    assert cat.filter_split(uid, "train", SplitFilter(), offset=8, limit=5) == FilterPage(10, [8, 9])
    assert cat.filter_split(uid, "train", SplitFilter(), offset=20) == FilterPage(10, [])
    assert cat.filter_split(uid, "train", SplitFilter(present=("nope",))) == FilterPage(0, [])
    empty = cat.publish("main", "acme", "empty", template={}, splits={"train": []}).uid
    assert cat.filter_split(empty, "train", SplitFilter(present=("cat",), sample=3)) == FilterPage(0, [])
    assert cat.split_stats(empty, "train") == SplitStats(0, {}, {}, {}, {}, None)
    with pytest.raises(FilterError, match="offset must be an integer >= 0"):
        cat.filter_split(uid, "train", SplitFilter(), offset=-1)


def test_metadata_numbers_are_matched_as_json_writes_them(cat: Catalog) -> None:
    droplet = (b'{"image":{"paths":[]},"classes":{},"metadata":{"score":1.50,"year":2021,"ok":true,"s":"1.5",'
               b'"deep":{"a":1}}}')
    uid = publish(cat, [droplet])
    for key, value, found in [("score", "1.5", 1), ("score", "1.50", 0), ("year", "2021", 1), ("ok", "true", 1),
                              ("s", "1.5", 1), ("deep", '{"a":1}', 0)]:
        assert cat.filter_split(uid, "train", SplitFilter(metadata=((key, value),))).total == found, (key, value)


def test_metadata_keys_with_many_values_are_indexed_by_row(cat: Catalog) -> None:
    items: list[dict[str, Any] | None] = [
        {"image": {"paths": []}, "classes": {}, "metadata": {"file": f"f{i % 400}", "cam": ["a", "b", "c"][i % 3],
                                                             "n": i % 300 if i < 500 else "late"}}
        for i in range(900)]
    uid = publish(cat, [encode(d) if d else b"1" for d in items])
    with cat.engine.connect() as conn:  # "cam" is one row a value; "file" (400 values) and "n" (301) a row a droplet
        keys = {bytes(k) for k in conn.execute(text("SELECT key FROM facet_values")).scalars()}
        assert keys == {b"cam"}
        assert conn.execute(text("SELECT count(*) FROM facet_metadata")).scalar() == 1800
    for key, value in [("file", "f5"), ("file", "f399"), ("file", "f400"), ("cam", "b"), ("n", "7"), ("n", "299"),
                       ("n", "late"), ("cam", "d")]:
        flt = SplitFilter(metadata=((key, value),), present=())
        expected = brute_matches(items, flt)
        assert cat.filter_split(uid, "train", flt, limit=1000) == FilterPage(len(expected), expected), (key, value)
    both = SplitFilter(metadata=(("cam", "b"), ("file", "f3")))
    assert cat.filter_split(uid, "train", both).ordinals == brute_matches(items, both) == [403]


def test_publishing_splits_interleaved_indexes_each_split(cat: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "_FACET_ROWS", 7)  # PostgreSQL: facet rows written between COPYs
    with cat.publisher("main", "acme", "mixed", template={}, batch_size=4) as pub:
        for i in range(30):
            split = "a" if i % 3 else "b"
            pub.add(split, encode({"uid": f"{split}{i}", "image": {"paths": []}, "metadata": {"i": i},
                                   "classes": {split: {"instances": [{}], "multiInstances": []}}}))
    uid = pub.record.uid
    assert pub.record.splits == {"b": 10, "a": 20}
    assert cat.split_stats(uid, "a").instances == {"a": 20}
    assert cat.filter_split(uid, "b", SplitFilter(present=("b",))).total == 10
    assert cat.filter_split(uid, "a", SplitFilter(uid="a2")) == FilterPage(8, [1, 13, 14, 15, 16, 17, 18, 19])
    assert cat.filter_split(uid, "a", SplitFilter(metadata=(("i", "29"),))) == FilterPage(1, [19])
    assert cat.ordinal_of(uid, "b", "b27") == 9 and cat.ordinal_of(uid, "a", "b27") is None


def test_a_facet_cache_too_small_for_anything_still_answers(catalog_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_FACET_CACHE_BYTES", "1")
    with Catalog(catalog_url) as cat:
        cat.create_database("main")
        rows = [encode({"image": {"paths": []}, "classes": {"cat": {"instances": [
            {"boundingBox": {"rectangle": [[0, 0], [1, 1]], "confidence": i / 10}}], "multiInstances": []}}})
            for i in range(10)]
        uid = publish(cat, rows)
        for _ in range(2):
            assert cat.filter_split(uid, "train", SplitFilter(present=("cat",), min_confidence=0.75)) == \
                FilterPage(2, [8, 9])
    monkeypatch.setenv("HEADWATER_FACET_CACHE_BYTES", "lots")
    with pytest.raises(CatalogError, match="HEADWATER_FACET_CACHE_BYTES must be an integer, got 'lots'"):
        Catalog(catalog_url)


def test_a_rolled_back_publish_leaves_no_facets(cat: Catalog) -> None:
    with pytest.raises(RuntimeError), cat.publisher("main", "acme", "cats", template={}) as pub:
        pub.add_many("train", [encode({"uid": "x", "image": {"paths": []}, "classes": {}})] * 10)
        raise RuntimeError("stop")
    with cat.engine.connect() as conn:
        for table in ("split_facets", "facet_classes", "facet_uids", "facet_metadata"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0


# -- the URL query form -------------------------------------------------------------------------------------------
def test_query_parameters() -> None:
    flt = SplitFilter.from_query([("class", "cat"), ("class", HOSTILE), ("count", "a:b:2-5"), ("count", "dog:0-0"),
                                  ("count", "cow:3-"), ("count", "yak:-1"), ("count", "emu:4"), ("conf", ".5-"),
                                  ("uid", "img-1"), ("meta", "camera=front=left"), ("meta", "year=2021"),
                                  ("sample", "100"), ("seed", "-7"), ("page", "2"), ("uid", ""), ("class", "")])
    assert flt == SplitFilter(present=("cat", HOSTILE),
                              counts=(ClassCount("a:b", 2, 5), ClassCount("dog", 0, 0), ClassCount("cow", 3, None),
                                      ClassCount("yak", None, 1), ClassCount("emu", 4, 4)),
                              min_confidence=0.5, uid="img-1", metadata=(("camera", "front=left"), ("year", "2021")),
                              sample=100, seed=-7)
    assert SplitFilter.from_query(flt.to_query()) == flt
    assert SplitFilter.from_query({}) == SplitFilter() and SplitFilter().to_query() == []
    assert SplitFilter.from_query({"conf": "0-1"}).to_query() == [("conf", "0-1")]


def test_query_parameters_from_a_starlette_request_keep_repeated_names() -> None:
    from starlette.datastructures import QueryParams

    params = QueryParams("class=cat&class=dog&count=cat:1-&meta=a=1&meta=b=2&sample=")
    assert SplitFilter.from_query(params) == SplitFilter(present=("cat", "dog"), counts=(ClassCount("cat", 1),),
                                                         metadata=(("a", "1"), ("b", "2")))


@given(filters())
def test_to_query_and_from_query_are_inverses(flt: SplitFilter) -> None:
    assert SplitFilter.from_query(flt.to_query()) == flt


@pytest.mark.parametrize(("params", "message"), [
    ({"count": "cat"}, r"count='cat': expected CLASS:MIN-MAX"),
    ({"count": "cat:x-2"}, r"count='cat:x-2': expected CLASS:MIN-MAX"),
    ({"count": ":2"}, r"count=':2': expected CLASS:MIN-MAX"),
    ({"count": "cat:5-2"}, r"instance count of class 'cat': min 5 is above max 2"),
    ({"conf": "high"}, r"conf='high': expected LOW-HIGH"),
    ({"conf": "-"}, r"conf='-': expected LOW-HIGH"),
    ({"conf": "0.9-0.5"}, r"confidence range 0.9-0.5 is empty"),
    ({"meta": "novalue"}, r"meta='novalue': expected KEY=VALUE"),
    ({"meta": "=x"}, r"meta='=x': expected KEY=VALUE"),
    ({"sample": "0"}, r"sample must be an integer >= 1, got 0"),
    ({"sample": "ten"}, r"sample='ten': expected an integer"),
    ({"seed": "1.5"}, r"seed='1.5': expected an integer"),
    ([("uid", "a"), ("uid", "b")], r"uid is given twice \('a' and 'b'\); give it once"),
])
def test_bad_query_parameters_raise_one_line_filter_errors(params: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message) as caught:
        SplitFilter.from_query(params)
    assert isinstance(caught.value, ValueError | CatalogError | HeadwaterError) and "\n" not in str(caught.value)


def test_bad_filters_are_refused_when_built() -> None:
    with pytest.raises(FilterError, match="min_confidence must be a finite number"):
        SplitFilter(min_confidence=math.nan)
    with pytest.raises(FilterError, match="a class name must be a non-empty string"):
        SplitFilter(present=("",))
    with pytest.raises(FilterError, match="contains '=' and cannot be written"):
        SplitFilter(metadata=(("a=b", "c"),)).to_query()


# -- splits published before the facets existed ---------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return os.path.join(str(tmp_path), "old.sqlite")
    return str(request.getfixturevalue("postgres_database"))


def test_the_migration_backfills_splits_published_before_it(empty_url: str) -> None:
    items: list[dict[str, Any] | None] = [
        {"uid": f"u{i}", "image": {"paths": []}, "metadata": {"even": i % 2 == 0},
         "classes": {"cat": {"instances": [{"boundingBox": {"rectangle": [[0, 0], [0.1 * (i % 10), 0.5]],
                                                            "confidence": (i % 5) / 4}}] * (i % 4),
                             "multiInstances": []},
                     HOSTILE: {"instances": [], "multiInstances": [{}] * (i % 2)}}}
        for i in range(12_345)]
    engine = open_engine(empty_url, migrate_to_head=False)
    migrate(engine, "0004")
    with write_connection(engine) as conn:  # what a 0004 publisher wrote: no facets
        conn.execute(text("INSERT INTO databases (id, uid, name, public, created_at) "
                          "VALUES (1, 'db', 'main', false, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO repositories (id, database_id, namespace, name, created_at) "
                          "VALUES (1, 1, 'acme', 'cats', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO datasets (id, uid, repository_id, template, pools, created_at) "
                          "VALUES (1, 'ds', 1, '{}', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO splits (id, dataset_id, name, count) VALUES (1, 1, 'train', :n), "
                          "(2, 1, 'empty', 0)"), {"n": len(items)})
        conn.execute(text("INSERT INTO droplets (split_id, ordinal, data) VALUES (1, :o, :d)"),
                     [{"o": i, "d": encode(d) if d else b"1"} for i, d in enumerate(items)])
    engine.dispose()
    with Catalog(empty_url) as cat:  # opening migrates to head: 0005 indexes both splits
        assert cat.split_stats("ds", "train") == brute_stats(items)
        assert cat.split_stats("ds", "empty").count == 0
        for flt in [SplitFilter(present=("cat", HOSTILE)), SplitFilter(counts=(ClassCount("cat", 2, 3),)),
                    SplitFilter(min_confidence=0.5, max_confidence=0.75), SplitFilter(uid="u12"),
                    SplitFilter(metadata=(("even", "false"),), present=(HOSTILE,), max_confidence=0.25)]:
            expected = brute_matches(items, flt)
            assert cat.filter_split("ds", "train", flt, limit=20_000) == FilterPage(len(expected), expected)
        assert cat.ordinal_of("ds", "train", "u12344") == 12_344
