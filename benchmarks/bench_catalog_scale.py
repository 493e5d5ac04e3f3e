"""Benchmark: a split of many droplets in the catalog — publish speed, and chunk k of n starting fast.

What is measured
    * Publishing ``--n`` droplets (default 10,000,000, ~300-byte JSON each) into one split of a new
      dataset through ``Catalog.publisher(...).add_many`` — one transaction, batched inserts — as rows/s
      and MB/s, including the commit.
    * Time to the first droplet of chunk k of ``--nchunks`` (default 64) for k = 0 and k = n-1, each
      through a new ``Catalog`` object (so the split lookup is included); the two alternate ``--runs``
      times (default 5), min / median / max printed, median quoted (``benchmarks/_common.py``).
      Keyset pages on the primary key make both an index seek: the two should be the same order of
      magnitude, whereas ``OFFSET``-style paging would make the last chunk ~n times slower to start.
    * Reading one whole chunk (rows/s), and 1,000 random ordinals with ``read_ordinals``, alternating,
      ``--runs`` times each. The publish runs once (at 10M it takes minutes and ~7 GB).
    * No limit line: nothing cheap in the same run bounds a catalog's insert or seek.

Why
    The catalog issue asks that a 10,000,000-droplet split can be published and streamed and that chunk
    k of n starts without scanning from the start. The unit tests check the query plan on small splits;
    this script checks the timing at full size.

Data
    Generated on the fly (nothing held in memory): droplet i is a compact ImageAnnotation JSON with an
    image path ``pool://images/{i:09d}.jpg``, one box and padding metadata. SQLite (default) goes to a
    temp dir (``TMPDIR`` moves it); a 10M split needs ~7 GB free while publishing (the database plus a
    WAL of the same size until the commit is checkpointed). ``--url postgresql://…`` runs against an
    existing PostgreSQL server instead (a fresh catalog database is expected).

Run::

    .venv/bin/python benchmarks/bench_catalog_scale.py [--n 10000000] [--nchunks 64] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator

from _common import Spread, add_runs_option, alternate, describe_machine, ratio_line, spread_table
from headwater.catalog import Catalog

PAD = "x" * 120


def droplets(n: int) -> Iterator[bytes]:
    for i in range(n):
        # %-formatted: the template is JSON, whose every brace an f-string would have to double
        yield (
            '{"kind":"ImageAnnotation","image":{"paths":["pool://images/%09d.jpg"]},"classes":{"person":'  # noqa: UP031
            '{"instances":[{"boundingBox":{"rectangle":[[0.%03d,0.25],[0.75,0.%03d]]}}]}},"metadata":{"pad":"%s"}}'
            % (i, i % 1000, 500 + i % 500, PAD)
        ).encode()


def first_row_latency(location: str, uid: str, start: int, stop: int) -> float:
    """Seconds to the first droplet of ``[start, stop)`` through a new Catalog (opening it not counted)."""
    cat = Catalog(location)
    try:
        t0 = time.perf_counter()
        next(iter(cat.read_range(uid, "train", start, stop)))
        return time.perf_counter() - t0
    finally:
        cat.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="droplets in the split (default 10,000,000)")
    parser.add_argument("--nchunks", type=int, default=64, help="n of 'chunk k of n' (default 64)")
    add_runs_option(parser, default=5)
    parser.add_argument("--url", default=None, help="catalog URL (default: a new SQLite file in a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp SQLite catalog")
    args = parser.parse_args(argv)

    tmp = None
    if args.url:
        location = args.url
    else:
        tmp = tempfile.mkdtemp(prefix="hw-bench-catalog-")
        location = os.path.join(tmp, "catalog.sqlite")
    try:
        cat = Catalog(location)
        cat.create_database("bench", exist_ok=True)
        print(describe_machine())
        print(f"catalog: {cat!r}  droplets: {args.n:,}  (~{len(next(droplets(1)))} bytes each)", flush=True)
        payload = 0
        t0 = time.perf_counter()

        def counted() -> Iterator[bytes]:
            nonlocal payload
            for i, data in enumerate(droplets(args.n), 1):
                payload += len(data)
                if i % 1_000_000 == 0:
                    print(f"  {i:,} added, {time.perf_counter() - t0:.0f} s", flush=True)
                yield data

        with cat.publisher("bench", "scale", "split", template={"kind": "ImageAnnotationTemplate"}) as pub:
            pub.add_many("train", counted())
        publish_s = time.perf_counter() - t0
        uid = pub.record.uid
        cat.close()
        size = os.path.getsize(location) if tmp else 0
        print(f"publish: {publish_s:.1f} s  {args.n / publish_s:,.0f} rows/s  {payload / publish_s / 1e6:.1f} MB/s"
              + (f"  file {size / 1e9:.2f} GB" if size else ""))

        n, total = args.nchunks, args.n
        bounds = [(total * k // n, total * (k + 1) // n) for k in range(n)]
        log = lambda line: print(line, file=sys.stderr)  # noqa: E731
        lat = alternate({f"chunk 0/{n}": lambda: first_row_latency(location, uid, *bounds[0]),
                         f"chunk {n - 1}/{n}": lambda: first_row_latency(location, uid, *bounds[n - 1])},
                        args.runs, log=log)
        print(f"first droplet, new Catalog each, {args.runs} runs alternating, ms:")
        print(spread_table({k: Spread([t * 1e3 for t in v]) for k, v in lat.items()}, "ms", fmt=",.2f", width=16))
        first, last = lat.values()
        print(ratio_line("first droplet, last chunk / first chunk", last, first)[1])

        cat = Catalog(location)
        a, b = bounds[n - 1]
        wanted = random.Random(0).sample(range(total), min(1000, total))
        counts: list[int] = []
        got: list[bytes] = []

        def read_chunk() -> None:
            counts.append(sum(1 for _ in cat.read_range(uid, "train", a, b)))

        def read_ordinals() -> None:
            got[:] = cat.read_ordinals(uid, "train", wanted)

        reads = alternate({"read_chunk": read_chunk, "read_ordinals": read_ordinals}, args.runs, log=log)
        print(spread_table({f"read chunk {n - 1}/{n} ({counts[0]:,} droplets)":
                            Spread(reads["read_chunk"]).rates(counts[0])}, "rows/s", fmt=",.0f", width=40))
        print(spread_table({f"read_ordinals ({len(wanted):,} random droplets)":
                            Spread([t * 1e3 for t in reads["read_ordinals"]])}, "ms", fmt=",.1f", width=40))
        for i, data in zip(wanted[:20], got[:20], strict=True):
            if f"{i:09d}.jpg".encode() not in data:
                print(f"MISMATCH: ordinal {i} returned {data[:80]!r}", file=sys.stderr)
                return 1
        cat.close()
        return 0
    finally:
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
