"""Benchmark: a filtered page of a 1,000,000-droplet split (``Catalog.filter_split``), SQLite and PostgreSQL.

What is measured
    One split of ``--n`` droplets (default 1,000,000; each a uid, 1-3 of 12 classes × 0-4 instances with a box
    and a confidence, metadata ``camera`` and ``night``), published with the catalog's publisher (so its facets
    are the ones a real publish writes). Then, for each filter below, the latency of one page of 60:

    * **cold** — a fresh :class:`~headwater.catalog.Catalog` (empty facet cache; the OS page cache is warm), the
      first call: what the first viewer of a split waits;
    * **warm** — the next call on the same catalog: what every later page view waits.

    ``--runs`` runs (default 3) of each; min / median / max printed. The script **fails** (exit 1) when a warm
    median is 100 ms or more: issue 9's bound for a filtered page. As the reference, the time to read the
    split's droplets once (``read_range_blocks``, no decoding) — what a filter without an index would pay at the
    very least, on every page view.

Run::

    .venv/bin/python benchmarks/bench_filter.py [--n 1000000] [--backends sqlite,postgresql] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import msgspec

from _common import Spread, add_runs_option, describe_machine, spread_table

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from headwater.catalog import Catalog, SplitFilter

CLASSES = [f"class-{k}" for k in range(12)]
CAMERAS = ["front", "back", "left", "right"]
LIMIT_MS = 100.0

FILTERS: list[tuple[str, list[tuple[str, str]], int]] = [  # label, query, offset
    ("no filter, page 1", [], 0),
    ("no filter, page 10,000", [], 600_000),
    ("class=class-0 (common)", [("class", "class-0")], 0),
    ("class=class-11 (rare)", [("class", "class-11")], 0),
    ("class-0 AND class-1", [("class", "class-0"), ("class", "class-1")], 0),
    ("class-0, deep page", [("class", "class-0")], 100_000),
    ("count=class-2:3-", [("count", "class-2:3-")], 0),
    ("count=class-3:0-0 (absent)", [("count", "class-3:0-0")], 0),
    ("conf=0.95- (all classes)", [("conf", "0.95-")], 0),
    ("class-0 AND conf=0.5-0.6", [("class", "class-0"), ("conf", "0.5-0.6")], 0),
    ("uid=img-0012345 (one)", [("uid", "img-0012345")], 0),
    ("uid=img-00123 (100)", [("uid", "img-00123")], 0),
    ("meta=camera=front (1/4)", [("meta", "camera=front")], 0),
    ("meta AND class AND count", [("meta", "night=true"), ("class", "class-4"), ("count", "class-5:1-2")], 0),
    ("sample=60 of class-0", [("class", "class-0"), ("sample", "60"), ("seed", "7")], 0),
]


def droplets(n: int) -> Iterator[bytes]:
    rnd = random.Random(9)
    encode = msgspec.json.encode
    for i in range(n):
        classes: dict[str, Any] = {}
        for name in rnd.sample(CLASSES[:11], rnd.randint(1, 3)) + (["class-11"] if i % 1000 == 0 else []):
            instances = []
            for _ in range(rnd.randint(0, 4)):
                x, y = round(rnd.random() * 0.6, 4), round(rnd.random() * 0.6, 4)
                instances.append({"boundingBox": {"rectangle": [[x, y], [x + 0.1, y + 0.2]],
                                                  "confidence": round(rnd.random(), 3)}})
            classes[name] = {"instances": instances, "multiInstances": []}
        yield encode({"kind": "ImageAnnotation", "uid": f"img-{i:07d}", "image": {"paths": [f"pool://p/{i}.jpg"]},
                      "classes": classes, "metadata": {"camera": CAMERAS[i % 4], "night": i % 3 == 0}})


def make_split(where: str, n: int) -> tuple[str, float]:
    """Publish the split; its dataset uid and the publish's seconds."""
    with Catalog(where) as cat:
        cat.create_database("main", exist_ok=True)
        start = time.perf_counter()
        with cat.publisher("main", "bench", "filters", template={"kind": "ImageAnnotationTemplate"}) as pub:
            batch: list[bytes] = []
            for data in droplets(n):
                batch.append(data)
                if len(batch) == 50_000:
                    pub.add_many("train", batch)
                    batch = []
            pub.add_many("train", batch)
        return pub.record.uid, time.perf_counter() - start


def page_ms(cat: Catalog, uid: str, flt: SplitFilter, offset: int) -> tuple[float, int]:
    start = time.perf_counter()
    page = cat.filter_split(uid, "train", flt, offset=offset, limit=60)
    return (time.perf_counter() - start) * 1000, page.total


def read_all_seconds(where: str, uid: str) -> float:
    with Catalog(where) as cat:
        start = time.perf_counter()
        for _block in cat.read_range_blocks(uid, "train"):
            pass
        return time.perf_counter() - start


def measure(where: str, uid: str, runs: int) -> tuple[dict[str, Spread], dict[str, Spread], dict[str, int]]:
    cold: dict[str, list[float]] = {label: [] for label, _q, _o in FILTERS}
    warm: dict[str, list[float]] = {label: [] for label, _q, _o in FILTERS}
    totals: dict[str, int] = {}
    for _run in range(runs):
        for label, query, offset in FILTERS:
            flt = SplitFilter.from_query(query)
            with Catalog(where) as cat:
                cat.split_count(uid, "train")  # the split's row, as a viewer has it from the page before
                ms, totals[label] = page_ms(cat, uid, flt, offset)
                cold[label].append(ms)
                warm[label].append(page_ms(cat, uid, flt, offset)[0])
    return ({k: Spread(v) for k, v in cold.items()}, {k: Spread(v) for k, v in warm.items()}, totals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="droplets in the split (default 1,000,000)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="catalog backends (default both)")
    add_runs_option(parser)
    args = parser.parse_args(argv)
    print(describe_machine())
    root = tempfile.mkdtemp(prefix="bench-filter-")
    pg: Any = None
    slow: list[str] = []
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                where = os.path.join(root, "catalog.sqlite")
            else:
                from tests.support.pgserver import PostgresServer

                pg = PostgresServer()
                pg.start()
                where = pg.create_database()
            uid, seconds = make_split(where, args.n)
            print(f"\n{backend}: published {args.n:,} droplets with their facets in {seconds:.1f} s "
                  f"({args.n / seconds:,.0f} droplets/s)")
            cold, warm, totals = measure(where, uid, args.runs)
            reads = [read_all_seconds(where, uid) for _ in range(args.runs)]
            print(f"page of 60, {backend}, {args.runs} runs; cold = fresh Catalog (empty facet cache), warm = the "
                  "next call:")
            rows: dict[str, Spread] = {}
            for label, _query, _offset in FILTERS:
                rows[f"{label} [{totals[label]:,}] cold"] = cold[label]
                rows[f"{label} [{totals[label]:,}] warm"] = warm[label]
                if warm[label].median >= LIMIT_MS:
                    slow.append(f"{backend}: {label} warm median {warm[label].median:.1f} ms")
            print(spread_table(rows, "ms", fmt=",.2f", width=52))
            print(f"reference: reading the split's droplets once (read_range_blocks, no decoding): "
                  f"{statistics.median(reads) * 1000:,.0f} ms (median of {len(reads)})")
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    if slow:
        print(f"\nFAILED: a warm filtered page must take < {LIMIT_MS:.0f} ms: " + "; ".join(slow))
        return 1
    print(f"\nevery warm filtered page under {LIMIT_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
