"""Benchmark: publishing droplets with ``pool://`` refs — the cost of the publish-time checks.

What is measured
    * ``headwater.publish.publish`` of ``--n`` droplets (default 200,000) from a JSONL file into a fresh
      SQLite catalog, every droplet with a ``uid`` and one ``pool://old/<k>.jpg`` reference into a local
      pool of ``--members`` members (default 20,000; ``k = i % members``, so every ref exists) — the real
      path: pass 1 validates each droplet, checks its ref and uid; pass 2 writes the catalog. Two sides:
      ``checks``: the default (every member looked up in the pool's manifest, :class:`PoolRefCheck`) and
      ``names only``: ``check_members=lambda location: False`` (the pool's name is checked, not the
      member). Both check uids. Sides alternate (A B, then B A, …) for ``--repeats`` runs each (default 3);
      droplets/s min / median / max, and the member check's cost per ref from the medians.
    * Peak memory of the uid check alone (:class:`UidCheck` over the same ``--n`` uids), with
      ``tracemalloc``, in bytes a droplet.

Why
    Issue 8 added the member and uid checks; the follow-up asks that they not slow a publish down (issue 16
    wants >= 100k droplets/s) nor hold ~70 bytes a droplet. Run it on ``main`` before and after a change
    (``PYTHONPATH=<checkout>/src``): it uses only ``publish`` and ``UidCheck``, whose API did not change.

Run::

    .venv/bin/python benchmarks/bench_publish.py [--n 200000] [--members 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable

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
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (alternating)")
    args = parser.parse_args(argv)
    sides: dict[str, Callable[[str], bool]] = {"checks": lambda _location: True,
                                               "names only": lambda _location: False}
    root = tempfile.mkdtemp(prefix="bench-publish-")
    try:
        pool = make_pool(root, args.members)
        source = make_source(root, args.n, args.members)
        times: dict[str, list[float]] = {side: [] for side in sides}
        for run in range(args.repeats):
            for side in list(sides) if run % 2 == 0 else list(sides)[::-1]:
                seconds = publish_once(root, source, pool, f"{run}", sides[side])
                times[side].append(seconds)
                print(f"  run {run + 1} {side:10s} {seconds:7.2f} s  {args.n / seconds:9,.0f} droplets/s",
                      file=sys.stderr)
        per_droplet, uid_seconds = uid_peak(args.n)
        import headwater
        print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
              f"headwater from {os.path.dirname(headwater.__file__)}")
        print(f"publish {args.n:,} droplets (uid + 1 pool:// ref each, pool of {args.members:,} members), "
              f"{args.repeats} runs a side, droplets/s:")
        print(f"{'side':12s} {'min':>10s} {'median':>10s} {'max':>10s}")
        for side, samples in times.items():
            rates = sorted(args.n / s for s in samples)
            print(f"{side:12s} {rates[0]:10,.0f} {statistics.median(rates):10,.0f} {rates[-1]:10,.0f}")
        extra = (statistics.median(times["checks"]) - statistics.median(times["names only"])) / args.n
        print(f"member check: {extra * 1e6:+.1f} µs a ref (median checks - median names only)")
        print(f"uid check alone: peak {per_droplet:.1f} bytes a droplet (tracemalloc), "
              f"{args.n / uid_seconds:,.0f} uids/s")
    finally:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
