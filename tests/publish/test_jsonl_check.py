"""Pass 1 of a JSONL source in blocks, in this process or on worker processes: the same plan, the same
problems in the same order, the same bytes written."""

from __future__ import annotations

import json

import pytest

from headwater.catalog import Catalog
from headwater.publish import JsonlSource, PublishError, jsonl_check, prepare_publish, publish
from headwater.publish.jsonl_check import check_jsonl

from ..support.datasets import box, droplet, make_image
from ..support.facet_tables import facet_tables


def mixed_lines(tmp_path, n: int = 3000) -> list[str]:
    make_image(str(tmp_path / "a.png"))
    legacy = droplet("https://h/legacy.jpg", "legacy", {"cat": {"instances": [{"attributes": {"color": "red"}}]}})
    lines = []
    for i in range(n):
        kp = {"keypoints": {"nose": {"point": [0.5, 0.5]}}} if i % 3 == 0 else {}
        lines.append(json.dumps({**droplet(f"https://h/{i}.jpg", f"u{i}",
                                           {"cat": {"instances": [{**box(0.1, 0.1, 0.5, 0.5), **kp}]}}),
                                 **({"split": "validation"} if i % 7 == 0 else {})}))
        if i % 500 == 1:
            lines.append("")
            lines.append(json.dumps(legacy).replace("legacy", f"legacy{i}"))
            lines.append(json.dumps({**droplet("a.png", f"local{i}")}))
    return lines


@pytest.mark.parametrize("block_size", [300, 1 << 20])
def test_blocks_on_workers_plan_what_this_process_plans(tmp_path, monkeypatch, block_size):
    monkeypatch.setattr(jsonl_check, "BLOCK_SIZE", block_size)  # many blocks, lines cut across reads
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(mixed_lines(tmp_path)) + "\n")
    plans = {}
    for workers in (0, 2):
        plan = prepare_publish(str(path), splits={"test": 0.2}, silent=True, keep_encoded=True, workers=workers)
        written = [(split, batch) for kept in plan.encoded if kept is not None
                   for split, batch, _facts in kept.batches()]
        plans[workers] = (plan.counts, plan.droplets, plan.template, plan.images, written)
        plan.close()
    assert plans[0] == plans[2]
    counts, droplets, template, images, _written = plans[0]
    assert droplets == sum(counts.values()) == 3000 + 2 * 6
    assert counts["validation"] == 429 and set(counts) == {"train", "test", "validation"}
    # inferred from every droplet, the legacy (full path) ones too, in first-seen order
    assert template["classes"]["cat"]["instances"] == {"boundingBox": True, "keypoints": ["nose"],
                                                       "attributes": {"color": ["red"]}}
    assert len(images) == 1


def test_problems_are_the_same_and_in_line_order_on_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl_check, "BLOCK_SIZE", 500)
    lines = mixed_lines(tmp_path, 400)
    lines[5] = "{not json"
    lines[50] = json.dumps(droplet("https://h/x.jpg", "u7"))  # a duplicate uid
    lines[120] = json.dumps(droplet("pool://nowhere/1.jpg"))
    lines[300] = json.dumps(droplet("https://h/y.jpg", None, {"cat": {"instances": [box(0.5, 0.5, 1.5, 0.9)]}}))
    lines[301] = json.dumps({**droplet("https://h/z.jpg"), "split": 7})
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    shown = {}
    for workers in (0, 2):
        with pytest.raises(PublishError) as info:
            prepare_publish(str(path), silent=True, workers=workers)
        shown[workers] = [(p.where, p.message) for p in info.value.problems]
    assert shown[0] == shown[2]
    assert [where for where, _ in shown[0]] == ["line 6", "line 121", "line 301", "line 302", "line 51"]  # uids last


