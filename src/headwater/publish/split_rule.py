"""Where a droplet without an explicit split goes: a seeded, per-item rule that never moves other items.

Why a keyed hash and not a shuffle: an item's split must not depend on which other items are in the
source, so that adding or removing droplets in a new version never moves the ones that stay (a
validation image must never become a training image). Each item's position in [0, 1) is a blake2b hash of
(seed, :func:`split_key`), the same in every process, machine and Python version.

Example:
    >>> rule = SplitRule({"validation": 0.25}, seed=7)
    >>> [rule(f"img-{i}") for i in range(6)] == [rule(f"img-{i}") for i in range(6)]
    True
    >>> sorted(set(rule(f"img-{i}") for i in range(200)))
    ['train', 'validation']
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from .errors import PublishError

__all__ = ["SplitRule", "split_key", "choose_splits"]


class SplitRule:
    """Seeded, per-item split assignment: ``fractions`` in the given order cover [0, sum), the rest of
    [0, 1) goes to ``rest``.

    An item's position is ``blake2b(seed, key) / 2**64``, independent of every other item, so adding or
    removing items never moves the others, and growing the first fraction only moves items from
    ``rest`` into it. Raises :class:`PublishError` for negative fractions or a sum above 1.

    Example:
        >>> rule = SplitRule({"validation": 0.05}, seed=0)
        >>> counts = {}
        >>> for i in range(4000):
        ...     counts[rule(str(i))] = counts.get(rule(str(i)), 0) + 1
        >>> 150 < counts["validation"] < 250, counts["validation"] + counts["train"]
        (True, 4000)
    """

    def __init__(self, fractions: Mapping[str, float], *, seed: int = 0, rest: str = "train") -> None:
        self.seed = int(seed)
        self.rest = rest
        self.fractions = dict(fractions)
        bounds: list[tuple[float, str]] = []
        total = 0.0
        for name, frac in self.fractions.items():
            if not isinstance(frac, (int, float)) or not 0.0 <= float(frac) <= 1.0:
                raise PublishError(f"split fraction for {name!r} must lie in [0, 1], got {frac!r}")
            total += float(frac)
            bounds.append((total, name))
        if total > 1.0 + 1e-9:
            raise PublishError(f"split fractions add up to {total:g}, more than 1: {self.fractions}")
        self._bounds = bounds
        self._prefix = f"{self.seed}\x00".encode()

    def position(self, key: str) -> float:
        """Where ``key`` falls in [0, 1) (stable across processes and Python versions)."""
        digest = hashlib.blake2b(self._prefix + key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def __call__(self, key: str) -> str:
        pos = self.position(key)
        for upper, name in self._bounds:
            if pos < upper:
                return name
        return self.rest

    def names(self) -> list[str]:
        """Every split this rule can produce."""
        return list(dict.fromkeys([*self.fractions, self.rest]))

    def __repr__(self) -> str:
        return f"SplitRule({self.fractions!r}, seed={self.seed}, rest={self.rest!r})"


def split_key(droplet: Mapping[str, Any], where: str) -> str:
    """What places a droplet without an explicit split: its uid, else its image's uid, else its first image
    path, else its place in the source.

    >>> split_key({"uid": "c1", "image": {"paths": ["a.jpg"]}}, "line 1"), split_key({}, "line 2")
    ('c1', 'line 2')
    """
    uid = droplet.get("uid")
    if isinstance(uid, str) and uid:
        return uid
    image = droplet.get("image")
    if isinstance(image, Mapping):
        if isinstance(image.get("uid"), str) and image["uid"]:
            return str(image["uid"])
        paths = image.get("paths")
        if isinstance(paths, list) and paths and isinstance(paths[0], str):
            return paths[0]
    return where


def choose_splits(splits: Any, seed: int, default_split: str) -> tuple[SplitRule | None, str]:
    """What a publish's ``splits`` argument means: ``(rule or None, the split for items the rule does not
    place)`` — None: everything to ``default_split``; a name: everything there; ``{name: fraction}``: a
    :class:`SplitRule` with the rest to ``default_split``; a :class:`SplitRule` as it is.

    >>> choose_splits("val", 0, "train"), choose_splits(None, 0, "train")
    ((None, 'val'), (None, 'train'))
    """
    if splits is None:
        return None, default_split
    if isinstance(splits, str):
        return None, splits
    if isinstance(splits, SplitRule):
        return splits, splits.rest
    if isinstance(splits, Mapping):
        return SplitRule(splits, seed=seed, rest=default_split), default_split
    raise PublishError(f"splits must be None, a split name, a {{name: fraction}} mapping or a SplitRule; "
                       f"got {splits!r}")
