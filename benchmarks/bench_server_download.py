"""Benchmark: downloading 1,000 random ids from a headwater server — cheesechaser 0.2.2 vs headwater.

What is measured
    A pool of 20,000 small files (2–30 KB random bytes, ids 0..19999 named ``<id>.bin``, fixed seed) is
    packed with ``pack_directory(layout="increment-id", base_level=2)`` into 100 tar shards
    ``images/0NN.tar`` with hfutils-format index JSON and the ``headwater-manifest.sqlite`` manifest
    (the data of ``bench_fetch.py``). A real headwater server serves it as the Hub dataset repo
    ``bench/pool`` (``ServerConfig(pools={"bench/pool": dir})``; ``create_app`` under uvicorn, one worker,
    in a child process: ``benchmarks/_hw_server.py``). That benchmark-only ASGI layer counts every
    request reaching the server and, with ``--latency-ms`` (default: 0, then 20, each measured apart with its
    own server), sleeps that long before handing
    each request to the app (``asyncio.sleep``: other requests proceed meanwhile) — a stand-in for the
    round trip to a remote server.

    The same 1,000 random ids (fixed seed) are downloaded into an empty directory by:

    * cheesechaser 0.2.2 (its own venv, ``benchmarks/_cheesechaser_download.py``) with
      ``HF_ENDPOINT=<server>``: ``IncrementIDDataPool("bench/pool", base_level=2)
      .batch_download_to_directory(ids, dst, max_workers=12)`` — per shard the index JSON through
      ``hf_hub_download``, then one ``Range`` GET per file (hfutils).
    * headwater: ``IncrementIDDataPool("bench/pool", base_level=2, endpoint=<server>)
      .batch_download_to_directory(ids, dst, max_workers=12)`` — what ``headwater download
      hf://datasets/bench/pool --layout increment-id --base-level 2`` runs: the pool manifest fetched once,
      then the wanted members of each shard merged into a few range reads by the planner.
    * headwater on the pool folder itself — ``StorePool(pool_dir, layout="increment-id", base_level=2)
      .batch_download_to_directory(ids, dst, max_workers=12)``: the same members with the same code,
      without the network.

    Both send a read API key (``HF_TOKEN``), start cold (fresh process / pool object, fresh ``HF_HOME``
    and ``HEADWATER_CACHE``, empty output directory) and are timed around the download call only. The
    server's counters are reset before each run, so the request counts include index / manifest
    fetches and every HEAD. The sides alternate ``--runs`` times each (default 3); files/s min / median /
    max are printed and the median quoted, the request and byte counts are those of each side's median run
    (``benchmarks/_common.py``). Every file written must have the sha256 of its source (the script exits 1
    otherwise).

Limit
    The picked files' bytes concatenated into one file of the pool folder (``_limit/picked.bin``, in no
    manifest or index), fetched from the same server with one plain ``resolve`` GET (same latency, same
    key) — one request for exactly the wanted bytes, quoted as files/s.

Why
    Against a real server the cost of a small-file fetch is the request. Goals (issue 16), at 0 and 20 ms:
    headwater delivers ≥ 10× the files/s of cheesechaser, makes ≥ 10× fewer requests, and comes within 2×
    of the local side's files/s.

Run::

    .venv/bin/python benchmarks/bench_server_download.py [--latency-ms 0 20] [--runs 3] [--files 20000]
                                                          [--pick 1000] [--workers 12] [--seed 20240601]
                                                          [--max-gap-kb 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.peers import peer_python

from _common import (
    Spread,
    add_runs_option,
    alternate,
    describe_machine,
    limit_line,
    median_run,
    ratio_line,
    spread_table,
)
from _hw_server import HwServer, start_hw_server
from bench_fetch import make_sources, write_picked
from headwater.archive import pack_directory
from headwater.catalog import Catalog
from headwater.pool import IncrementIDDataPool, PlanPolicy, StorePool
from headwater.pool.planner import default_policy

GOAL_SPEED = 10.0
GOAL_REQUESTS = 10.0
GOAL_LOCAL = 2.0
BASE_LEVEL = 2
REPO = "bench/pool"
HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Run:
    side: str
    seconds: float
    stats: dict[str, Any]
    correct: int
    extra: str = ""

    def files_per_s(self, picked: int) -> float:
        return picked / self.seconds


def digests(directory: str, ids: list[int]) -> dict[int, str]:
    """sha256 of ``<id>.bin`` in ``directory`` for each id present."""
    out = {}
    for rid in ids:
        try:
            with open(os.path.join(directory, f"{rid}.bin"), "rb") as f:
                out[rid] = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            pass
    return out


def run_cheesechaser(python: str, server: HwServer, key: str, ids_file: str, out: str, work: str,
                     workers: int) -> tuple[float, str]:
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": key, "HF_HOME": tempfile.mkdtemp(dir=work),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "60",
           "HF_HUB_DOWNLOAD_TIMEOUT": "60"}
    proc = subprocess.run([python, os.path.join(HERE, "_cheesechaser_download.py"), REPO, ids_file, out,
                           str(BASE_LEVEL), str(workers)], check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        sys.exit(f"cheesechaser failed (exit {proc.returncode})")
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or "not found" in line]
    note = f"{len(errors)} error lines logged, first: {errors[0][:120]}" if errors else ""
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]), note


def run_headwater(server: HwServer, key: str, ids: list[int], out: str, work: str, workers: int,
                  plan: PlanPolicy | None) -> tuple[float, str]:
    os.environ["HEADWATER_CACHE"] = tempfile.mkdtemp(prefix="cache-", dir=work)  # cold manifest cache
    start = time.perf_counter()
    pool = IncrementIDDataPool(REPO, base_level=BASE_LEVEL, hf_token=key, endpoint=server.url, plan=plan)
    report = pool.batch_download_to_directory(ids, out, max_workers=workers, silent=True)
    seconds = time.perf_counter() - start
    note = f"client counted {report.requests} reads"
    if report.failed or report.missing:
        note += f"; {report.summary()}; first failures: {list(report.failed.items())[:3]}"
    return seconds, note


def run_local(pool_dir: str, ids: list[int], out: str, work: str, workers: int) -> tuple[float, str]:
    """The same ids with the same code (:class:`~headwater.pool.IndexedPool`'s batch download) from the pool
    folder the server serves: what the HTTP side is measured against, without the network."""
    os.environ["HEADWATER_CACHE"] = tempfile.mkdtemp(prefix="cache-", dir=work)
    start = time.perf_counter()
    pool = StorePool(pool_dir, layout="increment-id", base_level=BASE_LEVEL)
    report = pool.batch_download_to_directory(ids, out, max_workers=workers, silent=True)
    seconds = time.perf_counter() - start
    note = f"client counted {report.requests} local reads"
    if report.failed or report.missing:
        note += f"; {report.summary()}"
    return seconds, note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20_000, help="files in the pool (default 20000)")
    ap.add_argument("--pick", type=int, default=1000, help="random ids to download (default 1000)")
    ap.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0],
                    help="simulated delay per request, added by the benchmark's server middleware; one "
                         "measurement per value (default: 0 20)")
    add_runs_option(ap)
    ap.add_argument("--workers", type=int, default=12, help="max_workers on both sides (default 12)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--max-gap-kb", type=int, default=None,
                    help="headwater's PlanPolicy.max_gap in KiB (default: the library's default for "
                         "remote stores, 4096)")
    args = ap.parse_args(argv)
    plan = PlanPolicy(max_gap=args.max_gap_kb * 1024) if args.max_gap_kb is not None else None
    cheesechaser_python = peer_python("cheesechaser", ["cheesechaser==0.2.2"])

    with tempfile.TemporaryDirectory(prefix="hw-bench-server-download-") as work:
        src_dir, pool_dir = os.path.join(work, "src"), os.path.join(work, "pool")
        t0 = time.perf_counter()
        total = make_sources(src_dir, args.files, args.seed)
        packed = pack_directory(src_dir, pool_dir, layout="increment-id", base_level=BASE_LEVEL, silent=True)
        ids = random.Random(args.seed + 1).sample(range(args.files), args.pick)
        want = digests(src_dir, ids)
        ids_file = os.path.join(work, "ids.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(map(str, ids)))
        catalog_path = os.path.join(work, "catalog.sqlite")
        with Catalog(catalog_path) as catalog:
            catalog.create_user("bench", email="bench@example.org")
            _, key = catalog.create_api_key("bench", "read")
            catalog.change_pool_access(REPO, owner="bench")  # served pools are private to their owner
        limit_rel, limit_bytes = write_picked(pool_dir, src_dir, ids)
        print(describe_machine())
        print(f"pool: {args.files} files, {total / 1e6:.1f} MB in {len(packed.shards)} shards; "
              f"made in {time.perf_counter() - t0:.1f} s")

        ok = True
        for latency in args.latency_ms:
            print()
            ok &= measure_latency(args, latency, plan, cheesechaser_python, catalog_path, key, pool_dir, ids,
                                  ids_file, want, work, limit_rel, limit_bytes)
    return 0 if ok else 1


def measure_latency(args: argparse.Namespace, latency: float, plan: PlanPolicy | None, cheesechaser_python: str,
                    catalog_path: str, key: str, pool_dir: str, ids: list[int], ids_file: str, want: dict[int, str],
                    work: str, limit_rel: str, limit_bytes: int) -> bool:
    """One latency setting: its own server, the four sides alternating, the table and the ratios; True if
    every file of every run had its source's sha256."""
    pool_store_kind = argparse.Namespace(is_local=False)  # what default_policy sees for the Hub store
    log = os.path.join(work, f"server-{latency:g}.log")
    server = start_hw_server(catalog_path, {REPO: pool_dir}, latency_ms=latency, log=log)
    print(f"== simulated latency {latency:g} ms per request (benchmark middleware); server {server.url}, repo "
          f"{REPO} (uvicorn, 1 worker, child process); {args.pick} random ids, {args.workers} workers each side, "
          f"{args.runs} cold runs a side, alternating; headwater {plan or default_policy(pool_store_kind)} "
          f"({'--max-gap-kb' if plan else 'library default for HTTP'})")
    runs: dict[str, list[Run]] = {"cheesechaser": [], "headwater": [], "local": []}

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            out = tempfile.mkdtemp(prefix=f"out-{name}-", dir=work)
            server.reset()
            if name == "cheesechaser":
                seconds, note = run_cheesechaser(cheesechaser_python, server, key, ids_file, out, work,
                                                 args.workers)
            elif name == "headwater":
                seconds, note = run_headwater(server, key, ids, out, work, args.workers, plan)
            else:
                seconds, note = run_local(pool_dir, ids, out, work, args.workers)
            stats = server.stats()
            got = digests(out, ids)
            correct = sum(got.get(rid) == sha for rid, sha in want.items())
            runs[name].append(Run(name, seconds, stats, correct, note))
            shutil.rmtree(out)
            return seconds

        return run

    def one_get() -> float:
        url = f"{server.url}/datasets/{REPO}/resolve/main/{limit_rel}"
        start = time.perf_counter()
        with httpx.Client(timeout=60.0, headers={"Authorization": f"Bearer {key}"}) as client:
            body = client.get(url).raise_for_status().content
        seconds = time.perf_counter() - start
        if len(body) != limit_bytes:
            sys.exit(f"limit GET: got {len(body)} of {limit_bytes} bytes")
        return seconds

    try:
        times = alternate({"cheesechaser": side("cheesechaser"), "headwater": side("headwater"),
                           "local": side("local"), "limit": one_get},
                          args.runs, log=lambda line: print(line, file=sys.stderr))
    finally:
        server.stop()
        with open(log) as f:
            errors = [line.rstrip() for line in f if "Traceback" in line or "ERROR" in line]
        if errors:
            print(f"server log: {len(errors)} error lines, first: {errors[0]}")

    labels = {"cheesechaser": "cheesechaser 0.2.2 batch_download", "headwater": "headwater download, HTTP",
              "local": "headwater, same pool read locally", "limit": "limit: 1 plain GET of the bytes"}
    print(f"{args.runs} runs a side, alternating; files/s:")
    print(spread_table({labels[name]: Spread(t).rates(args.pick) for name, t in times.items()}, "files/s",
                       fmt=",.0f"))
    print()
    median = {name: median_run(rs, key=lambda r: r.seconds) for name, rs in runs.items()}
    print("median run of each side:")
    header = (f"{'side':<34}{'seconds':>9}{'files/s':>9}{'requests':>10}{'GET/HEAD/other':>16}{'body MB':>9}"
              f"{'sha256 ok':>11}  notes")
    print(header)
    print("-" * (len(header) + 20))
    for name in ("cheesechaser", "headwater", "local"):
        r = median[name]
        m = r.stats["by_method"]
        other = r.stats["requests"] - m.get("GET", 0) - m.get("HEAD", 0)
        methods = f"{m.get('GET', 0)}/{m.get('HEAD', 0)}/{other}"
        print(f"{labels[name]:<34}{r.seconds:>9.2f}{r.files_per_s(args.pick):>9,.0f}{r.stats['requests']:>10,}"
              f"{methods:>16}{r.stats['bytes'] / 1e6:>9.1f}"
              f"{f'{r.correct}/{args.pick}':>11}  {r.extra}")
    print()
    speed, speed_line = ratio_line("files/s, headwater/cheesechaser", times["cheesechaser"], times["headwater"])
    local, local_line = ratio_line("files/s, local pool/headwater HTTP", times["headwater"], times["local"])
    fewer = median["cheesechaser"].stats["requests"] / max(1, median["headwater"].stats["requests"])
    ok = all(r.correct == args.pick for rs in runs.values() for r in rs)
    print(f"every file of every run has its source's sha256: {'yes' if ok else 'NO'}")
    print(f"{speed_line}  (goal >= {GOAL_SPEED:g}x: {'met' if speed >= GOAL_SPEED else 'NOT met'})")
    print(f"{local_line}  (goal <= {GOAL_LOCAL:g}x: {'met' if local <= GOAL_LOCAL else 'NOT met'})")
    print(f"server-side requests, cheesechaser/headwater: {fewer:.1f}x fewer  (goal >= {GOAL_REQUESTS:g}x: "
          f"{'met' if fewer >= GOAL_REQUESTS else 'NOT met'})")
    body = median["headwater"].stats["bytes"] / max(1, median["cheesechaser"].stats["bytes"])
    print(f"body bytes, headwater/cheesechaser: {body:.1f}x  (one multi-range GET per shard where the server "
          "supports it; else merged ranges carry the gaps)")
    print(limit_line(f"one plain GET of the {limit_bytes / 1e6:.1f} MB picked, same server and latency",
                     times["limit"], times["headwater"], args.pick, "files/s"))
    for name, rs in runs.items():
        print(f"  all {name} runs: " + ", ".join(f"{r.seconds:.2f}s/{r.stats['requests']}req" for r in rs))
    return ok


if __name__ == "__main__":
    sys.exit(main())