@pytest.mark.parametrize("workers", [0, 2])
def test_a_last_line_without_newline_and_gzip(tmp_path, monkeypatch, workers):
    """Blocks a worker reads from the file itself (by offset) and blocks sent whole (.gz, a last line
    without its newline) give the same lines."""
    import gzip

    monkeypatch.setattr(jsonl_check, "BLOCK_SIZE", 100)
    text = "\n".join(json.dumps(droplet(f"https://h/{i}.jpg", f"u{i}")) for i in range(5))  # no final newline
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "d.jsonl").write_text(text)
    for name in ("d.jsonl.gz", "d.jsonl"):
        blocks = list(check_jsonl(JsonlSource(str(tmp_path / name)), None, strict=False, infer=False,
                                  workers=workers))
        assert [g[0] for b in blocks for g in b.good] == [1, 2, 3, 4, 5]
        assert [g[1] for b in blocks for g in b.good] == [f"u{i}" for i in range(5)]


def facet_lines(tmp_path) -> list[str]:
    """Droplets with every kind of facet: confidences or none, multi-instances only, a uid on the image or too
    long to index, metadata keys with few values and with too many (one row a droplet), a local image (its path
    rewritten to a pool ref) and legacy attributes (the full path), in interleaved splits."""
    make_image(str(tmp_path / "a.png"))
    lines = []
    for i in range(1500):
        rect = box(0.01 * (i % 50), 0.1, 0.6, 0.2 + 0.0005 * i)
        if i % 4:
            rect["boundingBox"]["confidence"] = (i % 97) / 96
        classes = {"cat": {"instances": [rect] * (i % 4), "multiInstances": []},
                   "dog": {"instances": [], "multiInstances": [{"instances": []}] * (i % 3 == 0)}}
        d = droplet("a.png" if i == 7 else f"https://h/{i}.jpg", None if i % 5 == 0 else f"u{i}", classes)
        if i % 5 == 0:
            d["image"]["uid"] = f"img{i}" if i % 10 else "x" * 1200
        d["metadata"] = {"camera": f"c{i % 3}", "frame": i, "ok": i % 2 == 0, "nested": {"a": 1}, "none": None}
        d["split"] = ["train", "validation", "train", "test"][i % 4]
        lines.append(json.dumps(d))
        if i % 400 == 1:
            lines.append(json.dumps(droplet(f"https://h/legacy{i}.jpg", f"legacy{i}", {"cat": {"instances": [
                {**box(0.1, 0.1, 0.3, 0.3), "attributes": {"color": "red"}}]}})))
    return lines


def test_facets_packed_on_workers_equal_the_publishers_own(tmp_path, monkeypatch, catalog_url):
    """``headwater publish`` on worker processes hands the catalog facets computed there; a plain
    ``Publisher.add_many`` of the same bytes computes them itself: the facet tables are the same."""
    monkeypatch.setattr(jsonl_check, "BLOCK_SIZE", 20_000)  # many blocks
    monkeypatch.setattr(jsonl_check, "PARALLEL_MIN_BYTES", 0)  # workers for a small file
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(facet_lines(tmp_path)) + "\n")
    if jsonl_check.default_workers(JsonlSource(str(path))) == 0:
        pytest.skip("one core: `headwater publish` checks in its own process")
    plan = prepare_publish(str(path), silent=True, keep_encoded=True, workers=2, images=str(tmp_path))
    batches = [batch for kept in plan.encoded if kept is not None for batch in kept.batches()]
    plan.close()
    assert len(batches) > 100 and all(facts is not None and len(facts) == len(lines) for _s, lines, facts in batches)
    with Catalog(catalog_url) as cat:
        cat.create_database("main")
        record = publish(cat, "main", "acme", "workers", str(path), images=str(tmp_path),
                         pool_dir=str(tmp_path / "pool"), silent=True)
        assert record.splits == {"train": 754, "validation": 375, "test": 375}  # the legacy ones: train
        with cat.publisher("main", "acme", "plain", template={}) as pub:
            for split, count in record.splits.items():
                assert pub.add_many(split, list(cat.read_range(record.uid, split))) == count
        plain = pub.record
        assert plain.splits == record.splits
        workers, itself = facet_tables(cat, record.uid), facet_tables(cat, plain.uid)
        assert workers == itself
        train = workers["train"]
        assert [row[1] for row in train["facet_classes"]] == [b"dog", b"cat"]  # first seen first
        assert len(train["facet_metadata"]) == 750 and {row[0] for row in train["facet_values"]} == {
            b"camera", b"ok"}
        assert len(train["facet_uids"]) == 750 - 150 + 4  # the image uids too long to index: none
