"""Each droplet ``uid`` at most once per publish, and a duplicate named by both of its places.

Why: two droplets with one uid (``cat-1`` twice) make a dataset whose uid no longer names one droplet —
counts look right (``train=4``) while a lookup, a join with predictions or an evaluation silently keeps one
of the two. So a publish with a repeated uid is refused, naming the second occurrence and the first.

Memory: pass 1 keeps one 64-bit hash per uid in ``array('q')`` buckets — ~9 bytes a droplet (~90 MB for
10M droplets with uids; a Python set of the hashes took ~70 bytes a droplet) — not the uids. The bucket is
chosen by the hash's low bits, so equal hashes share a bucket: at the end each bucket (1/256 of the hashes)
is checked on its own with a set, a few MB at a time; a hash found twice makes its uids suspects, and only
when there are suspects are the sources read once more to confirm them (two uids may share a hash) and
find the first occurrence's place.

Example:
    >>> seen = UidCheck()
    >>> for uid in ["cat-1", "cat-2", "cat-1"]:
    ...     seen.add(uid)
    >>> seen.problems([("line 1", "cat-1"), ("line 2", "cat-2"), ("line 3", "cat-1")])
    [('line 3', "duplicate uid 'cat-1': line 1 has it too (every droplet of a dataset needs its own uid)")]
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable

__all__ = ["UidCheck"]

_BUCKETS = 256  # a power of two: the bucket is the hash's low bits


class UidCheck:
    """Collects the uids of pass 1 (:meth:`add`); :meth:`problems` names each repeat with its first place."""

    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(_BUCKETS)]
        self._suspects: set[int] | None = None  # hashes seen twice, once all are added

    def add(self, uid: str) -> None:
        key = hash(uid)
        self._buckets[key & (_BUCKETS - 1)].append(key)
        self._suspects = None

    @property
    def suspected(self) -> bool:
        """True when some uid may repeat (then :meth:`problems` needs the items again)."""
        return bool(self._repeated())

    def _repeated(self) -> set[int]:
        """The hashes added more than once, one bucket at a time (see the module docstring)."""
        if self._suspects is None:
            self._suspects = set()
            for bucket in self._buckets:
                if len(set(bucket)) < len(bucket):  # rare: only then count which hashes repeat
                    self._suspects.update(key for key, n in Counter(bucket).items() if n > 1)
        return self._suspects

    def problems(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """``(where, message)`` for every repeat of a uid, from the ``(where, uid)`` of every item in order
        (read again only when :attr:`suspected`)."""
        suspects = self._repeated()
        if not suspects:
            return []
        first: dict[str, str] = {}
        out = []
        for where, uid in items:
            if hash(uid) not in suspects:
                continue
            if uid in first:
                out.append((where, (f"duplicate uid {uid!r}: {first[uid]} has it too (every droplet of a "
                                   "dataset needs its own uid)")))
            else:
                first[uid] = where
        return out
