"""UidCheck: every repeat found among many uids (hashes kept in buckets), named with its first place."""

from __future__ import annotations

from headwater.publish.unique_uids import UidCheck


def test_repeats_among_many_uids_are_found_in_order():
    uids = [f"img-{i}" for i in range(50_000)]
    uids[30_000] = "img-7"      # a repeat far from its first place
    uids[49_999] = "img-7"      # and another
    uids[40_000] = "img-29999"  # a repeat of a later uid's neighbour
    check = UidCheck()
    for uid in uids[:20_000]:
        check.add(uid)
    assert not check.suspected  # no repeat yet …
    for uid in uids[20_000:]:
        check.add(uid)
    assert check.suspected      # … one once the rest is added
    items = [(f"line {n + 1}", uid) for n, uid in enumerate(uids)]
    assert check.problems(items) == [
        ("line 30001", "duplicate uid 'img-7': line 8 has it too (every droplet of a dataset needs its own uid)"),
        ("line 40001", ("duplicate uid 'img-29999': line 30000 has it too (every droplet of a dataset needs its "
                        "own uid)")),
        ("line 50000", "duplicate uid 'img-7': line 8 has it too (every droplet of a dataset needs its own uid)"),
    ]


def test_no_uids_no_problems():
    check = UidCheck()
    assert not check.suspected and check.problems([]) == []
