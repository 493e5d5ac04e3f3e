"""The seeded split rule: deterministic, close to the asked fractions, stable as items are added."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from headwater.publish import PublishError, SplitRule, publish

from ..support.datasets import droplet, new_catalog, write_jsonl


def assign(rule: SplitRule, keys: list[str]) -> dict[str, str]:
    return {k: rule(k) for k in keys}


def test_rule_is_deterministic_across_processes():
    keys = [f"img-{i}" for i in range(50)]
    here = [SplitRule({"validation": 0.3}, seed=5)(k) for k in keys]
    code = ("from headwater.publish import SplitRule; r = SplitRule({'validation': 0.3}, seed=5); "
            f"print(','.join(r(k) for k in {keys!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip().split(",") == here


def test_fractions_are_approximately_right():
    rule = SplitRule({"validation": 0.05, "test": 0.10}, seed=0)
    counts: dict[str, int] = {}
    n = 20_000
    for i in range(n):
        split = rule(f"{i:08d}.jpg")
        counts[split] = counts.get(split, 0) + 1
    assert set(counts) == {"validation", "test", "train"}
    # binomial standard deviation at n=20000 is < 0.5%; allow ~4 sigma
    assert abs(counts["validation"] / n - 0.05) < 0.007
    assert abs(counts["test"] / n - 0.10) < 0.009
    assert abs(counts["train"] / n - 0.85) < 0.011


def test_adding_items_never_moves_existing_ones_and_seed_matters():
    rule = SplitRule({"validation": 0.2}, seed=1)
    before = assign(rule, [f"a{i}" for i in range(500)])
    after = assign(rule, [f"a{i}" for i in range(1500)])
    assert all(after[k] == v for k, v in before.items())
    other = assign(SplitRule({"validation": 0.2}, seed=2), list(before))
    assert other != before


def test_growing_a_fraction_only_moves_items_into_it():
    keys = [f"k{i}" for i in range(3000)]
    small = assign(SplitRule({"validation": 0.05}, seed=3), keys)
    large = assign(SplitRule({"validation": 0.20}, seed=3), keys)
    assert all(large[k] == "validation" for k, v in small.items() if v == "validation")
    moved = [k for k in keys if small[k] != large[k]]
    assert moved and all(small[k] == "train" and large[k] == "validation" for k in moved)


def test_rule_refuses_bad_fractions():
    with pytest.raises(PublishError, match="more than 1"):
        SplitRule({"a": 0.7, "b": 0.4})
    with pytest.raises(PublishError, match=r"must lie in \[0, 1\]"):
        SplitRule({"a": -0.1})
    assert SplitRule({"a": 0.5, "b": 0.5}, rest="c").names() == ["a", "b", "c"]


def test_publish_splits_by_rule_with_explicit_splits_winning(tmp_path):
    rows = [droplet(f"https://h/{i}.jpg", uid=f"u{i}") for i in range(400)]
    rows[0]["split"] = "holdout"  # a JSONL "split" field is explicit and wins over the rule
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    cat = new_catalog(str(tmp_path))
    record = publish(cat, "main", "a", "b", path, splits={"validation": 0.25}, split_seed=9, silent=True)
    rule = SplitRule({"validation": 0.25}, seed=9)
    expected: dict[str, list[str]] = {}
    for i in range(1, 400):
        expected.setdefault(rule(f"u{i}"), []).append(f"u{i}")
    expected["holdout"] = ["u0"]
    assert record.splits == {k: len(v) for k, v in expected.items()}
    for split, uids in expected.items():
        got = [msgspec.json.decode(b)["uid"] for b in cat.read_range(record.uid, split, 0, None)]
        assert got == uids  # source order kept inside each split
    assert "split" not in msgspec.json.decode(next(iter(cat.read_range(record.uid, "holdout", 0, 1))))
    # the same source and seed publish the same assignment again
    again = publish(cat, "main", "a", "b", path, splits={"validation": 0.25}, split_seed=9, silent=True)
    assert again.splits == record.splits and again.uid != record.uid


def test_publish_split_name_and_default(tmp_path):
    path = write_jsonl(str(tmp_path / "d.jsonl"), [droplet("https://h/1.jpg"), droplet("https://h/2.jpg")])
    cat = new_catalog(str(tmp_path))
    assert publish(cat, "main", "a", "b", path, splits="validation", silent=True).splits == {"validation": 2}
    assert publish(cat, "main", "a", "c", path, default_split="training", silent=True).splits == {"training": 2}
    with pytest.raises(PublishError, match="invalid split name"):
        publish(cat, "main", "a", "d", path, splits={"bad name": 0.5}, silent=True)
