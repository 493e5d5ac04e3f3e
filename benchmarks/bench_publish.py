"""Benchmark: publishing droplets — end to end as ``headwater publish`` does it, the catalog's own write
against the database's bulk load, and the cost of the ``pool://`` reference checks.

What is measured (each part alternates its sides, ``--runs`` runs each, default 3; ``benchmarks/_common.py``)
    * ``e2e``: ``headwater publish file.jsonl --template t.json`` — what the CLI calls for a local catalog,
      :func:`headwater.publish.publish` with the template file — of ``--n`` realistic droplets (default
      100,000: 1–3 classes of person/car/dog × 1–4 instances, every instance a box with a confidence,
      persons 5 keypoints (some ``null``), cars and dogs a 6-point polygon mask, a ``uid`` and an https image
      URL each; ~1.2 KB a droplet), into a fresh SQLite catalog and into a fresh PostgreSQL database (a
      throwaway server, ``initdb``/``pg_ctl`` as the tests start it: ``tests/support/pgserver.py``).
      Droplets/s, against the goal of issue 16 (>= 100,000/s on both).
    * ``catalog``: the catalog's own write of the same droplets, already encoded (``Publisher.add_many`` in
      one transaction, from entering the publisher to the commit), against the **limit**: the database's own
      bulk load of the same rows into the same table of an identical fresh catalog — SQLite ``executemany``
      in one transaction on the catalog's own connection (same pragmas), PostgreSQL ``COPY … FROM STDIN
      (FORMAT BINARY)`` with psycopg 3's ``cursor.copy``/``write_row`` on a plain connection. The fraction of
      the limit reached is printed.
    * ``refs``: the publish-time checks of ``pool://`` refs (issue 8): ``--refs-n`` droplets (default
      100,000) each with a uid and one ``pool://old/<k>.jpg`` ref into a local pool of ``--members`` members;
      sides ``checks`` (every member looked up in the pool's manifest) and ``names only``
      (``check_members=lambda location: False``); plus the peak memory of the uid check alone (tracemalloc).

Why
    Issue 16: ``headwater publish`` ran at ~10k droplets/s end to end, ~10x slower than the catalog; the goals
    are >= 100k droplets/s end to end on SQLite and PostgreSQL, and the catalog's write at SQLite >= 150k/s
    and PostgreSQL >= 100k/s, close to the database's own bulk load. Run on ``main`` before and after a
    change (``PYTHONPATH=<checkout>/src``): it uses only public APIs.

Run::

    .venv/bin/python benchmarks/bench_publish.py [--parts e2e,catalog,refs] [--backends sqlite,postgresql]
        [--n 100000] [--refs-n 100000] [--members 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from _common import Spread, add_runs_option, alternate, describe_machine, limit_line, spread_table

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from headwater.archive import pack_directory
from headwater.catalog import Catalog
from headwater.droplet import decode_droplet, encode_droplet
from headwater.publish import publish
from headwater.publish.unique_uids import UidCheck

KEYPOINTS = ["nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"]
TEMPLATE = {"kind": "ImageAnnotationTemplate", "classes": {
    "person": {"instances": {"boundingBox": True, "keypoints": KEYPOINTS}},
    "car": {"instances": {"boundingBox": True, "segmentation": True}},
    "dog": {"instances": {"boundingBox": True, "segmentation": True}},
}}
_SQLITE_INSERT = "INSERT INTO droplets (split_id, ordinal, data) VALUES (?, ?, ?)"
_PG_COPY = "COPY droplets (split_id, ordinal, data) FROM STDIN (FORMAT BINARY)"


# -- realistic droplets ------------------------------------------------------------------------------------
def realistic_droplet(i: int, rnd: random.Random) -> dict[str, Any]:
    """One droplet as issue 16 describes them: 1-3 classes x 1-4 instances, boxes, masks, keypoints."""
    def r4(v: float) -> float:
        return round(v, 4)

    classes: dict[str, Any] = {}
    for name in rnd.sample(["person", "car", "dog"], rnd.randint(1, 3)):
        instances = []
        for _ in range(rnd.randint(1, 4)):
            x1, y1 = rnd.random() * 0.5, rnd.random() * 0.5
            x2, y2 = x1 + 0.01 + rnd.random() * 0.4, y1 + 0.01 + rnd.random() * 0.4
            inst: dict[str, Any] = {"boundingBox": {"rectangle": [[r4(x1), r4(y1)], [r4(x2), r4(y2)]],
                                                    "confidence": round(rnd.random(), 3)}}
            if name == "person":
                inst["keypoints"] = {k: ({"point": [r4(rnd.random()), r4(rnd.random())]} if rnd.random() < 0.8
                                         else None) for k in KEYPOINTS}
            else:
                inst["segmentation"] = {"mask": [[[r4(x1 + (x2 - x1) * rnd.random()), r4(y1 + (y2 - y1) * rnd.random())]
                                                  for _ in range(6)]]}
            instances.append(inst)
        classes[name] = {"instances": instances, "multiInstances": []}
    return {"kind": "ImageAnnotation", "uid": f"img-{i}", "image": {"paths": [f"https://images.example/{i}.jpg"]},
            "classes": classes}


def make_realistic(root: str, n: int) -> tuple[str, str]:
    """``droplets.jsonl`` of ``n`` realistic droplets and the template ``t.json`` they satisfy."""
    rnd = random.Random(16)
    source = os.path.join(root, "droplets.jsonl")
    with open(source, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(realistic_droplet(i, rnd), separators=(",", ":")) + "\n")
    template = os.path.join(root, "t.json")
    with open(template, "w", encoding="utf-8") as f:
        json.dump(TEMPLATE, f)
    return source, template


# -- databases ---------------------------------------------------------------------------------------------
class Databases:
    """Fresh, empty catalogs: SQLite files under ``root``; PostgreSQL databases of one throwaway server."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._pg: Any = None

    def fresh(self, backend: str) -> str:
        if backend == "sqlite":
            return os.path.join(tempfile.mkdtemp(dir=self.root, prefix="cat-"), "catalog.sqlite")
        if self._pg is None:
            from tests.support.pgserver import PostgresServer

            self._pg = PostgresServer()
            self._pg.start()
        url: str = self._pg.create_database()
        return url

    def drop(self, backend: str, where: str) -> None:
        if backend == "sqlite":
            shutil.rmtree(os.path.dirname(where), ignore_errors=True)
        else:
            self._pg.drop_database(where)

    def close(self) -> None:
        if self._pg is not None:
            self._pg.stop()


