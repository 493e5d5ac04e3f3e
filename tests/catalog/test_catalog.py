"""Catalog behaviour on a real SQLite file and a real PostgreSQL server (``catalog_url`` runs both)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC

import pytest

from headwater.catalog import (
    Catalog,
    CatalogError,
    ConflictError,
    InvalidNameError,
    NotFoundError,
    OutOfRangeError,
)

TEMPLATE = {"kind": "ImageAnnotationTemplate", "classes": {"person": {"instances": {"boundingBox": True}},
                                                          "émoji 🐱": {}}}


@pytest.fixture
def cat(catalog_url: str) -> Iterator[Catalog]:
    c = Catalog(catalog_url)
    c.create_database("main")
    yield c
    c.close()


def rows(prefix: str, n: int) -> list[bytes]:
    return [b'{"%s":%d}' % (prefix.encode(), i) for i in range(n)]


# -- databases and repositories --------------------------------------------------------------------
def test_databases_by_name_and_uid(cat: Catalog) -> None:
    other = cat.create_database("other", public=True)
    assert [d.name for d in cat.databases()] == ["main", "other"]
    assert cat.database("other") == other
    assert cat.database(other.uid) == other
    assert other.public is True and cat.database("main").public is False
    assert other.created_at.tzinfo == UTC
    assert cat.query_databases("other") == [other]
    assert cat.query_databases("nope") == []
    with pytest.raises(NotFoundError, match="database 'nope' not found"):
        cat.database("nope")


def test_duplicate_database_is_a_conflict(cat: Catalog) -> None:
    with pytest.raises(ConflictError, match="database 'main' already exists"):
        cat.create_database("main")
    assert cat.create_database("main", exist_ok=True) == cat.database("main")
    assert len(cat.databases()) == 1


def test_repositories(cat: Catalog) -> None:
    repo = cat.create_repository("main", "zeta", "b")
    cat.create_repository("main", "alpha", "x")
    assert repo.slug == "zeta/b" and repo.database == cat.database("main").uid and repo.database_name == "main"
    assert cat.create_repository("main", "zeta", "b") == repo  # exist_ok by default
    with pytest.raises(ConflictError, match="repository 'zeta/b' already exists in database 'main'"):
        cat.create_repository("main", "zeta", "b", exist_ok=False)
    assert [r.slug for r in cat.repositories("main")] == ["alpha/x", "zeta/b"]
    assert cat.repository("main", "zeta", "b") == repo
    with pytest.raises(NotFoundError, match="repository 'zeta/nope' not found in database 'main'"):
        cat.repository("main", "zeta", "nope")
    with pytest.raises(NotFoundError, match="database 'nope' not found"):
        cat.repositories("nope")


BAD_NAMES = ["", "a/b", "a b", "../x", "x:y", "-x", ".hidden", "a" * 129, "tab\t", "ü", 5]


def test_bad_names_are_refused(cat: Catalog) -> None:
    for bad in BAD_NAMES:
        with pytest.raises(InvalidNameError, match="invalid database name"):
            cat.create_database(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidNameError, match="invalid namespace"):
            cat.create_repository("main", bad, "x")  # type: ignore[arg-type]
        with pytest.raises(InvalidNameError, match="invalid repository name"):
            cat.create_repository("main", "x", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidNameError, match="invalid tag"):
            cat.publish("main", "x", "y", template={}, splits={"train": []}, tags=[bad])  # type: ignore[list-item]
        with pytest.raises(InvalidNameError, match="invalid split name"):
            cat.publish("main", "x", "y", template={}, splits={bad: []})  # type: ignore[dict-item]
        with pytest.raises(InvalidNameError, match="invalid pool name"):
            cat.publish("main", "x", "y", template={}, splits={}, pools={bad: "file:///p"})  # type: ignore[dict-item]
    assert cat.repositories("main") == []  # nothing half-made by the refused calls
    assert [d.name for d in cat.databases()] == ["main"]
    assert isinstance(InvalidNameError("x"), ValueError)


def test_good_names(cat: Catalog) -> None:
    for name in ["a", "A-1", "coco_2017.v2", "x" * 128, "0"]:
        cat.create_repository("main", name, name)
    assert len(cat.repositories("main")) == 5


# -- publishing ------------------------------------------------------------------------------------
def test_publish_round_trip(cat: Catalog) -> None:
    ds = cat.publish("main", "acme", "cats", template=TEMPLATE,
                     splits={"train": rows("t", 5), "validation": rows("v", 2), "empty": []},
                     pools={"images": "hf://datasets/acme/cats@main"})
    uuid.UUID(ds.uid)  # a uuid (raises otherwise)
    assert ds.splits == {"train": 5, "validation": 2, "empty": 0}
    assert ds.template == TEMPLATE and list(ds.template["classes"]) == ["person", "émoji 🐱"]
    assert ds.pools == {"images": "hf://datasets/acme/cats@main"}
    assert ds.created_at.tzinfo == UTC
    again = cat.dataset_by_uid(ds.uid)
    assert again == ds
    assert cat.dataset("main", "acme", "cats", "latest") == ds
    assert cat.dataset("main", "acme", "cats", ds.uid) == ds
    assert list(cat.read_range(ds.uid, "train")) == rows("t", 5)
    assert list(cat.read_range(ds.uid, "empty")) == []
    assert cat.split_count(ds.uid, "validation") == 2 and cat.split_count(ds.uid, "empty") == 0


def test_template_given_as_json_text_is_kept_as_given(cat: Catalog) -> None:
    text = '{"kind": "ImageAnnotationTemplate", "classes": {"b": {}, "a": {}}}'
    ds = cat.publish("main", "acme", "cats", template=text, splits={})
    assert list(cat.dataset_by_uid(ds.uid).template["classes"]) == ["b", "a"]
    with pytest.raises(CatalogError, match="template must be a JSON object"):
        cat.publish("main", "acme", "cats", template="[1, 2]", splits={})
    with pytest.raises(CatalogError, match="template is not valid JSON"):
        cat.publish("main", "acme", "cats", template=b"{nope", splits={})


def test_publisher_interleaved_splits_get_contiguous_ordinals(cat: Catalog) -> None:
    with cat.publisher("main", "acme", "cats", template=TEMPLATE, batch_size=3) as pub:
        assert [pub.add("train", b"t0"), pub.add("val", b"v0"), pub.add("train", b"t1")] == [0, 0, 1]
        assert pub.add_many("val", [b"v1", bytearray(b"v2"), memoryview(b"v3")]) == 3
        assert pub.add_many("train", iter([b"t2", b"t3"])) == 2
        assert pub.add("train", b"t4") == 4
        pub.tag("latest")
        pub.tag("v1")
        with pytest.raises(CatalogError, match="not published yet"):
            pub.record  # noqa: B018 - reading the property is what raises
    ds = pub.record
    assert ds.uid == pub.uid and ds.splits == {"train": 5, "val": 4}
    assert list(cat.read_range(ds.uid, "train")) == [b"t0", b"t1", b"t2", b"t3", b"t4"]
    assert cat.read_ordinals(ds.uid, "val", [3, 0, 2, 1]) == [b"v3", b"v0", b"v2", b"v1"]
    assert {t.tag for t in cat.tags("main", "acme", "cats")} == {"latest", "v1"}
    with pytest.raises(CatalogError, match="inside its `with` block"):
        pub.add("train", b"late")


def test_publisher_bulk_lists_cross_batches_in_order(cat: Catalog) -> None:
    """A list of good bytes takes add_many's bulk path (checked by C loops); ordinals stay contiguous across
    batch flushes and interleaved adds, and a list with one bad item still names it."""
    with cat.publisher("main", "acme", "cats", template=TEMPLATE, batch_size=4) as pub:
        assert pub.add("train", b"t0") == 0
        assert pub.add_many("train", [b"t%d" % i for i in range(1, 11)]) == 10
        assert pub.add_many("val", [b"v0", b"v1"]) == 2
        assert pub.add("train", b"t11") == 11
        assert pub.add_many("train", []) == 0
    ds = pub.record
    assert ds.splits == {"train": 12, "val": 2}
    assert list(cat.read_range(ds.uid, "train")) == [b"t%d" % i for i in range(12)]
    with (pytest.raises(CatalogError, match="droplet 5 of split 'train' contains a newline"),
          cat.publisher("main", "acme", "cats", template=TEMPLATE, batch_size=4) as pub):
        pub.add_many("train", [b"a", b"b", b"c", b"d", b"e", b"f\ng", b"h"])


def test_exception_inside_publisher_rolls_everything_back(catalog_url: str) -> None:
    writer = Catalog(catalog_url)
    writer.create_database("main")
    kept = writer.publish("main", "acme", "dogs", template={}, splits={"train": rows("d", 3)})
    with (pytest.raises(RuntimeError, match="boom"),
          writer.publisher("main", "acme", "cats", template=TEMPLATE, batch_size=10) as pub):
            pub.add_many("train", rows("t", 95))  # several batches already written in the transaction
            pub.tag("latest")
            raise RuntimeError("boom")
    with (pytest.raises(RuntimeError, match="boom"),
          writer.publisher("main", "acme", "dogs", template=TEMPLATE, batch_size=10) as pub2):
            pub2.add_many("train", rows("x", 25))
            pub2.tag("latest")
            raise RuntimeError("boom")
    reader = Catalog(catalog_url)  # a second, independent catalog object on the same database
    try:
        assert [r.slug for r in reader.repositories("main")] == ["acme/dogs"]  # acme/cats never appeared
        with pytest.raises(NotFoundError):
            reader.dataset_by_uid(pub.uid)
        with pytest.raises(NotFoundError):
            reader.dataset_by_uid(pub2.uid)
        assert reader.dataset("main", "acme", "dogs", "latest") == kept
        assert [d.uid for d in reader.datasets("main", "acme", "dogs")] == [kept.uid]
        assert len(reader.tag_history("main", "acme", "dogs")) == 1
        with pytest.raises(CatalogError, match="not published yet"):
            pub.record  # noqa: B018 - reading the property is what raises
    finally:
        reader.close()
        writer.close()


def test_bad_droplet_bytes_are_refused_and_nothing_is_published(cat: Catalog) -> None:
    for bad, message in [("text", "expected bytes, got str"), (b"", "is empty"),
                         (b'{"a":\n1}', "contains a newline"), (None, "expected bytes")]:
        with pytest.raises(CatalogError, match=f"droplet 2 of split 'train'.*{message}"):
            cat.publish("main", "acme", "cats", template={}, splits={"train": [b"a", b"b", bad]})  # type: ignore[list-item]
        with (pytest.raises(CatalogError, match=f"droplet 1 of split 'val'.*{message}"),
              cat.publisher("main", "acme", "cats", template={}) as pub):
                pub.add("val", b"ok")
                pub.add("val", bad)  # type: ignore[arg-type]
    assert cat.repositories("main") == []


def test_publish_into_missing_database(cat: Catalog) -> None:
    with pytest.raises(NotFoundError, match="database 'nope' not found"):
        cat.publish("nope", "acme", "cats", template={}, splits={})


# -- datasets are immutable; tags move and keep their history --------------------------------------
def test_new_versions_never_change_old_ones(cat: Catalog) -> None:
    v1 = cat.publish("main", "acme", "cats", template={"v": 1}, splits={"train": rows("a", 4)})
    v2 = cat.publish("main", "acme", "cats", template={"v": 2}, splits={"train": rows("b", 2), "val": rows("c", 1)})
    assert v1.uid != v2.uid
    assert cat.dataset("main", "acme", "cats", v1.uid) == v1
    assert list(cat.read_range(v1.uid, "train")) == rows("a", 4)
    assert cat.dataset("main", "acme", "cats", "latest") == v2
    assert [d.uid for d in cat.datasets("main", "acme", "cats")] == [v1.uid, v2.uid]
    public = {name for name in dir(cat) if not name.startswith("_")}
    assert not {n for n in public if n.startswith(("update", "delete", "remove", "append", "set_", "replace"))}


def test_tags_move_and_every_move_is_kept(cat: Catalog) -> None:
    v1 = cat.publish("main", "acme", "cats", template={}, splits={"train": rows("a", 3)}, tags=["latest", "stable"])
    v2 = cat.publish("main", "acme", "cats", template={}, splits={"train": rows("b", 5)})
    (latest, stable) = cat.tags("main", "acme", "cats")
    assert (latest.tag, latest.dataset, latest.splits) == ("latest", v2.uid, {"train": 5})
    assert (stable.tag, stable.dataset, stable.splits) == ("stable", v1.uid, {"train": 3})
    moved = cat.move_tag("main", "acme", "cats", "latest", v1.uid)
    assert moved.dataset == v1.uid and moved.updated_at_ms >= latest.updated_at_ms
    assert cat.dataset("main", "acme", "cats", "latest") == v1
    assert cat.move_tag("main", "acme", "cats", "latest", v1.uid).dataset == v1.uid  # not a move: no event
    cat.move_tag("main", "acme", "cats", "new-tag", v2.uid)

    history = cat.tag_history("main", "acme", "cats", "latest")
    assert [(e.dataset, e.previous) for e in history] == [(v1.uid, None), (v2.uid, v1.uid), (v1.uid, v2.uid)]
    times = [e.moved_at for e in history]
    assert times == sorted(times) and all(t.tzinfo == UTC for t in times)
    assert history[-1].moved_at_ms == moved.updated_at_ms
    everything = cat.tag_history("main", "acme", "cats")
    assert [e.tag for e in everything] == ["latest", "stable", "latest", "latest", "new-tag"]
    tag_now = {t.tag: t for t in cat.tags("main", "acme", "cats")}
    assert tag_now["latest"].updated_at_ms == history[-1].moved_at_ms
    assert tag_now["stable"].updated_at_ms == history[0].moved_at_ms


def test_tag_errors(cat: Catalog) -> None:
    ds = cat.publish("main", "acme", "cats", template={}, splits={})
    other = cat.publish("main", "acme", "dogs", template={}, splits={})
    with pytest.raises(NotFoundError, match=f"no tag or dataset '{other.uid}' in repository 'acme/cats'"):
        cat.move_tag("main", "acme", "cats", "latest", other.uid)
    with pytest.raises(NotFoundError, match="no tag or dataset 'v9' in repository 'acme/cats' of database 'main'"):
        cat.dataset("main", "acme", "cats", "v9")
    with pytest.raises(NotFoundError, match="tag 'v9' not found in repository 'acme/cats'"):
        cat.tag_history("main", "acme", "cats", "v9")
    with pytest.raises(NotFoundError, match="no tag or dataset"):  # a uid from another repository
        cat.dataset("main", "acme", "cats", other.uid)
    with pytest.raises(InvalidNameError):
        cat.move_tag("main", "acme", "cats", "bad tag", ds.uid)
    with pytest.raises(NotFoundError, match="dataset 'nope' not found"):
        cat.dataset_by_uid("nope")


# -- split contents --------------------------------------------------------------------------------
@pytest.fixture
def big(cat: Catalog) -> tuple[Catalog, str, list[bytes]]:
    data = rows("r", 1234)
    ds = cat.publish("main", "acme", "cats", template={}, splits={"train": data, "val": []})
    return cat, ds.uid, data


def test_read_range_pages(big: tuple[Catalog, str, list[bytes]]) -> None:
    cat, uid, data = big
    for start, stop, batch in [(0, 1234, 2048), (0, 1234, 7), (5, 6, 1), (100, 1000, 99), (1233, 1234, 3),
                               (600, 600, 5), (0, 0, 1), (0, 1234, 1234), (0, 1234, 617)]:
        assert list(cat.read_range(uid, "train", start, stop, batch_size=batch)) == data[start:stop]


def test_read_range_chunks_cover_the_split(big: tuple[Catalog, str, list[bytes]]) -> None:
    cat, uid, data = big
    n = 7
    bounds = [(len(data) * k // n, len(data) * (k + 1) // n) for k in range(n)]
    assert [x for a, b in bounds for x in cat.read_range(uid, "train", a, b, batch_size=50)] == data
    assert list(cat.read_range(uid, "train", 1200)) == data[1200:]


def test_read_range_blocks_are_the_pages_in_order(big: tuple[Catalog, str, list[bytes]]) -> None:
    cat, uid, data = big
    for start, stop, batch in [(0, 1234, 8192), (0, 1234, 7), (5, 6, 1), (100, 1000, 99), (1233, 1234, 3),
                               (600, 600, 5), (0, 1234, 617)]:
        blocks = list(cat.read_range_blocks(uid, "train", start, stop, batch_size=batch))
        assert [b.count(b"\n") for b in blocks] == [min(batch, stop - p) for p in range(start, stop, batch)]
        assert b"".join(blocks) == b"".join(d + b"\n" for d in data[start:stop])
    assert list(cat.read_range_blocks(uid, "val")) == []
    with pytest.raises(OutOfRangeError, match=r"range \[0, 1235\) is outside split 'train'"):
        cat.read_range_blocks(uid, "train", 0, 1235)


def test_read_range_blocks_read_a_page_with_a_gap_like_read_range(big: tuple[Catalog, str, list[bytes]]) -> None:
    """A page the database does not return whole (here a row deleted behind the catalog's back) is read row by
    row instead: the blocks hold exactly what :meth:`read_range` gives."""
    cat, uid, data = big
    with cat.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM droplets WHERE ordinal = 700")
    expected = list(cat.read_range(uid, "train", 0, 1234, batch_size=300))
    assert expected == data[:700] + data[701:]
    assert b"".join(cat.read_range_blocks(uid, "train", 0, 1234, batch_size=300)) == \
        b"".join(d + b"\n" for d in expected)


def test_read_range_blocks_of_a_page_longer_than_sqlites_longest_value(tmp_path: object) -> None:
    """SQLite refuses to build a value longer than its length limit (1 GB by default; 2,000 bytes here):
    such a page is read row by row, the same blocks."""
    import sqlite3

    from sqlalchemy import event

    cat = Catalog(os.path.join(str(tmp_path), "catalog.sqlite"))
    event.listen(cat.engine, "connect", lambda conn, _record: conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 2000))
    cat.engine.dispose()  # connections from now on have the limit
    cat.create_database("main")
    data = rows("long-droplet-" * 10, 100)  # ~140 bytes each: a page of 50 is ~7,000 bytes
    ds = cat.publish("main", "acme", "cats", template={}, splits={"train": data})
    with cat.engine.connect() as conn, pytest.raises(Exception, match="string or blob too big"):
        conn.exec_driver_sql("SELECT group_concat(data, '') FROM droplets").fetchall()  # the limit holds
    blocks = list(cat.read_range_blocks(ds.uid, "train", batch_size=50))
    assert blocks == [b"".join(d + b"\n" for d in data[:50]), b"".join(d + b"\n" for d in data[50:])]
    cat.close()


def test_read_range_refuses_out_of_range(big: tuple[Catalog, str, list[bytes]]) -> None:
    cat, uid, _ = big
    for start, stop in [(-1, 5), (0, 1235), (10, 5)]:
        with pytest.raises(OutOfRangeError, match=rf"range \[{start}, {stop}\) is outside split 'train'"):
            cat.read_range(uid, "train", start, stop)
    with pytest.raises(OutOfRangeError):
        cat.read_range(uid, "val", 0, 1)
    with pytest.raises(NotFoundError, match=r"split 'test' not found in dataset .* \(splits: \['train', 'val'\]\)"):
        cat.read_range(uid, "test")
    with pytest.raises(NotFoundError, match="dataset 'nope' not found"):
        cat.split_count("nope", "train")


def test_read_ordinals(big: tuple[Catalog, str, list[bytes]]) -> None:
    cat, uid, data = big
    wanted = [1233, 0, 17, 17, 600, *range(1200, 100, -2)]  # > one IN batch, repeats, any order
    assert cat.read_ordinals(uid, "train", wanted) == [data[i] for i in wanted]
    assert cat.read_ordinals(uid, "train", []) == []
    with pytest.raises(OutOfRangeError, match="ordinal 1234 is outside split 'train'"):
        cat.read_ordinals(uid, "train", [3, 1234])
    with pytest.raises(OutOfRangeError, match="ordinal -1 is outside"):
        cat.read_ordinals(uid, "train", [-1])
    with pytest.raises(OutOfRangeError):
        cat.read_ordinals(uid, "val", [0])
