"""Benchmark: publishing droplets with ``pool://`` refs — the cost of the publish-time checks.

What is measured
    * ``headwater.publish.publish`` of ``--n`` droplets (default 200,000) from a JSONL file into a fresh
      SQLite catalog, every droplet with a ``uid`` and one ``pool://old/<k>.jpg`` reference into a local
      pool of ``--members`` members (default 20,000; ``k = i % members``, so every ref exists) — the real
      path: pass 1 validates each droplet, checks its ref and uid; pass 2 writes the catalog. Two sides:
      ``checks``: the default (every member looked up in the pool's manifest, :class:`PoolRefCheck`) and
      ``names only``: ``check_members=lambda location: False`` (the pool's name is checked, not the
      member). Both check uids. Sides alternate (A B, then B A, …) for ``--runs`` runs each (default 3,
      ``benchmarks/_common.py``); droplets/s min / median / max, and the member check's cost per ref from
      the medians.
    * Peak memory of the uid check alone (:class:`UidCheck` over the same ``--n`` uids), with
      ``tracemalloc``, in bytes a droplet.

Why
    Issue 8 added the member and uid checks; the follow-up asks that they not slow a publish down (issue 16
    wants >= 100k droplets/s) nor hold ~70 bytes a droplet. Run it on ``main`` before and after a change
    (``PYTHONPATH=<checkout>/src``): it uses only ``publish`` and ``UidCheck``, whose API did not change.

Run::

    .venv/bin/python benchmarks/bench_publish.py [--n 200000] [--members 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable

from _common import Spread, add_runs_option, alternate, describe_machine, spread_table
from headwater.archive import pack_directory
from headwater.catalog import Catalog
from headwater.publish import publish
from headwater.publish.unique_uids import UidCheck


def make_pool(root: str, members: int) -> str:
    """A local pool of ``members`` tiny files ``0.jpg`` … (with its manifest, as ``pack`` writes it)."""
    src = os.path.join(root, "pool-src")
    os.makedirs(src)
    for k in range(members):
        with open(os.path.join(src, f"{k}.jpg"), "wb") as f:
            f.write(b"%d" % k)
    pool = os.path.join(root, "pool")
    pack_directory(src, pool, silent=True)
    shutil.rmtree(src)
    return pool


def make_source(root: str, n: int, members: int) -> str:
    path = os.path.join(root, "droplets.jsonl")
    with open(path, "w") as f:
        for i in range(n):
            f.write('{"kind":"ImageAnnotation","uid":"img-%d","image":{"paths":["pool://old/%d.jpg"]},'  # noqa: UP031
                    '"classes":{"cat":{"instances":[{"boundingBox":{"rectangle":[[0.1,0.2],[0.5,0.%03d]]}}]}}}\n'
                    % (i, i % members, 500 + i % 500))
    return path


def publish_once(root: str, source: str, pool: str, run: str, check: Callable[[str], bool]) -> float:
    folder = tempfile.mkdtemp(dir=root, prefix=f"cat-{run}-")
    cat = Catalog(os.path.join(folder, "catalog.sqlite"))
    try:
        cat.create_database("main")
        t0 = time.perf_counter()
        publish(cat, "main", "bench", "cats", source, pools={"old": pool}, check_members=check, silent=True)
        return time.perf_counter() - t0
    finally:
        cat.close()
        shutil.rmtree(folder)


def uid_peak(n: int) -> tuple[float, float]:
    """Peak traced bytes a droplet of a UidCheck over ``n`` uids, and its seconds (without tracing)."""
    tracemalloc.start()
    check = UidCheck()
    for i in range(n):
        check.add(f"img-{i}")
    assert not check.suspected
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t0 = time.perf_counter()
    check = UidCheck()
    for i in range(n):
        check.add(f"img-{i}")
    assert not check.suspected
    return peak / n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="droplets published (default 200,000)")
    parser.add_argument("--members", type=int, default=20_000, help="members of the referenced pool")
    add_runs_option(parser)
    args = parser.parse_args(argv)
    sides: dict[str, Callable[[str], bool]] = {"checks": lambda _location: True,
                                               "names only": lambda _location: False}
    root = tempfile.mkdtemp(prefix="bench-publish-")
    try:
        pool = make_pool(root, args.members)
        source = make_source(root, args.n, args.members)

        def side(name: str) -> Callable[[], float]:
            return lambda: publish_once(root, source, pool, name.replace(" ", "-"), sides[name])

        times = alternate({name: side(name) for name in sides}, args.runs,
                          log=lambda line: print(line, file=sys.stderr))
        per_droplet, uid_seconds = uid_peak(args.n)
        import headwater
        print(f"{describe_machine()}; headwater from {os.path.dirname(headwater.__file__)}")
        print(f"publish {args.n:,} droplets (uid + 1 pool:// ref each, pool of {args.members:,} members), "
              f"{args.runs} runs a side, alternating; droplets/s (no limit line: nothing cheap bounds a publish):")
        print(spread_table({name: Spread(t).rates(args.n) for name, t in times.items()}, "droplets/s",
                           fmt=",.0f", width=12))
        extra = (statistics.median(times["checks"]) - statistics.median(times["names only"])) / args.n
        print(f"member check: {extra * 1e6:+.1f} µs a ref (median checks - median names only)")
        print(f"uid check alone: peak {per_droplet:.1f} bytes a droplet (tracemalloc), "
              f"{args.n / uid_seconds:,.0f} uids/s")
    finally:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
