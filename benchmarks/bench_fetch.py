"""Benchmark: fetching 1,000 random files from a remote pool — one range GET per file vs headwater's planner.

What is measured
    A pool of 20,000 small files (2–30 KB random bytes, ids 0..19999 named ``<id>.bin``) is packed with
    ``headwater.archive.pack_directory(layout="increment-id", base_level=2)`` into 100 tar shards with
    hfutils-format index JSON and the ``headwater-manifest.sqlite`` manifest. It is served over HTTP from
    127.0.0.1 by the tests' ``FileServer`` (``tests/support/httpserver.py``, in a child process by default),
    which sleeps ``--latency-ms`` (default: 0 ms, then 20 ms, each measured apart) before every response to
    mimic a remote store, answers a request for several ranges
    with the whole file as S3 and Hugging Face's CDN do (``multi_range="ignore"``), and counts every request
    and body byte it serves.

    1,000 ids picked at random (fixed seed) are then downloaded into an empty directory by:

    * baseline — what cheesechaser / hfutils do: for each id, the shard index JSON is fetched (once per
      shard, cached, as they do) and parsed with ``json.loads``, then the member is fetched with one
      ``Range`` GET (``httpx``, one shared keep-alive client), its size and sha256 checked, and written.
      12 worker threads.
    * headwater — ``StorePool(url, layout="increment-id", base_level=2).batch_download_to_directory(ids,
      out, silent=True)``: ids are resolved through the manifest (one fetch), then the range planner merges
      the wanted members of each shard into a few range reads (12 in flight); every member's sha256 is
      checked and each file is written atomically.
    * headwater on a local copy — the same call on the pool folder (``StorePool(pool_dir, …)``): the same
      members read with the same code, without the network.

    Both sides start cold (fresh pool object, fresh ``HEADWATER_CACHE``, empty output directory), so index
    and manifest fetches are counted. For each side the script reports files/s, the server-side request
    count and body bytes (the server counter is reset between runs), and checks that every file written
    equals its source file. The sides alternate, ``--runs`` times each (default 3); min / median / max are
    printed and the median quoted (``benchmarks/_common.py``); request and byte counts are those of each
    side's median run.

Limit
    The picked files' bytes, concatenated into one file served by the same server, fetched with one plain
    GET (same latency): what one request for exactly the wanted bytes costs. Quoted as files/s.

Why
    Against a remote store the cost of a small-file fetch is the request (latency, per-request overhead,
    rate limits), not the bytes. Goals (issue 16), at 0 and at 20 ms: ≥ 10× fewer requests and ≥ 10× more
    files/s than the baseline, and within 2× of the local copy's files/s.
    headwater trades requests for bytes (merged ranges carry the gaps between wanted members); the body
    bytes column shows that trade.

Run::

    .venv/bin/python benchmarks/bench_fetch.py [--latency-ms 0 20] [--runs 3] [--files 20000] [--pick 1000]
                                               [--server process|thread] [--max-gap-kb 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.httpserver import FileServer, ServerHandle, start_server_process

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
from headwater.archive import MANIFEST_NAME, increment_id_shard, index_path_for, pack_directory
from headwater.pool import PlanPolicy, StorePool
from headwater.pool.planner import default_policy

GOAL_REQUESTS = 10.0
GOAL_SPEED = 10.0
GOAL_LOCAL = 2.0
BASE_LEVEL = 2
WORKERS = 12


@dataclass(frozen=True)
class RunResult:
    label: str
    seconds: float
    files: int
    requests: int
    bytes_sent: int
    by_method: dict[str, int]
    correct: int
    extra: str = ""

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds


# -- data ------------------------------------------------------------------------------------------------
def make_sources(src_dir: str, files: int, seed: int, min_size: int = 2 * 1024, max_size: int = 30 * 1024) -> int:
    """Write ``files`` random-bytes files ``<id>.bin``; returns the total bytes."""
    rng = random.Random(seed)
    os.makedirs(src_dir, exist_ok=True)
    total = 0
    for rid in range(files):
        data = rng.randbytes(rng.randint(min_size, max_size))
        with open(os.path.join(src_dir, f"{rid}.bin"), "wb") as f:
            f.write(data)
        total += len(data)
    return total


def write_picked(pool_dir: str, src_dir: str, ids: list[int]) -> tuple[str, int]:
    """The picked files' bytes, concatenated into ``_limit/picked.bin`` of the pool folder (in no manifest or
    index, so no side sees it) for the limit's one plain GET; returns its path under the pool (``/``-joined)
    and its size."""
    rel = "_limit/picked.bin"
    os.makedirs(os.path.join(pool_dir, "_limit"))
    with open(os.path.join(pool_dir, rel), "wb") as out:
        for rid in ids:
            with open(os.path.join(src_dir, f"{rid}.bin"), "rb") as member:
                out.write(member.read())
    return rel, os.path.getsize(os.path.join(pool_dir, rel))


def count_correct(out_dir: str, src_dir: str, ids: list[int]) -> int:
    """How many of ``ids`` were written to ``out_dir`` with exactly the source bytes."""
    good = 0
    for rid in ids:
        name = f"{rid}.bin"
        try:
            with open(os.path.join(out_dir, name), "rb") as got, open(os.path.join(src_dir, name), "rb") as want:
                good += got.read() == want.read()
        except FileNotFoundError:
            pass
    return good


# -- the two sides ---------------------------------------------------------------------------------------
class PerFileFetcher:
    """cheesechaser/hfutils-style download: cached per-shard index JSON, then one range GET per file."""

    def __init__(self, base_url: str, client: httpx.Client) -> None:
        self.base_url = base_url
        self.client = client
        self._indexes: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def index_fetches(self) -> int:
        return len(self._indexes)

    def index(self, shard: str) -> dict[str, Any]:
        """The parsed index JSON of ``shard``, fetched once (concurrent callers wait for the first)."""
        with self._lock:
            if shard in self._indexes:
                return self._indexes[shard]
            lock = self._locks.setdefault(shard, threading.Lock())
        with lock:
            if shard not in self._indexes:
                resp = self.client.get(f"{self.base_url}/{index_path_for(shard)}")
                resp.raise_for_status()
                with self._lock:
                    self._indexes[shard] = json.loads(resp.content)
        return self._indexes[shard]

    def download(self, rid: int, out_dir: str) -> None:
        """One range GET for ``<rid>.bin``, checked (size, sha256) like hfutils does, then written."""
        shard = increment_id_shard(rid, BASE_LEVEL)
        name = f"{rid}.bin"
        info = self.index(shard)["files"][name]
        start, size = info["offset"], info["size"]
        resp = self.client.get(f"{self.base_url}/{shard}", headers={"Range": f"bytes={start}-{start + size - 1}"})
        resp.raise_for_status()
        data = resp.content
        if len(data) != size:
            raise OSError(f"{shard}:{name}: got {len(data)} of {size} bytes")
        if info.get("sha256") and hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise OSError(f"{shard}:{name}: sha256 mismatch")
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)


Side = Callable[[str, list[int], str], tuple[float, int, str]]


def run_baseline(url: str, ids: list[int], out_dir: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    with httpx.Client(limits=limits, timeout=60.0) as client:
        fetcher = PerFileFetcher(url, client)
        with ThreadPoolExecutor(max_workers=WORKERS) as ex:
            for _ in ex.map(lambda rid: fetcher.download(rid, out_dir), ids):
                pass
    seconds = time.perf_counter() - start
    return seconds, len(ids), f"{fetcher.index_fetches} index fetches"


def headwater_side(plan: PlanPolicy | None, *, local: str | None = None) -> Side:
    """headwater's batch download from the server's URL, or with ``local`` from that folder (the same pool,
    the same code, no network: what the HTTP side is measured against)."""

    def run_headwater(url: str, ids: list[int], out_dir: str) -> tuple[float, int, str]:
        start = time.perf_counter()
        pool = StorePool(local or url, layout="increment-id", base_level=BASE_LEVEL, plan=plan)
        report = pool.batch_download_to_directory(ids, out_dir, max_workers=WORKERS, silent=True)
        seconds = time.perf_counter() - start
        if report.failed or report.missing:
            print(f"  headwater: {report.summary()}; first failures: {list(report.failed.items())[:3]}")
        return seconds, report.files, f"client counted {report.requests} requests"

    return run_headwater


def measure(label: str, fn: Side, server: ServerHandle, ids: list[int], src_dir: str, work: str) -> RunResult:
    out_dir = tempfile.mkdtemp(prefix="out-", dir=work)
    os.environ["HEADWATER_CACHE"] = tempfile.mkdtemp(prefix="cache-", dir=work)  # cold manifest cache
    server.reset()
    seconds, files, extra = fn(server.url, ids, out_dir)
    counts = server.snapshot()
    correct = count_correct(out_dir, src_dir, ids)
    shutil.rmtree(out_dir)
    return RunResult(label, seconds, files, counts.requests, counts.bytes_sent, counts.by_method, correct, extra)


# -- report ----------------------------------------------------------------------------------------------
def print_table(results: list[RunResult], picked: int) -> None:
    header = (
        f"{'side':<30} {'seconds':>8} {'files/s':>9} {'requests':>9} {'GET/HEAD':>10} "
        f"{'body MB':>8} {'correct':>10}  notes"
    )
    print(header)
    print("-" * (len(header) + 24))
    for r in results:
        methods = f"{r.by_method.get('GET', 0)}/{r.by_method.get('HEAD', 0)}"
        print(
            f"{r.label:<30} {r.seconds:>8.3f} {r.files_per_s:>9,.0f} {r.requests:>9,} {methods:>10} "
            f"{r.bytes_sent / 1e6:>8.1f} {f'{r.correct}/{picked}':>10}  {r.extra}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000, help="files in the pool (default 20000)")
    parser.add_argument("--pick", type=int, default=1000, help="random ids to download (default 1000)")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0],
                        help="server delay per request; one measurement per value (default: 0 20)")
    add_runs_option(parser)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--server",
        choices=("thread", "process"),
        default="process",
        help="run the HTTP server in a child process (default: it then does not compete with the client "
        "for the GIL, as a remote server does not) or in a background thread of this process",
    )
    parser.add_argument(
        "--max-gap-kb",
        type=int,
        default=None,
        help="PlanPolicy.max_gap for headwater over HTTP in KiB (default: the library default for HTTP)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hw-bench-fetch-") as work:
        src_dir, pool_dir = os.path.join(work, "src"), os.path.join(work, "pool")
        t0 = time.perf_counter()
        total = make_sources(src_dir, args.files, args.seed)
        t1 = time.perf_counter()
        packed = pack_directory(src_dir, pool_dir, layout="increment-id", base_level=BASE_LEVEL, silent=True)
        t2 = time.perf_counter()
        manifest_size = os.path.getsize(os.path.join(pool_dir, MANIFEST_NAME))
        ids = random.Random(args.seed + 1).sample(range(args.files), args.pick)

        limit_rel, limit_bytes = write_picked(pool_dir, src_dir, ids)

        print(describe_machine())
        print(
            f"pool: {args.files} files, {total / 1e6:.1f} MB in {len(packed.shards)} shards "
            f"(~{packed.bytes / len(packed.shards) / 1e6:.1f} MB each), manifest {manifest_size / 1e6:.2f} MB; "
            f"generated in {t1 - t0:.1f}s, packed in {t2 - t1:.1f}s"
        )
        plan = PlanPolicy(max_gap=args.max_gap_kb * 1024) if args.max_gap_kb is not None else None
        ok = True
        for latency in args.latency_ms:
            print()
            ok &= measure_latency(args, latency, plan, pool_dir, src_dir, ids, work, limit_rel, limit_bytes)
    return 0 if ok else 1


def measure_latency(args: argparse.Namespace, latency: float, plan: PlanPolicy | None, pool_dir: str,
                    src_dir: str, ids: list[int], work: str, limit_rel: str, limit_bytes: int) -> bool:
    """One latency setting: the four sides alternating, then their table and ratios; True if every file of
    every run was right."""
    # multi_range="ignore": several ranges in one GET get 200 and the whole file, as from S3 or a CDN
    if args.server == "thread":
        server: ServerHandle = FileServer(pool_dir, latency_ms=latency, multi_range="ignore").start()
    else:
        server = start_server_process(pool_dir, latency_ms=latency, multi_range="ignore")
    print(
        f"== simulated latency {latency:g} ms per request; server {server.url} in a {args.server}; "
        f"{args.pick} random ids, {WORKERS} workers each side, {args.runs} cold runs a side, alternating; "
        f"headwater over HTTP {plan or default_policy(argparse.Namespace(is_local=False))}"
    )
    labels = {"baseline": "baseline: 1 range GET / file", "headwater": "headwater StorePool, HTTP",
              "local": "headwater StorePool, local pool", "limit": "limit: 1 plain GET of the bytes"}
    try:
        runs: dict[str, list[RunResult]] = {"baseline": [], "headwater": [], "local": []}

        def side(name: str, fn: Side) -> Callable[[], float]:
            def run() -> float:
                runs[name].append(measure(labels[name], fn, server, ids, src_dir, work))
                return runs[name][-1].seconds

            return run

        def one_get() -> float:
            start = time.perf_counter()
            with httpx.Client(timeout=60.0) as client:
                body = client.get(f"{server.url}/{limit_rel}").raise_for_status().content
            seconds = time.perf_counter() - start
            if len(body) != limit_bytes:
                raise OSError(f"limit GET: got {len(body)} of {limit_bytes} bytes")
            return seconds

        times = alternate(
            {"baseline": side("baseline", run_baseline),
             "headwater": side("headwater", headwater_side(plan)),
             "local": side("local", headwater_side(None, local=pool_dir)),
             "limit": one_get},
            args.runs, log=lambda line: print(line, file=sys.stderr),
        )
    finally:
        server.stop()

    print(f"{args.runs} runs a side, alternating; files/s:")
    print(spread_table({labels[name]: Spread(t).rates(args.pick) for name, t in times.items()}, "files/s",
                       fmt=",.0f"))
    print()
    base, ours, local = (median_run(runs[name], key=lambda r: r.seconds) for name in ("baseline", "headwater", "local"))
    print("median run of each side:")
    print_table([base, ours, local], args.pick)
    print()
    req_ratio = base.requests / ours.requests
    speed_ratio, speed_line = ratio_line("files/s, headwater HTTP/baseline", times["baseline"], times["headwater"])
    local_ratio, local_line = ratio_line("files/s, local pool/headwater HTTP", times["headwater"], times["local"])
    byte_ratio = ours.bytes_sent / base.bytes_sent
    all_runs = [r for side_runs in runs.values() for r in side_runs]
    ok = all(r.correct == args.pick for r in all_runs)
    print(f"all files byte-identical to the sources, every run: {'yes' if ok else 'NO'}")
    print(
        f"requests, baseline/headwater: {req_ratio:.1f}x  (goal >= {GOAL_REQUESTS:g}x: "
        f"{'met' if req_ratio >= GOAL_REQUESTS else 'NOT met'})"
    )
    print(f"{speed_line}  (goal >= {GOAL_SPEED:g}x: {'met' if speed_ratio >= GOAL_SPEED else 'NOT met'})")
    print(f"{local_line}  (goal <= {GOAL_LOCAL:g}x: {'met' if local_ratio <= GOAL_LOCAL else 'NOT met'})")
    print(f"body bytes, headwater/baseline: {byte_ratio:.1f}x  (the price of merged ranges)")
    print(limit_line(f"one plain loopback GET of the {limit_bytes / 1e6:.1f} MB picked, same latency",
                     times["limit"], times["headwater"], args.pick, "files/s"))
    for name, results in runs.items():
        secs = ", ".join(f"{r.seconds:.2f}s/{r.requests}req" for r in results)
        print(f"  all {name} runs: {secs}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
