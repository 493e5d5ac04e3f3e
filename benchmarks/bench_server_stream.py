"""Benchmark: streaming a split from a headwater server — the real datatap 0.3.0 client vs headwater's.

What is measured
    ``--n`` droplets (default 100,000; ``bench_stream.py``'s realistic droplets, ~1.1 KB of JSON each, or
    with ``--droplets boxes`` its lighter detection droplets; same seed) are published into one split of an
    embedded SQLite catalog.
    A real headwater server (``create_app`` under uvicorn, one worker, in a child process:
    ``benchmarks/_hw_server.py``) serves that catalog on 127.0.0.1. Both clients then stream the whole
    split over HTTP from that same server, one after the other, and count the decoded annotations (and
    their boxes, so nothing is left undecoded):

    * datatap 0.3.0 (its own venv, ``benchmarks/_datatap_remote.py``; ``--datatap-passes``, default 1):
      ``Api(key, uri=url).get_database_by_name(…).get_dataset("bench/stream:latest").stream_split("training")`` —
      ``requests`` + ``iter_lines`` + ``json.loads``, its ``CacheGenerator`` temp-file round trip (part of
      its path), ``ImageAnnotation.from_json``. Its cache entry is never promoted to its final name, so
      a pass 2 downloads the split again (its last pass is compared with headwater's replay).
    * headwater: ``Api(url=url, api_key=key, cache=…).get_database_by_name(…).get_dataset(…)
      .stream_split("training")`` (remote mode: one httpx session, NDJSON blocks decoded into msgspec
      structs). Pass 1 with the cache off (network + decode); pass 2 with a fresh cache (network + decode
      + writing the cache entry); pass 3 replays that cache entry (no request for the droplets).

Both sides must yield exactly ``--n`` annotations with the same total number of boxes. The sides alternate
``--runs`` times (default 3; headwater with a fresh cache each run); min / median / max of every pass are
printed and the medians quoted (``benchmarks/_common.py``); request counts are those of the last run.

Limit
    The same NDJSON, in memory, decoded line by line by a plain ``msgspec.json.Decoder(ImageAnnotation)``,
    each droplet dropped at once (issue 16's limit for streaming; ``bench_stream.decode_limit``) — no
    network, no server. Each headwater pass is printed as a share of it.

Why
    Goal: ≥ 10× the datatap client's annotations/s over the same server, on the first pass (over the
    network) and on the second pass (datatap: downloads again; headwater: the cache replay).

Run::

    .venv/bin/python benchmarks/bench_server_stream.py [--n 100000] [--runs 3] [--datatap-passes 1] [--seed 7]
        [--droplets realistic]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.peers import peer_python

from _common import Spread, add_runs_option, alternate, describe_machine, limit_line, ratio_line, spread_table
from _hw_server import start_hw_server
from bench_stream import SHAPES, decode_limit, template
from headwater.catalog import Catalog
from headwater.client import Api

GOAL = 10.0
HERE = os.path.dirname(os.path.abspath(__file__))
DATABASE, REF, SPLIT = "bench", "bench/stream:latest", "training"


def run_headwater(url: str, key: str, cache_dir: str) -> list[dict[str, Any]]:
    """Three passes: cache off; cache on and cold (fills it); cache replay."""
    results = []
    for label, cache in (("no cache", False), ("cache fill", cache_dir), ("cache replay", cache_dir)):
        server_api = Api(url=url, api_key=key, cache=cache)
        dataset = server_api.get_database_by_name(DATABASE).get_dataset(REF)
        start = time.perf_counter()
        count = boxes = 0
        for annotation in dataset.stream_split(SPLIT):
            count += 1
            boxes += sum(len(c.instances) for c in annotation.classes.values())
        results.append({"label": label, "seconds": time.perf_counter() - start, "count": count, "boxes": boxes})
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="droplets in the split (default 100000)")
    ap.add_argument("--droplets", choices=sorted(SHAPES), default="realistic",
                    help="bench_stream.py's realistic droplets (default) or its lighter boxes")
    ap.add_argument("--datatap-passes", type=int, default=1,
                    help="datatap passes (default 1: its pass 2 downloads the split again, ~as slow as pass 1, "
                         "~2.5 min per pass at 1,000,000 boxes droplets)")
    add_runs_option(ap)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    datatap_python = peer_python("datatap", ["datatap==0.3.0", "Pillow"])

    with tempfile.TemporaryDirectory(prefix="hw-bench-server-stream-") as tmp:
        t0 = time.perf_counter()
        droplets = SHAPES[args.droplets](args.n, args.seed)
        nbytes = sum(len(d) + 1 for d in droplets)
        print(describe_machine())
        print(f"data: {args.n:,} droplets, {nbytes / 1e6:.0f} MB of NDJSON, made in {time.perf_counter() - t0:.1f} s")
        catalog_path = os.path.join(tmp, "catalog.sqlite")
        with Catalog(catalog_path) as catalog:
            catalog.create_user("bench", email="bench@example.org")
            catalog.create_database(DATABASE, owner="bench")
            _, key = catalog.create_api_key("bench", "read")
            t0 = time.perf_counter()
            catalog.publish(DATABASE, "bench", "stream", template=template(), splits={SPLIT: droplets})
            print(f"publish into SQLite: {time.perf_counter() - t0:.1f} s")
        data = b"\n".join(droplets) + b"\n"  # for the limit
        del droplets

        log = os.path.join(tmp, "server.log")
        server = start_hw_server(catalog_path, log=log)
        print(f"server: {server.url} (uvicorn, 1 worker, child process; no simulated latency)")
        peer_tmp = os.path.join(tmp, "datatap-tmp")
        os.makedirs(peer_tmp)
        passes: dict[str, list[dict[str, Any]]] = {}
        stats: dict[str, dict[str, Any]] = {}
        promoted: list[object] = []

        def datatap() -> float:
            server.reset()
            # datatap makes its cache dir with tempfile.mkdtemp() and never removes it: point TMPDIR into our
            # temporary directory so its copy of the split goes away with the rest
            peer = subprocess.run([datatap_python, os.path.join(HERE, "_datatap_remote.py"), server.url, key,
                                   DATABASE, REF, SPLIT, str(args.datatap_passes)],
                                  check=False, capture_output=True, text=True,
                                  env={**os.environ, "DATATAP_API_KEY": "", "TMPDIR": peer_tmp})
            if peer.returncode != 0:
                print(peer.stderr[-4000:], file=sys.stderr)
                sys.exit(f"the datatap client failed (exit {peer.returncode})")
            theirs = json.loads(peer.stdout.strip().splitlines()[-1])
            stats["datatap"] = server.stats()
            promoted.append(theirs["promoted"])
            for k, p in enumerate(theirs["passes"]):
                passes.setdefault(f"datatap 0.3.0 pass {k + 1}" + (" (downloads again)" if k else ""), []).append(p)
            return float(sum(p["seconds"] for p in theirs["passes"]))

        def headwater() -> float:
            server.reset()
            ours = run_headwater(server.url, key, tempfile.mkdtemp(prefix="hw-cache-", dir=tmp))
            stats["headwater"] = server.stats()
            for k, p in enumerate(ours):
                passes.setdefault(f"headwater pass {k + 1}: {p['label']}", []).append(p)
            return float(sum(p["seconds"] for p in ours))

        try:
            times = alternate({"datatap": datatap, "headwater": headwater,
                               "limit": lambda: decode_limit(data, args.n)},
                              args.runs, log=lambda line: print(line, file=sys.stderr))
        finally:
            server.stop()
            with open(log) as f:
                errors = [line.rstrip() for line in f if "Traceback" in line or "ERROR" in line]
        if errors:
            print(f"server log: {len(errors)} error lines, first: {errors[0]}")

    expected_boxes = passes["datatap 0.3.0 pass 1"][0]["boxes"]
    ok = all(p["count"] == args.n and p["boxes"] == expected_boxes for ps in passes.values() for p in ps)
    print()
    print(f"{args.runs} runs a side, alternating; annotations/s:")
    rows = {label: Spread([p["seconds"] for p in ps]).rates(args.n) for label, ps in passes.items()}
    rows["limit: msgspec decode from memory"] = Spread(times["limit"]).rates(args.n)
    print(spread_table(rows, "ann/s", width=42, fmt=",.0f"))
    print()
    print(f"server-side requests (last run): datatap {stats['datatap']['requests']} "
          f"({stats['datatap']['bytes'] / 1e6:.0f} MB body) for {args.datatap_passes} passes; headwater "
          f"{stats['headwater']['requests']} ({stats['headwater']['bytes'] / 1e6:.0f} MB body) for 3 passes incl. "
          "lookups")
    print(f"datatap promoted its cache entry: {promoted[-1]}")
    hw = [[p["seconds"] for p in ps] for label, ps in passes.items() if label.startswith("headwater")]
    dt = [[p["seconds"] for p in ps] for label, ps in passes.items() if label.startswith("datatap")]
    ratios = [("pass 1: network, headwater no cache", dt[0], hw[0]),
              ("pass 1: network, headwater filling its cache", dt[0], hw[1]),
              (f"pass 2: datatap pass {len(dt)} vs headwater cache replay", dt[-1], hw[2])]
    for label, theirs_s, ours_s in ratios:
        ratio, line = ratio_line(f"annotations/s headwater/datatap, {label}", theirs_s, ours_s)
        print(f"{line}  (goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'NOT met'})")
    for k, ours_s in enumerate(hw):
        print(limit_line("msgspec decode of the same NDJSON from memory", times["limit"], ours_s, args.n,
                         "ann/s").replace("measured side", f"headwater pass {k + 1}"))
    print(f"every pass of every run yielded {args.n:,} annotations with the same boxes: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
