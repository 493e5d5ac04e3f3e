"""Benchmark: load test of ``headwater serve`` — N concurrent clients streaming splits and fetching ranges.

What is measured
    One catalog split of ``--split-n`` detection droplets (default 200,000, the droplets of
    ``bench_stream.py``) and one pool of ``--files`` small files (default 5,000; 2–30 KB random bytes,
    packed ``layout="increment-id", base_level=2`` into 100 shards, the data of ``bench_fetch.py``) are
    served by the real ``headwater serve --catalog … --pool bench/pool=DIR --workers W`` (a child process;
    SQLite catalog, local pool directory). For each ``--server-workers`` value (default ``1,2``) a fresh
    server is started and ``--clients`` clients (default 16: threads, each with its own keep-alive
    ``httpx.Client``, spread over ``--client-procs`` processes, default 2, so the load generator is not
    one GIL) loop for ``--duration`` seconds (default 20, after a ``--warmup`` of 2 s whose requests are
    not counted). Each request is, at random (fixed seed per client):

    * with probability ``--stream-share`` (default 0.2), a split stream — ``GET /api/database/{db}/
      repository/bench/load/{uid}/split/training/stream?chunk=k&nchunks=--nchunks`` for a random chunk k
      (default nchunks 200: 1,000 droplets, ~670 KB of NDJSON); checked: status 200, exactly the chunk's
      number of lines, ``X-Headwater-Items`` equal to it;
    * otherwise a range read of a random pool member — ``GET /datasets/bench/pool/resolve/main/
      images/0NN.tar`` with ``Range: bytes=a-b`` from the shard's index; checked: status 206, the size and
      sha256 of the member.

    Every request sends a read API key (datatap style ``Bearer base64(key)`` on ``/api``, the key as it is
    on ``/datasets``, like the Hub clients). Latency is from sending the request to the last body byte.

    Output per server-worker count: requests, requests/s (and per kind), p50 / p99 latency (overall and
    per kind), body MB/s, errors (any exception, unexpected status or failed check; the first few are
    printed). Client and server share the machine's cores: on 2 CPUs the numbers measure the whole
    system, not the server alone. The worker counts alternate (1, 2, then 2, 1, …), ``--runs`` times each
    (default 3, a fresh server each run; ``benchmarks/_common.py``): requests/s and p50 / p99 as min / median
    / max, the full row of each count's median run (by requests/s). No limit line: nothing cheap in the same
    run bounds a server under mixed load.

Why
    The issue's load test: many clients at once against a stateless server, with zero errors, and more
    server processes should serve more when the cores are there.

Run::

    .venv/bin/python benchmarks/bench_server_load.py [--clients 16] [--duration 20] [--server-workers 1,2] [--runs 3]
        [--client-procs 2] [--stream-share 0.2] [--nchunks 200] [--split-n 200000] [--files 5000]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from _common import Spread, add_runs_option, alternate, describe_machine, median_run, ratio_line, spread_table

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.ports import free_port, wait_ready

from bench_fetch import make_sources
from bench_stream import make_droplets, template
from headwater.archive import index_path_for, pack_directory
from headwater.catalog import Catalog, chunk_bounds

REPO = "bench/pool"
BASE_LEVEL = 2


# -- the load generator (runs in --client-procs processes) ----------------------------------------------
def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _client_loop(job: dict[str, Any], cid: int, t_start: float, t_end: float, out: list[Any]) -> None:
    """One client: requests until ``t_end``; appends ``(kind, t_done, latency, bytes, error)`` to ``out``."""
    rng = random.Random(job["seed"] * 1000 + cid)
    members, url, n, nchunks = job["members"], job["url"], job["split_n"], job["nchunks"]
    api_headers = {"Authorization": "Bearer " + base64.b64encode(job["key"].encode()).decode()}
    hub_headers = {"Authorization": "Bearer " + job["key"]}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(timeout=60.0, limits=limits) as client:
        while True:
            t0 = time.perf_counter()
            if t0 >= t_end:
                return
            error = None
            size = 0
            if rng.random() < job["stream_share"]:
                kind = "stream"
                chunk = rng.randrange(nchunks)
                lo, hi = chunk_bounds(n, chunk, nchunks)
                try:
                    resp = client.get(f"{job['stream_url']}?chunk={chunk}&nchunks={nchunks}", headers=api_headers)
                    body = resp.content
                    size = len(body)
                    if resp.status_code != 200:
                        error = f"stream: status {resp.status_code}: {body[:200]!r}"
                    elif (lines := body.count(b"\n")) != hi - lo or not body.endswith(b"\n"):
                        error = f"stream chunk {chunk}: {lines} lines, expected {hi - lo}"
                    elif resp.headers.get("x-headwater-items") not in (None, str(hi - lo)):
                        error = f"stream chunk {chunk}: X-Headwater-Items {resp.headers['x-headwater-items']}"
                except httpx.HTTPError as exc:
                    error = f"stream: {type(exc).__name__}: {exc}"
            else:
                kind = "range"
                shard, name, offset, length, sha = members[rng.randrange(len(members))]
                try:
                    resp = client.get(f"{url}/datasets/{REPO}/resolve/main/{shard}",
                                      headers={**hub_headers, "Range": f"bytes={offset}-{offset + length - 1}"})
                    body = resp.content
                    size = len(body)
                    if resp.status_code != 206:
                        error = f"range: status {resp.status_code}: {body[:200]!r}"
                    elif len(body) != length or hashlib.sha256(body).hexdigest() != sha:
                        error = f"range {shard}:{name}: {len(body)} bytes, sha256 mismatch or short"
                except httpx.HTTPError as exc:
                    error = f"range: {type(exc).__name__}: {exc}"
            t1 = time.perf_counter()
            if t0 >= t_start:
                out.append((kind, t1, t1 - t0, size, error))


def _generator_proc(job: dict[str, Any], cids: list[int], t_start_wall: float, t_end_wall: float) -> list[Any]:
    """A load-generator process: one thread per client id; returns every measured request."""
    # wall clock → this process's perf_counter
    offset = time.perf_counter() - time.time()
    t_start, t_end = t_start_wall + offset, t_end_wall + offset
    out: list[Any] = []
    threads = [threading.Thread(target=_client_loop, args=(job, cid, t_start, t_end, out)) for cid in cids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# -- CPU accounting (Linux /proc; zeros elsewhere) --------------------------------------------------------
def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and all its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0.0
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(name)] = int(rest[1])
        cpu[int(name)] = (int(rest[11]) + int(rest[12])) / tick
    total = 0.0
    for pid, seconds in cpu.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += seconds
    return total


def children_cpu(root: int) -> dict[int, float]:
    """CPU seconds of each direct child of ``root`` (the server's worker processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(rest[1]) == root:
                out[int(name)] = (int(rest[11]) + int(rest[12])) / tick
    return out


# -- the server ------------------------------------------------------------------------------------------
def _headwater_cmd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "headwater")
    return [script] if os.path.exists(script) else [sys.executable, "-c", "from headwater.cli import main; main()"]


