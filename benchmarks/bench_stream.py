"""Benchmark: streaming a split into typed droplets — headwater's passes vs the datatap client and vs the limit.

What is measured
    Droplets/s over one split of ``--n`` realistic droplets (default 100,000; 1–3 classes of 8 × 1–4
    instances, every instance a box, half a polygon mask, persons 5 named keypoints, some attributes;
    ~1.1 KB of JSON each, ~110 MB in all; ``--droplets boxes``: the lighter detection droplets this script
    used before, ~670 bytes). Every side yields fully decoded, typed droplets and the
    script checks the count. Sides:

    * datatap 0.3.0 (own venv, ``benchmarks/_datatap_stream.py``): what ``Dataset.stream_split`` does once
      the bytes arrive — ``CacheGenerator`` around ``json.loads(line)``, then ``ImageAnnotation.from_json``.
      Its lines come from a local file (the network costs nothing). Its cache is never promoted to its
      final name, so its pass 2 streams again (the bug DESIGN.md lists).
    * headwater, embedded SQLite catalog (``Api(catalog=…)…stream_split("training")``): pass 1 reads the
      catalog, fills a fresh stream cache and decodes (``first pass``); pass 2 replays the promoted cache
      entry (``replay``); and a pass with the cache off (``SQLite catalog pass``).
    * headwater, embedded PostgreSQL catalog (a throwaway server, ``tests/support/pgserver.py``): a pass
      with the cache off (``PostgreSQL catalog pass``). ``--no-postgres`` skips it.
    * headwater over HTTP: ``headwater serve``'s app (uvicorn, one worker, child process,
      ``benchmarks/_hw_server.py``) on the SQLite catalog, ``Api(url=…)`` with the cache off
      (``HTTP pass``). The datatap client over the same server is ``bench_server_stream.py``.

    The sides alternate ``--runs`` times (default 3; a fresh cache each run); min / median / max are printed
    and the medians quoted (``benchmarks/_common.py``).

Limit
    Issue 16's: msgspec decoding the same NDJSON bytes, already in memory, into the same structs the
    stream yields, each droplet dropped as soon as it is made (as a training loop does) — no catalog, no
    cache file, no socket. The fastest msgspec way measured: one ``msgspec.json.Decoder(ImageAnnotation)``
    over each line. Each run times two ways of cutting the lines — the whole buffer split at once, and
    1 MiB blocks of whole lines (cut before the clock starts) split one by one — and the limit is the faster
    of the two in that run. (``decode_lines`` over a block is 2–3× slower: a block of live droplets costs
    the allocator and the cyclic GC what one droplet at a time does not.) Every headwater pass does this
    same work and more on its own thread (it also reads the bytes and hands each droplet over through an
    iterator), so its share of the limit is at most ~1 by construction.

Why
    Training reads a split once per epoch. Goals (issue 16): vs datatap, first pass ≥ 15× and replay
    ≥ 25×; vs the limit, replay ≥ 0.85 and a catalog pass (SQLite, PostgreSQL, HTTP) ≥ 0.6.

Run (about 3 minutes at the defaults on 2 quiet cores)::

    .venv/bin/python benchmarks/bench_stream.py [--n 100000] [--runs 3] [--seed 7] [--droplets realistic]
        [--no-postgres] [--no-http]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.peers import peer_python

from _common import Spread, add_runs_option, alternate, describe_machine, limit_line, ratio_line, spread_table
from headwater.catalog import Catalog
from headwater.client import Api
from headwater.droplet import ImageAnnotation

GOALS = {"first pass": 15.0, "replay": 25.0}
LIMIT_GOALS = {"replay": 0.85, "catalog": 0.6}
CLASSES = ["person", "car", "dog", "bicycle", "traffic light", "cat", "bus", "truck"]
KEYPOINTS = ["nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"]
DATABASE, REF, SPLIT = "bench", "bench/stream:latest", "training"
_LIMIT_BLOCK = 1 << 20
CALLER_CPU: dict[str, list[float]] = {}
"""CPU seconds of the caller's thread per pass (``time.thread_time``), by side: what the pass costs the thread
that decodes, whatever a busy machine does to the wall clock and to the reader threads beside it."""


def make_realistic(n: int, seed: int) -> list[bytes]:
    """``n`` realistic droplets: 1–3 classes × 1–4 instances, each with a box (and confidence), half with a
    polygon mask, persons with 5 keypoints, 30 % with an attribute (~1.1 KB of JSON each)."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()

    def r4(v: float) -> float:
        return round(v, 4)

    out = []
    for i in range(n):
        classes: dict[str, dict[str, list[Any]]] = {}
        for name in rng.sample(CLASSES, rng.randint(1, 3)):
            instances = []
            for _ in range(rng.randint(1, 4)):
                x, y = rng.random() * 0.8, rng.random() * 0.8
                w, h = 0.02 + rng.random() * 0.18, 0.02 + rng.random() * 0.18
                inst: dict[str, Any] = {"boundingBox": {"rectangle": [[r4(x), r4(y)], [r4(x + w), r4(y + h)]],
                                                        "confidence": round(rng.random(), 3)}}
                if rng.random() < 0.5:
                    inst["segmentation"] = {"mask": [[[r4(x + w * rng.random()), r4(y + h * rng.random())]
                                                      for _ in range(rng.randint(4, 8))]]}
                if name == "person" and rng.random() < 0.7:
                    inst["keypoints"] = {k: {"point": [r4(x + w * rng.random()), r4(y + h * rng.random())],
                                             "occluded": rng.random() < 0.2} for k in KEYPOINTS}
                if rng.random() < 0.3:
                    inst["attributes"] = {"occluded": [{"value": rng.choice(["yes", "no"])}]}
                instances.append(inst)
            classes[name] = {"instances": instances, "multiInstances": []}
        out.append(enc.encode({"kind": "ImageAnnotation", "uid": f"{i:08d}",
                               "image": {"paths": [f"pool://images/{i:08d}.jpg"]}, "classes": classes}))
    return out