@contextmanager
def fresh_catalog(dbs: Databases, backend: str) -> Iterator[Catalog]:
    where = dbs.fresh(backend)
    cat = Catalog(where)
    try:
        cat.create_database("main")
        yield cat
    finally:
        cat.close()
        dbs.drop(backend, where)


# -- parts -------------------------------------------------------------------------------------------------
def e2e_once(dbs: Databases, backend: str, source: str, template: str) -> float:
    with fresh_catalog(dbs, backend) as cat:
        t0 = time.perf_counter()
        record = publish(cat, "main", "bench", "people", source, template=template, silent=True)
        seconds = time.perf_counter() - t0
    assert sum(record.splits.values()) > 0
    return seconds


def publisher_once(dbs: Databases, backend: str, rows: list[bytes]) -> float:
    with fresh_catalog(dbs, backend) as cat:
        t0 = time.perf_counter()
        with cat.publisher("main", "bench", "people", template=TEMPLATE) as pub:
            pub.add_many("train", rows)
        return time.perf_counter() - t0


def bulk_load_once(dbs: Databases, backend: str, rows: list[bytes]) -> float:
    """The limit: the same rows into the same (fresh) table by the database's own bulk load."""
    with fresh_catalog(dbs, backend) as cat:
        with cat.publisher("main", "bench", "people", template=TEMPLATE) as pub:  # a split row to point at
            pub.add_many("train", [])
        with cat.engine.connect() as conn:
            split_id = conn.exec_driver_sql("SELECT max(id) FROM splits").scalar_one()
        triples = [(split_id, i, data) for i, data in enumerate(rows)]
        if backend == "sqlite":
            raw = cat.engine.raw_connection()
            try:
                cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
                t0 = time.perf_counter()
                cur.execute("BEGIN IMMEDIATE")
                cur.executemany(_SQLITE_INSERT, triples)
                cur.execute("COMMIT")
                return time.perf_counter() - t0
            finally:
                raw.close()
        import psycopg

        with psycopg.connect(cat.url.render_as_string(hide_password=False).replace("+psycopg", "")) as conn:
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy(_PG_COPY) as copy:
                copy.set_types(["int4", "int8", "bytea"])
                for row in triples:
                    copy.write_row(row)
            conn.commit()
            return time.perf_counter() - t0


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


