"""Soak: 16 clients for a fixed time through the fault proxy against ``headwater serve --workers 2``.

What is run
    A pool of ``--files`` random files (2–30 KB, ``layout="increment-id", base_level=2``) and a catalog
    (SQLite) holding one dataset of ``--droplets`` droplets, each with its own uid, are served by the real
    ``headwater serve --workers 2`` (a child process). Between the clients and the server sits the fault
    proxy (``tests/support/faultproxy.py``), which draws a fault for ``--fault-rate`` of the requests
    (default 0.1, spread evenly over: reset inside the answer, truncated answer — both after 0–16 KiB of it,
    so an answer shorter than the draw passes whole and is not counted as cut — stall of 0.3 s, slow answer,
    429/503 with ``Retry-After: 1``, a request cut with a RST after 0–16 KiB of it). With ``--kill-every S``
    (default 20) one server worker is SIGKILLed every S seconds (uvicorn starts a new one).

    ``--clients`` threads (default 16) loop for ``--seconds`` (default 60); each picks, at random:

    * ``stream`` (40 %) — ``Api(url=proxy).…stream_split("train", chunk=k, nchunks=8[, shuffle_seed])``
      with headwater's client (default retry policy), compared with the embedded stream of the same
      catalog: droplets missing are *lost*, droplets seen more than expected are *duplicated*, the rest out
      of place is *out of order*. A stream that raises is a client-visible failure, not a loss;
    * ``download`` (25 %) — ``StorePool(proxy …/resolve/main).batch_download_to_directory(20 random ids,
      fresh dir)``: every delivered file must have its source's sha256, and nothing else may be in the
      directory (a file of a failed id, a temp file) — else *files corrupt*; failed ids are client-visible;
    * ``range`` (15 %) — one ``httpx`` GET of a member with ``Range: bytes=a-b`` (a Hub client's read, no
      retries): a 206 whose body does not match the member's sha256 is *corrupt*; an error is visible;
    * ``publish`` (10 %) — ``transport.publish`` of 40 new droplets into a repository of its own (for one
      publish in five the proxy is told to cut the answer after the server got the whole body, or to cut the
      upload in the middle of the body): after the
      run each repository must hold one whole dataset if the call succeeded, none or one whole if it failed
      with "may have" (outcome unknown), none if it failed otherwise — else *publishes lost or doubled*;
    * ``bad input`` (10 %) — a hostile request sent straight to the server (garbage ``Range``, bad base64
      auth, ``%00`` / ``%2e%2e`` paths, invalid NDJSON publish, a huge header): a 5xx is *5xx on bad input*.

Output
    Requests (through the proxy, and direct), faults injected by kind and their share of connections and
    requests, operations by kind (ok / client-visible failures), worker kills, then the goal rows, all of
    which must be zero: droplets lost, droplets duplicated, streams out of order, files corrupt, publishes
    lost or doubled, 5xx caused by bad input. Exits 1 if a goal row is not zero, 2 if faults hit less than
    5 % of connections (the soak did not test what it claims).

Run::

    .venv/bin/python benchmarks/soak.py [--seconds 60] [--clients 16] [--fault-rate 0.1] [--kill-every 20]
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.faultproxy import FAULT_KINDS, FaultPlan, FaultProxy
from tests.support.files import make_files
from tests.support.servers import ServeProcess, make_user, serve_process

from _common import describe_machine
from headwater.archive import decode_index, pack_directory
from headwater.catalog import Catalog
from headwater.client import Api
from headwater.errors import HeadwaterError
from headwater.pool import StorePool

REPO = "acme/px"
BASE_LEVEL = 2
NCHUNKS = 8
PUBLISH_SIZE = 40
CUT_PUBLISH = 0.2
OPS = [("stream", 0.40), ("download", 0.25), ("range", 0.15), ("publish", 0.10), ("bad input", 0.10)]


@dataclass
class Site:
    root: str
    catalog: str
    pool: str
    files: dict[int, bytes]
    members: list[tuple[str, int, int, str]]  # (shard path, offset, size, sha256)
    key: str
    proxy_url: str = ""
    server_url: str = ""


@dataclass
class Tally:
    """What the clients saw; one per client thread, summed at the end."""

    ok: collections.Counter[str] = field(default_factory=collections.Counter)
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    goals: collections.Counter[str] = field(default_factory=collections.Counter)
    direct_requests: int = 0
    cut_publishes: int = 0  # publishes whose answer or upload the proxy was told to cut
    publishes: list[tuple[str, str]] = field(default_factory=list)  # (repository name, "ok" | "unknown")
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        kind = what.split(":", 1)[0]
        if sum(1 for e in self.examples if e.startswith(kind + ":")) < 3:
            self.examples.append(what[:300])


GOALS = ["droplets lost", "droplets duplicated", "streams out of order", "files corrupt",
         "publishes lost or doubled", "5xx caused by bad input"]


# -- the data -------------------------------------------------------------------------------------------------
def droplet(i: int) -> bytes:
    return (b'{"kind":"ImageAnnotation","image":{"paths":["https://img.example/%d.jpg"]},'
            b'"classes":{"cat":{"instances":[{"boundingBox":{"rectangle":[[0.1,0.1],[0.5,0.6]]}}]}},"uid":"s%d"}'
            % (i, i))


TEMPLATE = {"kind": "ImageAnnotationTemplate", "classes": {"cat": {"instances": {"boundingBox": True}}}}


def build(root: str, n_files: int, n_droplets: int) -> Site:
    files = make_files(os.path.join(root, "src"), list(range(1, n_files + 1)), seed=17, lo=2000, hi=30_000)
    pool = os.path.join(root, "pool")
    pack_directory(os.path.join(root, "src"), pool, layout="increment-id", base_level=BASE_LEVEL, silent=True)
    shutil.rmtree(os.path.join(root, "src"))
    members = []
    for dirpath, _dirs, names in os.walk(pool):
        for name in names:
            if name.endswith(".json"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    index = decode_index(f.read())
                shard = os.path.relpath(os.path.join(dirpath, name[:-5] + ".tar"), pool)
                members += [(shard, e.offset, e.size, e.sha256 or "") for e in index.files.values()]
    catalog = os.path.join(root, "catalog.sqlite")
    with Catalog(catalog) as cat:
        key = make_user(cat, "alice", permission="write")
        cat.create_database("main", owner="alice")
        cat.change_pool_access(REPO, owner="alice", public=True)
        cat.publish("main", "acme", "cats", template=TEMPLATE,
                    splits={"train": [droplet(i) for i in range(n_droplets)]})
    return Site(root, catalog, pool, files, sorted(members), key)


class Expected:
    """The embedded stream of each (chunk, seed), computed once and shared by the threads."""

    def __init__(self, catalog: str) -> None:
        self._dataset = Api(catalog=catalog, cache=False).get_database_by_name("main").get_dataset("acme/cats:latest")
        self._cache: dict[tuple[int, int | None], list[bytes]] = {}
        self._lock = threading.Lock()

    def __call__(self, chunk: int, seed: int | None) -> list[bytes]:
        with self._lock:
            if (chunk, seed) not in self._cache:
                self._cache[chunk, seed] = list(self._dataset.stream_split("train", chunk=chunk, nchunks=NCHUNKS,
                                                                           shuffle_seed=seed, raw=True))
            return self._cache[chunk, seed]


# -- the operations -------------------------------------------------------------------------------------------
def op_stream(site: Site, rng: random.Random, tally: Tally, expected: Expected, api: Api) -> None:
    chunk, seed = rng.randrange(NCHUNKS), rng.choice([None, 7])
    dataset = api.get_database_by_name("main").get_dataset("acme/cats:latest")
    got = list(dataset.stream_split("train", chunk=chunk, nchunks=NCHUNKS, shuffle_seed=seed, raw=True))
    want = expected(chunk, seed)
    if got != want:
        lost = collections.Counter(want) - collections.Counter(got)
        extra = collections.Counter(got) - collections.Counter(want)
        tally.goals["droplets lost"] += sum(lost.values())
        tally.goals["droplets duplicated"] += sum(extra.values())
        if not lost and not extra:
            tally.goals["streams out of order"] += 1
        tally.note(f"stream chunk {chunk} seed {seed}: {len(got)} droplets, {len(want)} expected")


def op_download(site: Site, rng: random.Random, tally: Tally, out: str) -> None:
    ids = rng.sample(sorted(site.files), 20)
    shutil.rmtree(out, ignore_errors=True)
    pool = StorePool(f"{site.proxy_url}/datasets/{REPO}/resolve/main", layout="increment-id", base_level=BASE_LEVEL)
    report = pool.batch_download_to_directory(ids, out, max_workers=4, silent=True)
    delivered = set(report.downloaded) | set(report.skipped)
    present = {n for n in os.listdir(out) if not n.endswith("_metainfo.json")}
    for rid in delivered:
        with open(os.path.join(out, f"{rid}.bin"), "rb") as f:
            if hashlib.sha256(f.read()).digest() != hashlib.sha256(site.files[rid]).digest():
                tally.goals["files corrupt"] += 1
                tally.note(f"download: {rid}.bin differs from its source")
    stray = present - {f"{rid}.bin" for rid in delivered}
    if stray:
        tally.goals["files corrupt"] += len(stray)
        tally.note(f"download: files beside the delivered ones: {sorted(stray)[:5]}")
    if report.failed or report.missing:
        raise RuntimeError(f"{len(report.failed)} failed, {len(report.missing)} missing: "
                           f"{list(report.failed.values())[:1]}")


def op_range(site: Site, rng: random.Random, tally: Tally, client: httpx.Client) -> None:
    shard, offset, size, sha = rng.choice(site.members)
    answer = client.get(f"{site.proxy_url}/datasets/{REPO}/resolve/main/{shard}",
                        headers={"Range": f"bytes={offset}-{offset + size - 1}"})
    if answer.status_code != 206:
        raise RuntimeError(f"HTTP {answer.status_code}")
    if hashlib.sha256(answer.content).hexdigest() != sha:
        tally.goals["files corrupt"] += 1
        tally.note(f"range {shard}@{offset}+{size}: 206 with other bytes")


def op_publish(site: Site, rng: random.Random, tally: Tally, api: Api, name: str, proxy: FaultProxy) -> None:
    if rng.random() < CUT_PUBLISH:  # the answer is lost after the server got the whole publish, or the upload dies
        tally.cut_publishes += 1
        kind = rng.choice(["reset", "truncate", "upload"])
        proxy.inject(kind, path=f"/{name}/publish", cut_after=rng.randint(0, 6000) if kind == "upload" else 0)
    items = [("train", json.loads(droplet(i).replace(b'"s%d"' % i, f'"{name}-{i}"'.encode())))
             for i in range(PUBLISH_SIZE)]
    try:
        api.transport.publish("main", "acme", name, items, tags=["latest"])  # type: ignore[attr-defined]
    except (HeadwaterError, httpx.HTTPError) as err:
        tally.publishes.append((name, "unknown" if "may have" in str(err) else "failed"))
        raise
    tally.publishes.append((name, "ok"))


def _raw(url: str, request: bytes) -> int:
    host, port = url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data and (chunk := sock.recv(4096)):
            data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def op_bad_input(site: Site, rng: random.Random, tally: Tally, client: httpx.Client) -> None:
    url = site.server_url
    shard = rng.choice(site.members)[0]
    key = base64.b64encode(site.key.encode()).decode()
    ranges = ["bytes=9-1", "bytes=x-y", "items=0-1", "bytes=" + "9" * 40, "bytes=" + ",".join(["0-0"] * 400), "bytes=-"]
    tokens = ["%%%", "Zm9v", "====", base64.b64encode(os.urandom(12)).decode(), "hw_x_y"]
    paths = [b"%00", b"%2e%2e/%2e%2e/etc/passwd", b"%c0%ae%c0%ae/x", b"images/%ff.tar", b"a\xff"]
    bodies = [b"not json\n", b'{"tags":["x"]}\n{"split":"train"}\n',
              b'{"tags":["x"]}\n{"split":"train","droplet":{"image":{}}}\n', b"[" * 10000 + b"\n"]
    close = b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    attempts: list[Callable[[], int]] = [
        lambda: client.get(f"{url}/datasets/{REPO}/resolve/main/{shard}",
                           headers={"Range": rng.choice(ranges)}).status_code,
        lambda: client.get(f"{url}/api/database",
                           headers={"Authorization": "Bearer " + rng.choice(tokens)}).status_code,
        lambda: _raw(url, b"GET /datasets/acme/px/resolve/main/" + rng.choice(paths) + close + b"\r\n"),
        lambda: client.post(f"{url}/api/database/main/repository/acme/bad/publish",
                            headers={"Authorization": f"Bearer {key}"}, content=rng.choice(bodies)).status_code,
        lambda: _raw(url, b"GET /api/database" + close + b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n"),
    ]
    status = rng.choice(attempts)()
    tally.direct_requests += 1
    if status >= 500 or status == 0:
        tally.goals["5xx caused by bad input"] += 1
        tally.note(f"bad input answered {status}")


def client_loop(index: int, site: Site, deadline: float, expected: Expected, tally: Tally,
                proxy: FaultProxy) -> None:
    rng = random.Random(index)
    api = Api(url=site.proxy_url, api_key=site.key, cache=False)
    out = os.path.join(site.root, f"out-{index}")
    count = 0
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            kind = rng.choices([k for k, _ in OPS], [w for _, w in OPS])[0]
            try:
                if kind == "stream":
                    op_stream(site, rng, tally, expected, api)
                elif kind == "download":
                    op_download(site, rng, tally, out)
                elif kind == "range":
                    op_range(site, rng, tally, client)
                elif kind == "publish":
                    count += 1
                    op_publish(site, rng, tally, api, f"soak-{index}-{count}", proxy)
                else:
                    op_bad_input(site, rng, tally, client)
            except (HeadwaterError, httpx.HTTPError, OSError, RuntimeError) as err:
                tally.failed[kind] += 1
                tally.note(f"{kind}: {type(err).__name__}: {err}")
            else:
                tally.ok[kind] += 1


def check_publishes(site: Site, publishes: list[tuple[str, str]]) -> tuple[int, int, list[str]]:
    """(publishes lost or doubled, unknown outcomes that did commit, notes) from what the catalog holds."""
    bad, landed, notes = 0, 0, []
    with Catalog(site.catalog) as cat:
        names = {r.name for r in cat.repositories("main")}
        for name, outcome in publishes:
            found = [d.splits for d in cat.datasets("main", "acme", name)] if name in names else []
            whole = found in ([], [{"train": PUBLISH_SIZE}])
            landed += outcome == "unknown" and bool(found)
            if not whole or (outcome == "ok" and not found) or (outcome == "failed" and found):
                bad += 1
                notes.append(f"publish {name} ({outcome}): catalog holds {found}")
    return bad, landed, notes


def killer(server: ServeProcess, every: float, deadline: float, kills: list[int]) -> None:
    while time.monotonic() + every < deadline:
        time.sleep(every)
        pids = server.workers()
        if pids:
            os.kill(random.choice(pids), signal.SIGKILL)
            kills.append(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of requests given a fault")
    parser.add_argument("--kill-every", type=float, default=20.0, help="SIGKILL a worker every S seconds (0: never)")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--droplets", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="headwater-soak-")
    os.environ.setdefault("HEADWATER_CACHE", os.path.join(root, "cache"))
    try:
        t0 = time.monotonic()
        site = build(root, args.files, args.droplets)
        expected = Expected(site.catalog)
        print(describe_machine())
        print(f"data: {args.files} files, {len(site.members)} members, {args.droplets} droplets "
              f"({time.monotonic() - t0:.1f} s)", flush=True)
        plan = FaultPlan.uniform(args.fault_rate, seed=args.seed, cut_after=(0, 16_384), stall_seconds=0.3,
                                 slow_chunk=8192, slow_delay=0.002, retry_after=1)
        with serve_process(site.catalog, "--pool", f"{REPO}={site.pool}", "--workers", "2") as server, \
                FaultProxy(server.port, plan) as proxy:
            site.proxy_url, site.server_url = proxy.url, server.url
            deadline = time.monotonic() + args.seconds
            tallies = [Tally() for _ in range(args.clients)]
            kills: list[int] = []
            threads = [threading.Thread(target=client_loop, args=(i, site, deadline, expected, tallies[i], proxy))
                       for i in range(args.clients)]
            if args.kill_every > 0:
                threads.append(threading.Thread(target=killer, args=(server, args.kill_every, deadline, kills)))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - deadline + args.seconds
            tracebacks = server.stderr().count("Traceback")
            connections, requests, faults, cuts = proxy.connections, proxy.requests, dict(proxy.faults), proxy.cuts
        total = Tally()
        for tally in tallies:
            total.ok.update(tally.ok)
            total.failed.update(tally.failed)
            total.goals.update(tally.goals)
            total.direct_requests += tally.direct_requests
            total.cut_publishes += tally.cut_publishes
            total.publishes += tally.publishes
            total.examples += tally.examples
        bad_publishes, landed, notes = check_publishes(site, total.publishes)
        total.goals["publishes lost or doubled"] += bad_publishes
        total.examples += notes
    finally:
        shutil.rmtree(root, ignore_errors=True)

    share = sum(faults.values()) / max(connections, 1)
    print(f"\nsoak: {args.clients} clients, {elapsed:.0f} s, headwater serve --workers 2, fault rate "
          f"{args.fault_rate:g} per request, a worker SIGKILLed every {args.kill_every:g} s" if args.kill_every
          else f"\nsoak: {args.clients} clients, {elapsed:.0f} s, headwater serve --workers 2, fault rate "
          f"{args.fault_rate:g} per request, no worker kills")
    rows: list[tuple[str, Any]] = [
        ("requests through the proxy", requests), ("connections through the proxy", connections),
        ("requests straight to the server (bad input)", total.direct_requests),
        *[(f"faults injected: {k}", faults.get(k, 0)) for k in FAULT_KINDS],
        ("answers cut by those resets / truncations", f"{cuts['reset']} / {cuts['truncate']}"),
        ("requests cut while uploading", cuts["upload"]),
        ("faults per connection", f"{share:.1%}"),
        ("faults per request", f"{sum(faults.values()) / max(requests, 1):.1%}"),
        ("workers SIGKILLed", len(kills)), ("server tracebacks in its log", tracebacks),
        *[(f"{k}: ok / client-visible failures", f"{total.ok[k]} / {total.failed[k]}") for k, _ in OPS],
        ("client-visible failures", sum(total.failed.values())),
        ("publishes cut on purpose (answer lost, or upload cut)", total.cut_publishes),
        ("publishes with an unknown outcome (answer lost)", sum(1 for _, o in total.publishes if o == "unknown")),
        ("  of which committed (once, whole)", landed),
    ]
    width = max(len(k) for k, _ in rows) + 2
    for k, v in rows:
        print(f"  {k:<{width}} {v}")
    print("goals (all must be 0):")
    for k in GOALS:
        print(f"  {k:<{width}} {total.goals[k]}")
    if total.examples:
        print("notes (the first few of each kind):")
        by_kind: collections.Counter[str] = collections.Counter()
        for e in total.examples:
            by_kind[e.split(":", 1)[0]] += 1
            if by_kind[e.split(":", 1)[0]] <= 3:
                print("  " + e)
    if any(total.goals[k] for k in GOALS):
        return 1
    if share < 0.05:
        print(f"faults hit only {share:.1%} of connections (< 5 %): raise --fault-rate")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
