"""Each droplet ``uid`` at most once per publish, and a duplicate named by both of its places.

Why: two droplets with one uid (``cat-1`` twice) make a dataset whose uid no longer names one droplet —
counts look right (``train=4``) while a lookup, a join with predictions or an evaluation silently keeps one
of the two. So a publish with a repeated uid is refused, naming the second occurrence and the first.

Memory: pass 1 keeps one machine-word hash per uid (a Python set: ~70 bytes a droplet, so ~700 MB for 10M
droplets with uids), not the uids; a hash seen twice makes the uid a suspect, and only when there are
suspects are the sources read once more to confirm them and find the first occurrence's place.

Example:
    >>> seen = UidCheck()
    >>> for uid in ["cat-1", "cat-2", "cat-1"]:
    ...     seen.add(uid)
    >>> seen.problems([("line 1", "cat-1"), ("line 2", "cat-2"), ("line 3", "cat-1")])
    [('line 3', "duplicate uid 'cat-1': line 1 has it too (every droplet of a dataset needs its own uid)")]
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["UidCheck"]


class UidCheck:
    """Collects the uids of pass 1 (:meth:`add`); :meth:`problems` names each repeat with its first place."""

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._suspects: set[str] = set()

    def add(self, uid: str) -> None:
        key = hash(uid)
        if key in self._seen:
            self._suspects.add(uid)
        else:
            self._seen.add(key)

    @property
    def suspected(self) -> bool:
        """True when some uid may repeat (then :meth:`problems` needs the items again)."""
        return bool(self._suspects)

    def problems(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """``(where, message)`` for every repeat of a uid, from the ``(where, uid)`` of every item in order
        (read again only when :attr:`suspected`)."""
        if not self._suspects:
            return []
        first: dict[str, str] = {}
        out = []
        for where, uid in items:
            if uid not in self._suspects:
                continue
            if uid in first:
                out.append((where, (f"duplicate uid {uid!r}: {first[uid]} has it too (every droplet of a "
                                   "dataset needs its own uid)")))
            else:
                first[uid] = where
        return out