def make_ref_source(root: str, n: int, members: int) -> str:
    path = os.path.join(root, "refs.jsonl")
    with open(path, "w") as f:
        for i in range(n):
            f.write('{"kind":"ImageAnnotation","uid":"img-%d","image":{"paths":["pool://old/%d.jpg"]},'  # noqa: UP031
                    '"classes":{"cat":{"instances":[{"boundingBox":{"rectangle":[[0.1,0.2],[0.5,0.%03d]]}}]}}}\n'
                    % (i, i % members, 500 + i % 500))
    return path


def refs_once(root: str, source: str, pool: str, check: Callable[[str], bool]) -> float:
    folder = tempfile.mkdtemp(dir=root, prefix="cat-refs-")
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
    parser.add_argument("--parts", default="e2e,catalog,refs", help="which parts (default e2e,catalog,refs)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="catalog backends (default both)")
    parser.add_argument("--n", type=int, default=100_000, help="realistic droplets (default 100,000)")
    parser.add_argument("--refs-n", type=int, default=100_000, help="droplets of the refs part (default 100,000)")
    parser.add_argument("--members", type=int, default=20_000, help="members of the refs part's pool")
    add_runs_option(parser)
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    backends = args.backends.split(",")
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)  # noqa: E731
    import headwater

    print(f"{describe_machine()}; headwater from {os.path.dirname(headwater.__file__)}")
    root = tempfile.mkdtemp(prefix="bench-publish-")
    dbs = Databases(root)
    try:
        source, template = make_realistic(root, args.n)
        size = os.path.getsize(source)
        n = args.n
        if "e2e" in parts:
            times = alternate({b: partial(e2e_once, dbs, b, source, template) for b in backends}, args.runs,
                              log=log)
            print(f"\ne2e: publish {n:,} realistic droplets ({size / 1e6:.0f} MB, {size / n:,.0f} B a droplet) "
                  f"--template t.json, {args.runs} runs a side, alternating; goal >= 100,000 droplets/s:")
            print(spread_table({f"publish, {b}": Spread(t).rates(n) for b, t in times.items()}, "droplets/s",
                               fmt=",.0f", width=24))
        if "catalog" in parts:
            with open(source, "rb") as f:
                rows = [encode_droplet(decode_droplet(line)) for line in f]
            for backend in backends:
                limit_what = ("executemany in one transaction" if backend == "sqlite"
                              else "COPY FROM STDIN (FORMAT BINARY), psycopg write_row")
                times = alternate({"Publisher.add_many": partial(publisher_once, dbs, backend, rows),
                                   "limit": partial(bulk_load_once, dbs, backend, rows)}, args.runs, log=log)
                goal = 150_000 if backend == "sqlite" else 100_000
                print(f"\ncatalog write, {backend}: {n:,} encoded droplets in one transaction; goal >= {goal:,}/s:")
                print(spread_table({f"{side}, {backend}": Spread(t).rates(n) for side, t in times.items()},
                                   "droplets/s", fmt=",.0f", width=32))
                print(limit_line(f"{backend} {limit_what}", times["limit"], times["Publisher.add_many"], n,
                                 "droplets/s"))
        if "refs" in parts:
            pool = make_pool(root, args.members)
            refs = make_ref_source(root, args.refs_n, args.members)
            sides: dict[str, Callable[[str], bool]] = {"checks": lambda _location: True,
                                                       "names only": lambda _location: False}
            times = alternate({name: partial(refs_once, root, refs, pool, sides[name]) for name in sides},
                              args.runs, log=log)
            per_droplet, uid_seconds = uid_peak(args.refs_n)
            print(f"\nrefs: publish {args.refs_n:,} droplets (uid + 1 pool:// ref each, pool of {args.members:,} "
                  f"members), {args.runs} runs a side, alternating:")
            print(spread_table({name: Spread(t).rates(args.refs_n) for name, t in times.items()}, "droplets/s",
                               fmt=",.0f", width=12))
            extra = (statistics.median(times["checks"]) - statistics.median(times["names only"])) / args.refs_n
            print(f"member check: {extra * 1e6:+.1f} µs a ref (median checks - median names only)")
            print(f"uid check alone: peak {per_droplet:.1f} bytes a droplet (tracemalloc), "
                  f"{args.refs_n / uid_seconds:,.0f} uids/s")
    finally:
        dbs.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