def start_serve(catalog: str, pool_dir: str, workers: int, log: str) -> tuple[subprocess.Popen[bytes], str]:
    """``headwater serve`` with ``workers`` processes on a free port; returns once it answers."""
    port = free_port()
    cmd = [*_headwater_cmd(), "serve", "--catalog", catalog, "--pool", f"{REPO}={pool_dir}", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning"]
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        if workers > 1:
            time.sleep(1.0)  # the other workers import and open the catalog; let them all accept
    except BaseException:
        proc.kill()
        raise
    return proc, url


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- one load run ----------------------------------------------------------------------------------------
def load_run(job: dict[str, Any], clients: int, procs: int, duration: float, warmup: float,
             server_pid: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    groups = [list(range(clients))[i::procs] for i in range(procs)]
    groups = [g for g in groups if g]
    cpu: dict[str, float] = {}

    workers: dict[str, dict[int, float]] = {}

    def sample(at: float, label: str) -> None:  # CPU of the server tree and of everything else we started
        time.sleep(max(0.0, at - time.time()))
        server, everything = tree_cpu(server_pid), tree_cpu(os.getpid())
        cpu[label + "_server"], cpu[label + "_clients"] = server, everything - server
        workers[label] = children_cpu(server_pid)

    with ctx.Pool(len(groups)) as pool:
        pool.apply(time.sleep, (0,))  # workers up before the clock starts
        t_start = time.time() + 1.0 + warmup  # 1 s for the other processes to start their threads
        t_end = t_start + duration
        samplers = [threading.Thread(target=sample, args=(t, label)) for t, label in ((t_start, "a"), (t_end, "b"))]
        for t in samplers:
            t.start()
        parts = pool.starmap(_generator_proc, [(job, g, t_start, t_end) for g in groups])
        for t in samplers:
            t.join()
    records = [r for part in parts for r in part]
    result: dict[str, Any] = {"duration": duration, "records": len(records),
                              "server_cores": (cpu["b_server"] - cpu["a_server"]) / duration,
                              "client_cores": (cpu["b_clients"] - cpu["a_clients"]) / duration,
                              "worker_cores": sorted((round((v - workers["a"].get(pid, 0.0)) / duration, 2)
                                                      for pid, v in workers["b"].items()), reverse=True)}
    for kind in ("all", "stream", "range"):
        mine = [r for r in records if kind == "all" or r[0] == kind]
        lat = [r[2] for r in mine]
        result[kind] = {"n": len(mine), "per_s": len(mine) / duration, "p50": _percentile(lat, 0.50),
                        "p99": _percentile(lat, 0.99), "bytes": sum(r[3] for r in mine),
                        "errors": sum(r[4] is not None for r in mine)}
    result["first_errors"] = [r[4] for r in records if r[4] is not None][:5]
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per run (default 20)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring (default 2)")
    ap.add_argument("--server-workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--client-procs", type=int, default=2, help="load-generator processes (default 2)")
    ap.add_argument("--stream-share", type=float, default=0.2, help="fraction of requests that stream (default 0.2)")
    ap.add_argument("--nchunks", type=int, default=200, help="a stream reads 1 random chunk of this many (default 200)")
    ap.add_argument("--split-n", type=int, default=200_000, help="droplets in the split (default 200000)")
    ap.add_argument("--files", type=int, default=5_000, help="files in the pool (default 5000)")
    ap.add_argument("--seed", type=int, default=11)
    add_runs_option(ap)
    args = ap.parse_args(argv)
    workers_list = [int(w) for w in args.server_workers.split(",") if w.strip()]

    with tempfile.TemporaryDirectory(prefix="hw-bench-server-load-") as work:
        t0 = time.perf_counter()
        catalog_path = os.path.join(work, "catalog.sqlite")
        with Catalog(catalog_path) as catalog:
            catalog.create_user("bench", email="bench@example.org")
            db = catalog.create_database("bench", owner="bench")
            _, key = catalog.create_api_key("bench", "read")
            catalog.change_pool_access("bench/pool", owner="bench")  # served pools are private to their owner
            ds = catalog.publish("bench", "bench", "load", template=template(),
                                 splits={"training": make_droplets(args.split_n, args.seed)})
        src_dir, pool_dir = os.path.join(work, "src"), os.path.join(work, "pool")
        total = make_sources(src_dir, args.files, args.seed)
        packed = pack_directory(src_dir, pool_dir, layout="increment-id", base_level=BASE_LEVEL, silent=True)
        shutil.rmtree(src_dir)
        members = []
        for name in packed.shards:  # {shard path: members}
            with open(os.path.join(pool_dir, index_path_for(name))) as f:
                for member, info in json.load(f)["files"].items():
                    members.append((name, member, info["offset"], info["size"], info["sha256"]))
        print(describe_machine())
        print(f"data: split of {args.split_n:,} droplets (chunk of {args.nchunks}: ~{args.split_n // args.nchunks:,} "
              f"droplets); pool of {len(members):,} files, {total / 1e6:.0f} MB in {len(packed.shards)} shards; "
              f"made in {time.perf_counter() - t0:.1f} s")
        print(f"load: {args.clients} clients ({args.client_procs} processes of threads, one keep-alive connection "
              f"each), {args.stream_share:.0%} split streams / {1 - args.stream_share:.0%} range GETs, "
              f"{args.warmup:g} s warm-up + {args.duration:g} s measured per server")
        print()

        all_runs: dict[int, list[dict[str, Any]]] = {workers: [] for workers in workers_list}

        def run_with(workers: int) -> Callable[[], float]:
            def run() -> float:
                log = os.path.join(work, f"server-{workers}-{len(all_runs[workers])}.log")
                proc, url = start_serve(catalog_path, pool_dir, workers, log)
                stream_url = f"{url}/api/database/{db.uid}/repository/bench/load/{ds.uid}/split/training/stream"
                job = {"url": url, "key": key, "members": members, "split_n": args.split_n,
                       "nchunks": args.nchunks, "stream_share": args.stream_share, "seed": args.seed,
                       "stream_url": stream_url}
                try:
                    res = load_run(job, args.clients, args.client_procs, args.duration, args.warmup, proc.pid)
                finally:
                    stop_serve(proc)
                with open(log) as f:
                    res["server_errors"] = [line.rstrip() for line in f if "Traceback" in line or "ERROR" in line]
                all_runs[workers].append(res)
                return float(res["duration"])

            return run

        alternate({f"{workers} workers": run_with(workers) for workers in workers_list}, args.runs,
                  log=lambda line: print(line, file=sys.stderr))
        results = [(workers, median_run(rs, key=lambda r: float(r["all"]["per_s"])))
                   for workers, rs in all_runs.items()]

    print(f"{args.runs} runs per worker count, alternating, a fresh server each run:")
    print(spread_table({f"{w} workers req/s": Spread([r["all"]["per_s"] for r in rs]) for w, rs in all_runs.items()},
                       "req/s", fmt=",.0f", width=22))
    latency = {f"{w} workers {q}": Spread([r["all"][q] * 1e3 for r in rs])
               for q in ("p50", "p99") for w, rs in all_runs.items()}
    print(spread_table(latency, "ms", fmt=",.1f", width=22))
    print()
    print("median run (by req/s) of each worker count:")

    header = (f"{'workers':>7}{'requests':>10}{'req/s':>8}{'stream/s':>9}{'range/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
              f"{'stream p50/p99':>16}{'range p50/p99':>15}{'MB/s':>7}{'errors':>8}{'CPU srv/cli':>13}")
    print(header)
    print("-" * len(header))
    for workers, r in results:
        a, s, g = r["all"], r["stream"], r["range"]
        stream_lat = f"{s['p50'] * 1e3:.0f}/{s['p99'] * 1e3:.0f}"
        range_lat = f"{g['p50'] * 1e3:.1f}/{g['p99'] * 1e3:.1f}"
        cores = f"{r['server_cores']:.2f}/{r['client_cores']:.2f}"
        print(f"{workers:>7}{a['n']:>10,}{a['per_s']:>8,.0f}{s['per_s']:>9,.1f}{g['per_s']:>9,.0f}"
              f"{a['p50'] * 1e3:>8.1f}{a['p99'] * 1e3:>8.1f}"
              f"{stream_lat:>16}{range_lat:>15}"
              f"{a['bytes'] / r['duration'] / 1e6:>7.1f}{a['errors']:>8}"
              f"{cores:>13}")
    print()
    total_errors = sum(r["all"]["errors"] for rs in all_runs.values() for r in rs)
    for workers, r in results:
        for e in r["first_errors"]:
            print(f"  error ({workers} workers): {e}")
        if workers > 1:
            print(f"  {workers} workers: cores busy per server process {r['worker_cores']} (uvicorn's processes "
                  "share one listening socket; each keep-alive connection stays with the process that accepted it)")
        if r["server_errors"]:
            print(f"  server log ({workers} workers): {len(r['server_errors'])} error lines, "
                  f"first: {r['server_errors'][0]}")
    if len(results) > 1:
        base_workers = workers_list[0]
        base_rates = [r["all"]["per_s"] for r in all_runs[base_workers]]
        for workers in workers_list[1:]:
            rates = [r["all"]["per_s"] for r in all_runs[workers]]
            print(ratio_line(f"requests/s with {workers} workers / with {base_workers}", rates, base_rates)[1]
                  + f"  (client and server share {os.cpu_count()} CPUs)")
    print("CPU srv/cli: cores busy on average during the measured window — the server's processes / the load "
          "generator's")
    print(f"errors, all runs: {total_errors} (goal: 0 — {'met' if total_errors == 0 else 'NOT met'})")
    return 0 if total_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
