"""The one rule for a droplet's ``pool://`` references at publish time: the pool and the member must exist.

Why: a dataset whose droplets name a pool it does not have, or a member that pool does not hold, can be
published but never read — every reader fails later, far from the cause. So every ``pool://`` reference is
checked while the publish is validated, by this one class, whether the publish is local
(:func:`headwater.publish.publish`) or arrives at a server (which calls the same function):

* the pool name must be one of the dataset's pools: ``pools`` (name → location, pools that exist), or the
  pool this publish packs its local images into (``new_pool``) — and then only if it packs any;
* the member must be in that pool, found by exactly the rule readers use
  (:meth:`headwater.droplet.ImageFetcher.locate`: a key with an extension names a member, one without a
  resource id); a key two members match is refused as readers would refuse it. Members are looked up in
  batches (:meth:`PoolRefCheck.resolved`), 256 keys a query. References into
  ``new_pool`` are checked at the end (:meth:`PoolRefCheck.finish`), against the member names the publish
  assigns its images.

``check_members(location)`` says which existing pools are opened to look for members: a local publish
opens the pools on this machine (:func:`on_this_machine`: folders, ``file://``) — checking costs no request
and no credentials; a server opens only the pools it serves itself — it never connects to a host a
publisher names (that would let anyone make the server probe its own network). Pools not opened have
their names checked only; pass ``check_members=lambda location: True`` to open remote pools too.

Example:
    >>> import os, tempfile
    >>> from headwater.archive import pack_directory
    >>> src, pool = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = open(os.path.join(src, "7.jpg"), "wb").write(b"jpeg")
    >>> _ = pack_directory(src, pool, silent=True)
    >>> check = PoolRefCheck({"old": pool}, new_pool="images")
    >>> check.problem("line 1", "pool://old/7.jpg"), check.problem("line 2", "pool://old/8.jpg")
    (None, None)
    >>> check.resolved(final=True)  # the member lookups, queued and resolved together
    [('line 2', "image pool://old/8.jpg: resource '8' is not in pool 'old'")]
    >>> check.problem("line 3", "pool://images/0.png"), check.finish(set())  # doctest: +NORMALIZE_WHITESPACE
    (None, [('line 3',
             "image 'pool://images/0.png' names pool 'images', which is not among the dataset's pools ['old']")])
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from ..droplet import ImageFetcher, ImageRef, ImageRefError, parse_image_ref
from ..errors import HeadwaterError
from ..pool import Member
from ..storage import StorageError

__all__ = ["PoolRefCheck", "on_this_machine"]

W = TypeVar("W")


def on_this_machine(location: str) -> bool:
    """True for a pool location on this machine's file system (a path or ``file://``), whose members a
    publish checks by default.

    >>> on_this_machine("/srv/pools/cats"), on_this_machine("file:///srv/p"), on_this_machine("s3://b/p")
    (True, True, False)
    """
    return parse_image_ref(location).kind == "file"


class PoolRefCheck(Generic[W]):
    """Checks ``pool://`` references against the dataset's pools (see the module docstring).

    ``pools``: name → location of the pools that exist; ``new_pool``: the name of the pool the publish
    creates for its local images (None: it creates none); ``check_members``: which existing pools (by
    location) are opened to check that the member exists (default: those :func:`on_this_machine`);
    ``batch``: how many member lookups are queued before they are resolved together (256: the query's
    fixed cost is spread thin, and a small queue keeps the objects that live across a batch few — a batch
    of 4,096 let them pile up into a full garbage collection every batch, costing more than it saved).

    Why batches: one manifest query per reference cost ~75 µs, most of a publish's time; a batch of 256
    keys is one query (:meth:`headwater.droplet.ImageFetcher.locate_many`, the rule ``locate``
    applies too). So :meth:`problem` answers at once only what it can tell from the reference itself (its
    syntax, its pool's name) and queues member lookups; their problems come from :meth:`resolved`, each
    with the ``where`` it was queued with — any value the caller orders its problems by (the validation
    passes a sequence number with the line, so problems are reported in line order).
    """

    def __init__(self, pools: Mapping[str, str], new_pool: str | None = None, *,
                 check_members: Callable[[str], bool] = on_this_machine, batch: int = 256) -> None:
        self.pools = dict(pools)
        self.new_pool = new_pool if new_pool not in self.pools else None
        self.batch = batch
        self._open = {name for name, location in self.pools.items() if check_members(location)}
        self._fetcher = ImageFetcher({name: self.pools[name] for name in self._open})
        self._unreadable: dict[str, str] = {}
        self._into_new: list[tuple[W, str, str, str]] = []  # (where, path, key, JSON path) into new_pool
        self._queued: list[tuple[W, ImageRef, str]] = []  # (where, ref, JSON path) whose member is looked up

    def problem(self, where: W, path: str, at: str = "") -> str | None:
        """What is wrong with image ``path`` of the item at ``where`` that the reference itself shows (None:
        nothing yet, or not a pool ref); a member lookup is queued for :meth:`resolved`, a reference into
        ``new_pool`` kept for :meth:`finish`. ``at``: the path's JSON path in the droplet
        (``$.image.paths[0]``), added to the message."""
        try:
            ref = parse_image_ref(path)
        except ImageRefError as err:
            return self._at(str(err), at)
        if ref.kind != "pool" or ref.pool is None or ref.key is None:
            return None
        if ref.pool == self.new_pool:
            self._into_new.append((where, path, ref.key, at))
            return None
        if ref.pool not in self.pools:
            return self._at(self._unknown(path, ref.pool), at)
        if ref.pool in self._open:
            self._queued.append((where, ref, at))
        return None

    def resolved(self, *, final: bool = False) -> list[tuple[W, str]]:
        """``(where, message)`` for each queued reference whose member is missing or ambiguous, once
        ``batch`` lookups are queued (``final``: all of them, at the end of the source); else nothing."""
        if not self._queued or (len(self._queued) < self.batch and not final):
            return []
        queued, self._queued = self._queued, []
        try:
            found = self._fetcher.locate_many([ref for _where, ref, _at in queued])
        except StorageError:  # a pool-wide failure: look each one up, to say where it started
            found = []
            for _where, ref, _at in queued:
                try:
                    found.append(self._fetcher.locate(ref))
                except Exception as err:  # noqa: BLE001 - sorted out below, as for a batch
                    found.append(err)
        out = []
        for (where, ref, at), result in zip(queued, found, strict=True):
            message = self._message(ref, result)
            if message is not None:
                out.append((where, self._at(message, at)))
        return out

    def _message(self, ref: ImageRef, result: Member | Exception) -> str | None:
        assert ref.pool is not None
        if ref.pool not in self._unreadable:
            if isinstance(result, StorageError):  # the pool itself cannot be opened: say so, once per pool
                self._unreadable[ref.pool] = (f"image {ref.path!r}: pool {ref.pool!r} at {self.pools[ref.pool]} "
                                              f"cannot be read ({result}); a dataset pointing at it could never "
                                              "be read")
            elif isinstance(result, (ImageRefError, HeadwaterError)):  # no such member, or two that match
                return f"image {result}"
            elif isinstance(result, Exception):
                raise result
            else:
                return None
        return self._unreadable[ref.pool]

    def finish(self, new_members: set[str]) -> list[tuple[W, str]]:
        """``(where, message)`` for each reference into ``new_pool`` that names none of ``new_members`` (the
        member names the publish gives its local images; empty: the new pool will not exist)."""
        stems = {posixpath.splitext(m)[0] for m in new_members}
        out = []
        for where, path, key, at in self._into_new:
            if not new_members:
                out.append((where, self._at(self._unknown(path, self.new_pool or ""), at)))
            elif key not in new_members if posixpath.splitext(key)[1] else key not in stems:
                out.append((where, self._at(f"image {path!r}: no member {key!r} among the {len(new_members)} "
                                            f"image(s) this publish packs into pool {self.new_pool!r}", at)))
        return out

    @staticmethod
    def _at(message: str, at: str) -> str:
        return f"{message} (at {at})" if at else message

    def _unknown(self, path: str, pool: str) -> str:
        return f"image {path!r} names pool {pool!r}, which is not among the dataset's pools {sorted(self.pools)}"