def make_droplets(n: int, seed: int) -> list[bytes]:
    """``n`` detection droplets (the earlier default of this script): 1–6 boxes over 5 classes, some with
    an attribute (~670 bytes of JSON each). Lighter to decode, so the ratio to datatap is higher."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    out = []
    for i in range(n):
        classes: dict[str, dict[str, list[Any]]] = {c: {"instances": [], "multiInstances": []} for c in CLASSES[:5]}
        for _ in range(rng.randint(1, 6)):
            x, y = rng.random() * 0.8, rng.random() * 0.8
            w, h = 0.01 + rng.random() * 0.19, 0.01 + rng.random() * 0.19
            box = [[round(x, 4), round(y, 4)], [round(x + w, 4), round(y + h, 4)]]
            inst: dict[str, Any] = {"boundingBox": {"rectangle": box, "confidence": round(rng.random(), 3)}}
            if rng.random() < 0.3:
                inst["attributes"] = {"occluded": [{"value": rng.choice(["yes", "no"])}]}
            classes[rng.choice(CLASSES[:5])]["instances"].append(inst)
        out.append(enc.encode({"kind": "ImageAnnotation", "uid": f"{i:08d}",
                               "image": {"paths": [f"pool://images/{i:08d}.jpg"]}, "classes": classes}))
    return out


SHAPES = {"realistic": make_realistic, "boxes": make_droplets}


def template() -> dict[str, Any]:
    return {"kind": "ImageAnnotationTemplate", "classes": {
        c: {"instances": {"boundingBox": True, "attributes": {"occluded": ["yes", "no"]}}, "multiInstances": {}}
        for c in CLASSES}}


def count_pass(droplets: Iterable[ImageAnnotation], n: int, what: str) -> None:
    """Consume a pass as a training loop does (each droplet dropped at once) and check its length."""
    count = 0
    for _ in droplets:
        count += 1
    if count != n:
        sys.exit(f"{what} yielded {count} droplets, expected {n}")


def decode_limit(data: bytes, n: int) -> float:
    """Seconds of the limit (module docstring): the faster of two cuts of ``data`` into lines — the whole
    buffer split at once, or blocks of whole lines (~1 MiB, cut before the clock starts, so the limit does
    not even pay a copy into blocks) split one by one — each line decoded by one ``Decoder(ImageAnnotation)``
    and dropped."""
    decode = msgspec.json.Decoder(ImageAnnotation).decode
    cut_blocks = []
    pos = 0
    while pos < len(data):
        cut = data.rfind(b"\n", pos, pos + _LIMIT_BLOCK) + 1 or data.index(b"\n", pos) + 1
        cut_blocks.append(data[pos:cut])
        pos = cut

    def whole() -> None:
        count = 0
        for line in data.split(b"\n"):
            if line:
                decode(line)
                count += 1
        if count != n:
            sys.exit(f"the limit decoded {count} droplets, expected {n}")

    def blocks() -> None:
        count = 0
        for block in cut_blocks:
            lines = block.split(b"\n")
            lines.pop()
            for line in lines:
                decode(line)
                count += 1
        if count != n:
            sys.exit(f"the limit decoded {count} droplets, expected {n}")

    best = cpu = float("inf")
    for way in (whole, blocks):
        start, start_cpu = time.perf_counter(), time.thread_time()
        way()
        seconds = time.perf_counter() - start
        if seconds < best:
            best, cpu = seconds, time.thread_time() - start_cpu
    CALLER_CPU.setdefault("limit", []).append(cpu)
    return best


def headwater_pass(api: Api, n: int, what: str) -> float:
    """Seconds of one headwater pass over the split (the dataset lookup is not timed)."""
    dataset = api.get_database_by_name(DATABASE).get_dataset(REF)
    start, start_cpu = time.perf_counter(), time.thread_time()
    count_pass(dataset.stream_split(SPLIT), n, what)
    seconds = time.perf_counter() - start
    CALLER_CPU.setdefault(what, []).append(time.thread_time() - start_cpu)
    return seconds


def publish(location: str, droplets: list[bytes], with_user: bool = False) -> tuple[float, str | None]:
    """Publish the split into the catalog at ``location``; seconds taken, and a read key when asked."""
    key = None
    with Catalog(location) as catalog:
        if with_user:
            catalog.create_user("bench", email="bench@example.org")
            catalog.create_database(DATABASE, owner="bench")
            _, key = catalog.create_api_key("bench", "read")
        else:
            catalog.create_database(DATABASE)
        start = time.perf_counter()
        catalog.publish(DATABASE, "bench", "stream", template=template(), splits={SPLIT: droplets})
        return time.perf_counter() - start, key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    add_runs_option(ap)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--droplets", choices=sorted(SHAPES), default="realistic",
                    help="realistic (default: boxes, masks, keypoints, ~1.1 KB) or boxes (~670 bytes)")
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL catalog pass")
    ap.add_argument("--no-http", action="store_true", help="skip the pass over HTTP")
    args = ap.parse_args(argv)
    datatap_python = peer_python("datatap", ["datatap==0.3.0", "Pillow"])
    print(describe_machine())

    with tempfile.TemporaryDirectory(prefix="hw-bench-stream-") as tmp, _Services(tmp) as services:
        t0 = time.perf_counter()
        droplets = SHAPES[args.droplets](args.n, args.seed)
        data = b"\n".join(droplets) + b"\n"
        source = os.path.join(tmp, "split.ndjson")
        with open(source, "wb") as f:
            f.write(data)
        print(f"data: {args.n:,} {args.droplets} droplets, {len(data) / 1e6:.0f} MB of NDJSON, "
              f"made in {time.perf_counter() - t0:.1f} s")

        sqlite_path = os.path.join(tmp, "catalog.sqlite")
        seconds, key = publish(sqlite_path, droplets, with_user=True)
        print(f"publish into SQLite: {seconds:.1f} s")
        sides: dict[str, Callable[[], float | None]] = {}
        passes: dict[str, list[float]] = {"first pass": [], "replay": [], "datatap 1": [], "datatap 2": []}

        def headwater() -> float:
            api = Api(catalog=sqlite_path, cache=tempfile.mkdtemp(prefix="cache-", dir=tmp))  # pass 1 fills it
            passes["first pass"].append(headwater_pass(api, args.n, "first pass"))
            passes["replay"].append(headwater_pass(api, args.n, "replay"))
            return passes["first pass"][-1] + passes["replay"][-1]

        def datatap() -> float:
            peer = subprocess.run([datatap_python, os.path.join(os.path.dirname(__file__), "_datatap_stream.py"),
                                   source, "2"], check=True, capture_output=True, text=True)
            theirs = json.loads(peer.stdout.strip().splitlines()[-1])
            for p in theirs:
                if p["count"] != args.n:
                    sys.exit(f"datatap pass yielded {p['count']} droplets, expected {args.n}")
            passes["datatap 1"].append(theirs[0]["seconds"])
            passes["datatap 2"].append(theirs[1]["seconds"])
            services.promoted = theirs[-1]["promoted"]
            return float(theirs[0]["seconds"] + theirs[1]["seconds"])

        sides["headwater (first pass + replay)"] = headwater
        sides["datatap"] = datatap
        sides["SQLite catalog pass"] = lambda: headwater_pass(Api(catalog=sqlite_path, cache=False), args.n,
                                                          "SQLite catalog pass")
        if not args.no_postgres:
            url = services.postgres()
            seconds, _ = publish(url, droplets)
            print(f"publish into PostgreSQL: {seconds:.1f} s")
            sides["PostgreSQL catalog pass"] = lambda: headwater_pass(Api(catalog=url, cache=False), args.n,
                                                                      "PostgreSQL catalog pass")
        if not args.no_http:
            server_url = services.server(sqlite_path, os.path.join(tmp, "server.log"))
            print(f"server: {server_url} (uvicorn, 1 worker, child process, no simulated latency)")
            sides["HTTP pass"] = lambda: headwater_pass(Api(url=server_url, api_key=key, cache=False), args.n,
                                                        "HTTP pass")
        sides["limit"] = lambda: decode_limit(data, args.n)
        del droplets
        times = alternate(sides, args.runs, log=lambda line: print(line, file=sys.stderr))

    passes.update({name: times[name] for name in times if name.endswith("pass")})
    print()
    print(f"{args.runs} runs a side, alternating; droplets/s:")
    rows = {"headwater first pass: catalog -> cache": passes["first pass"],
            "headwater replay (cache)": passes["replay"],
            **{f"headwater {name}": passes[name] for name in times if name.endswith("pass")},
            "datatap pass 1": passes["datatap 1"],
            "datatap pass 2 (streams again)": passes["datatap 2"],
            "limit: msgspec decode from memory": times["limit"]}
    print(spread_table({name: Spread(t).rates(args.n) for name, t in rows.items()}, "droplets/s", fmt=",.0f",
                       width=42))
    print()
    ok = True
    for k, name in ((1, "first pass"), (2, "replay")):
        ratio, line = ratio_line(f"{name}, headwater/datatap pass {k}", passes[f"datatap {k}"], passes[name])
        ok &= ratio >= GOALS[name]
        print(f"{line}  (goal >= {GOALS[name]:g}x)")
    for name in ["first pass", "replay", *(n for n in times if n.endswith("pass"))]:
        goal = LIMIT_GOALS["replay"] if name == "replay" else LIMIT_GOALS["catalog"]
        line = limit_line("msgspec decode of the same NDJSON from memory", times["limit"], passes[name], args.n,
                          "droplets/s").replace("measured side", f"headwater {name}")
        share = float(line.rsplit(" at ", 1)[1].split()[0])
        ok &= share >= goal
        print(f"{line}  (goal >= {goal:g})")
    print()
    limit_cpu = statistics.median(CALLER_CPU["limit"])
    print("CPU of the caller's thread (time.thread_time; the reader/writer threads not counted), median "
          f"µs a droplet: limit {limit_cpu * 1e6 / args.n:.2f}")
    for name in ["first pass", "replay", *(n for n in times if n.endswith("pass"))]:
        cpu = statistics.median(CALLER_CPU[name])
        print(f"  headwater {name}: {cpu * 1e6 / args.n:.2f}; the limit's / this = {limit_cpu / cpu:.2f} (what the "
              "wall-clock share tends to when a core is free for the threads beside it)")
    print(f"datatap promoted its cache entry: {services.promoted}")
    print(f"goals (medians): {'met' if ok else 'NOT all met'}")
    return 0


class _Services:
    """The throwaway PostgreSQL server and headwater server of a run, stopped on exit."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.promoted: object = None
        self._stops: list[Callable[[], None]] = []

    def postgres(self) -> str:
        from tests.support.pgserver import PostgresServer

        pg = PostgresServer()
        self._stops.append(pg.stop)
        pg.start()
        return pg.create_database()

    def server(self, catalog: str, log: str) -> str:
        from _hw_server import start_hw_server

        server = start_hw_server(catalog, log=log)
        self._stops.append(server.stop)
        return server.url

    def __enter__(self) -> _Services:
        return self

    def __exit__(self, *exc: object) -> None:
        for stop in reversed(self._stops):
            stop()


if __name__ == "__main__":
    sys.exit(main())
