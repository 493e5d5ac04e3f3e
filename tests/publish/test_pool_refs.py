"""Pool-ref member checks in batches: the same problems, in line order, as one lookup per ref would give."""

from __future__ import annotations

import os

import pytest

from headwater.archive import pack_directory
from headwater.droplet import ImageFetcher
from headwater.publish import PublishError, prepare_publish
from headwater.publish.pool_refs import PoolRefCheck

from ..support.datasets import droplet, write_jsonl


@pytest.fixture
def old_pool(tmp_path) -> str:
    """A pool with members 0.jpg … 9.jpg, two members whose names end in a.jpg, and a resource of two files."""
    src = tmp_path / "old-src"
    for name in [f"{i}.jpg" for i in range(10)] + ["train/a.jpg", "val/a.jpg", "notes.txt", "notes.json"]:
        os.makedirs(os.path.dirname(src / name), exist_ok=True)
        (src / name).write_bytes(b"bytes of " + name.encode())
    pack_directory(str(src), str(tmp_path / "old"), silent=True)
    return str(tmp_path / "old")


def test_a_batch_boundary_inside_a_run_of_bad_refs_keeps_line_order(tmp_path, old_pool):
    # 4,200 droplets: the 16th batch of the default size (256 lookups) ends on line 4096, inside the run of
    # bad refs on lines 4090-4105; a missing local image (found at once, not in a batch) sits in that run,
    # the last line is resolved by the final batch.
    rows = [droplet(f"pool://old/{i % 10}.jpg", f"d{i}") for i in range(1, 4201)]
    bad = [2, *range(4090, 4106)]
    for line in bad:
        rows[line - 1] = droplet(f"pool://old/x{line}.jpg", f"d{line}")
    rows[4098 - 1] = droplet("no/such.png", "d4098")
    rows[4200 - 1] = droplet("pool://old/a.jpg", "d4200")  # two members match
    path = write_jsonl(str(tmp_path / "d.jsonl"), rows)
    with pytest.raises(PublishError) as info:
        prepare_publish(path, pools={"old": old_pool}, check_members=lambda _location: True, silent=True)
    got = [(p.where, p.message) for p in info.value.problems]
    expected = [(f"line {n}", f"image pool://old/x{n}.jpg: resource 'x{n}' is not in pool 'old' (at $.image.paths[0])")
                if n != 4098 else ("line 4098", got[9][1]) for n in bad]
    expected.append(("line 4200", ("image pool://old/a.jpg: 2 members match 'a.jpg' (['train/a.jpg', 'val/a.jpg']); "
                                   "use the full member path (at $.image.paths[0])")))
    assert got == expected
    assert got[9][1].startswith("image 'no/such.png' not found")
    assert info.value.total == len(bad) + 1
    # with a cap, the first problems in line order are shown (not the first ones found), and all are counted
    with pytest.raises(PublishError) as info:
        prepare_publish(path, pools={"old": old_pool}, check_members=lambda _location: True, max_problems=3,
                        silent=True)
    assert [p.where for p in info.value.problems] == ["line 2", "line 4090", "line 4091"]
    assert info.value.total == len(bad) + 1


def test_batched_check_gives_what_one_lookup_per_ref_gives(old_pool):
    refs = ["pool://old/1.jpg", "pool://old/11.jpg", "pool://old/12", "pool://old/a.jpg", "pool://old/notes",
            "pool://old/train/a.jpg", "pool://old/3.png", "pool://old/4", "pool://old/notes.txt", "pool://old/13"]
    fetcher = ImageFetcher({"old": old_pool})
    one_by_one = []
    for n, ref in enumerate(refs):
        try:
            fetcher.locate(ref)
        except Exception as err:  # noqa: BLE001 - the error is what is compared
            one_by_one.append((n, f"image {err} (at $.x)"))
    assert [n for n, _ in one_by_one] == [1, 2, 3, 4, 6, 9]
    assert "2 members match 'a.jpg'" in one_by_one[2][1] and "several files" in one_by_one[3][1]
    check: PoolRefCheck[int] = PoolRefCheck({"old": old_pool}, batch=3)
    got = []
    for n, ref in enumerate(refs):
        assert check.problem(n, ref, "$.x") is None
        got += check.resolved()
        assert len(check._queued) < 3  # a full batch is resolved at once
    got += check.resolved(final=True)
    assert got == one_by_one
    assert check.resolved(final=True) == []
