"""Benchmark: training-loader throughput — headwater vs WebDataset, MosaicML Streaming (MDS) and LitData.

What is measured
    One epoch through a real ``torch.utils.data.DataLoader`` with ``--workers`` workers (default 2), batch
    32, every sample a decoded Pillow image (RGB, fully loaded) plus its annotation, the same JPEG bytes and
    droplets (JSON) for every system:

    * headwater: ``DropletLoader(DropletDataset(dataset, "train", images="pil", shuffle_seed=S))`` —
      droplets from the embedded SQLite catalog, images from the tar pool through its manifest with planned,
      coalesced range reads, decoded into ``ImageAnnotation`` structs (``persistent_workers=True`` when the
      loader accepts it). Side script ``_torch_headwater.py``.
    * WebDataset (project venv): ``WebDataset(shards).decode("pil").to_tuple(...)`` over the *same* tars;
      shuffled: ``shardshuffle`` + ``.shuffle(--buffer)``. ``_torch_webdataset.py``.
    * MosaicML Streaming 0.13 (own venv, numpy<2.2): ``MDSWriter`` (columns key:int, jpg:bytes, json:json),
      ``StreamingDataset``; shuffled: ``shuffle=True, shuffle_algo="py1e"``. ``_torch_mosaic.py``.
    * LitData 0.2.76 (own venv): ``litdata.optimize`` (key, jpg bytes, json text), ``StreamingDataset`` +
      ``StreamingDataLoader``; shuffled: ``shuffle=True``. ``_torch_litdata.py``.

    Every format is cut into shards of ``--per-shard`` samples (500: ~2.4 MB), and the peers decode the
    JPEG bytes with the same Pillow call (``_torch_epoch.decode_image``) and parse the JSON with ``json``.
    Conversion time (tars + index, catalog publish, MDS, LitData) is printed apart, never in an epoch.

Settings (``--settings``, default all): ``local-warm`` (files in the page cache), ``local-cold`` (the pages
of every data file dropped with ``posix_fadvise(DONTNEED)`` before each epoch — no root needed), ``http``
(the files on the tests' ``FileServer`` in a child process with ``--latency-ms`` (20) per request; each
system reads with its own client: headwater range reads, WebDataset a ``curl`` per shard, Mosaic and
LitData download whole shards into a fresh cache dir with boto3 — neither reads plain HTTP, so the server
stands in for an S3 endpoint, path-style ``GET/HEAD /bucket/key``), each unshuffled and ``…-shuffle``
(each system's own shuffle).

For each run: samples/s of the epoch (timed from building the loader, worker start included), time to
first batch, peak RSS of the loader process + workers, storage bytes read (``/proc/self/io`` read_bytes,
meaningful cold) or requests and body bytes counted at the server (HTTP), and the **shuffle quality** of
the order the batches arrived in: mean |Δ stored position| of consecutive samples in a batch as a share
of n/3 (what a uniform permutation gives; 0 for no shuffle) and the mean number of distinct stored
500-sample shards a batch draws from (uniform: ~16 of 20 at n=10,000) — no loader wins by shuffling less.

Before any timing every system runs one epoch per source (shuffled if a shuffled setting is selected) that
returns the JPEG bytes: every
sample must arrive exactly once with the SHA-256 of its source file (the script exits 1 otherwise), and
every converted format must hold all n samples (``litdata.optimize`` can write 0 chunks silently). Then
the systems alternate ``--runs`` epochs each (``_common.alternate``); each run is a fresh process. Unshuffled,
headwater's on-disk stream cache is filled by one untimed epoch first (every epoch after a job's first
finds it; shuffled passes do not use it).

Goal: headwater ≥ 1.5× the best peer's samples/s in every setting (issue 16). No limit line: the bound of
2 workers decoding 64×64 JPEGs is printed instead as the decode-only rate of one worker × workers.

Run::

    .venv/bin/python benchmarks/bench_torch.py [--n 10000] [--runs 3] [--settings local-warm,http-shuffle]
        [--systems headwater,litdata] [--workers 2] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from _common import Spread, add_runs_option, alternate, describe_machine, limit_line, median_run, ratio_line
from _torch_epoch import decode_image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for tests.support

from tests.support.httpserver import ServerHandle, start_server_process  # noqa: E402
from tests.support.peers import peer_python  # noqa: E402

FAIR_SHUFFLE = 0.5  # a shuffle that spreads less than half as far as a uniform one is not compared as one
GOAL = 1.5
EPOCH_TIMEOUT = 180  # seconds: a side that hangs (e.g. a worker that cannot pickle its sample) fails
SYSTEMS = ("headwater", "webdataset", "mosaic", "litdata")
SETTINGS = ("local-warm", "local-warm-shuffle", "local-cold", "local-cold-shuffle", "http", "http-shuffle")
BUCKET = "bench"  # the served tree: <www>/bench/{pool,mds,litdata}
MOSAIC_REQUIREMENTS = ["mosaicml-streaming==0.13.0", "numpy<2.2", "torch==2.13.0", "Pillow"]
LITDATA_REQUIREMENTS = ["litdata==0.2.76", "torch==2.13.0", "Pillow"]


def make_images(src: str, n: int, seed: int) -> list[bytes]:
    """``n`` small JPEGs (64×64, noise on a colour) and a droplet each, written as ``{key}.jpg``/``.json``."""
    rng = random.Random(seed)
    droplets = []
    for i in range(n):
        key = f"{i:07d}"
        img = Image.merge("RGB", [Image.effect_noise((64, 64), 20 + rng.randrange(40)) for _ in range(3)])
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        with open(os.path.join(src, key + ".jpg"), "wb") as f:
            f.write(buf.getvalue())
        x, y = rng.random() * 0.5, rng.random() * 0.5
        droplet = {"kind": "ImageAnnotation", "uid": key, "image": {"paths": [f"pool://images/{key}.jpg"]},
                   "classes": {"thing": {"instances": [{"boundingBox": {"rectangle": [[x, y], [x + 0.3, y + 0.3]]}}],
                                         "multiInstances": []}}}
        data = json.dumps(droplet, separators=(",", ":")).encode()
        with open(os.path.join(src, key + ".json"), "wb") as f:
            f.write(data)
        droplets.append(data)
    return droplets


def write_shards(src: str, pool: str, per_shard: int) -> None:
    """Tar shards of ``per_shard`` whole samples each (WebDataset needs a sample's files in one shard),
    written with headwater's ShardWriter (index JSON alongside), then the pool manifest."""
    from headwater.archive import rebuild_manifest
    from headwater.archive.writer import ShardWriter, archive_size, member_footprint

    names = sorted(os.listdir(src))
    per = 2 * per_shard  # .jpg + .json
    os.makedirs(pool)
    for s, i in enumerate(range(0, len(names), per)):
        group = [(n, os.path.join(src, n), os.path.getsize(os.path.join(src, n))) for n in names[i:i + per]]
        total = archive_size(sum(member_footprint(n, size) for n, _, size in group))
        with ShardWriter(os.path.join(pool, f"shard-{s:05d}.tar"), total) as writer:
            for name, path, size in group:
                writer.add_file(name, path, size)
    rebuild_manifest(pool)


def drop_pages(*roots: str) -> int:
    """Drop the page cache of every file under ``roots`` (``posix_fadvise(DONTNEED)``); returns the bytes."""
    total = 0
    for base, _, files in (walked for root in roots for walked in os.walk(root)):
        for name in files:
            fd = os.open(os.path.join(base, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                total += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return total


class SideFailed(Exception):
    """A side's epoch exited with an error, printed no result, or ran past ``EPOCH_TIMEOUT``."""


def run_side(python: str, script: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one side's epoch in a fresh process (its own session, so a hung run's workers die with it);
    its one result line as a dict."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH", "")) if p)}
    with subprocess.Popen([python, os.path.join(HERE, script), json.dumps(cfg)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=EPOCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise SideFailed(f"no result after {EPOCH_TIMEOUT} s (hung)") from None
    lines = [line for line in out.splitlines() if line.startswith("EPOCH-RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(out[-2000:] + err[-4000:])
        errors = [line for line in err.splitlines() if re.match(r"\w[\w.]*(Error|Exception): ", line)]
        raise SideFailed(f"exit {proc.returncode}: {errors[-1] if errors else err[-300:].strip()}")
    return dict(json.loads(lines[-1][len("EPOCH-RESULT "):]))


def convert(python: str, script: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run a peer's conversion (``script convert CFG``); its JSON result (seconds, samples, shards)."""
    proc = subprocess.run([python, os.path.join(HERE, script), json.dumps({**cfg, "mode": "convert"})],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": HERE})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("CONVERT-RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        sys.exit(f"{script} conversion failed (exit {proc.returncode})")
    return dict(json.loads(lines[-1][len("CONVERT-RESULT "):]))


def shuffle_quality(result: dict[str, Any], n: int, per_shard: int) -> tuple[float, float]:
    """(mean |Δ stored position| of consecutive samples within a batch / (n/3), mean distinct shards a batch
    draws from); stored position = the sample's key."""
    keys, sizes = result["keys"], result["batches"]
    deltas: list[int] = []
    shards: list[int] = []
    i = 0
    for size in sizes:
        batch = keys[i:i + size]
        i += size
        deltas.extend(abs(b - a) for a, b in itertools.pairwise(batch))
        shards.append(len({k // per_shard for k in batch}))
    return (statistics.fmean(deltas) / (n / 3) if deltas else 0.0), statistics.fmean(shards)


def check_once(system: str, label: str, result: dict[str, Any], n: int, digests: list[str] | None) -> None:
    """Every sample exactly once (and, given ``digests``, with its SHA-256); exit 1 naming the first fault."""
    keys = result["keys"]
    if sorted(keys) != list(range(n)):
        seen = set(keys)
        missing = [k for k in range(n) if k not in seen][:5]
        sys.exit(f"{system} {label}: {len(keys)} samples, {len(seen)} distinct of {n} (missing e.g. {missing})")
    if digests is not None:
        bad = [k for k, h in zip(keys, result["sha256"], strict=True) if h != digests[k]]
        if bad:
            sys.exit(f"{system} {label}: {len(bad)} samples with the wrong JPEG bytes (e.g. key {bad[0]})")


_JPEGS: list[bytes] = []  # the decode limit's input, inherited by its forked processes (no copy through a pipe)


def _decode_share(part: tuple[int, int]) -> int:
    w, workers = part
    for raw in _JPEGS[w::workers]:
        decode_image(raw)  # dropped at once, as a training step would after using it
    return len(_JPEGS[w::workers])


def decode_limit(src: str, n: int, workers: int, runs: int) -> list[float]:
    """Seconds for ``workers`` forked processes to decode every JPEG from memory with the decode every system's
    sample gets (:func:`_torch_epoch.decode_image`): no storage, no annotation, no hand-off to a main process.
    What a loader with as many workers cannot beat on this machine."""
    _JPEGS[:] = [Path(src, f"{i:07d}.jpg").read_bytes() for i in range(n)]
    times = []
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for _ in range(runs):
                start = time.perf_counter()
                assert sum(pool.map(_decode_share, [(w, workers) for w in range(workers)])) == n
                times.append(time.perf_counter() - start)
    finally:
        _JPEGS.clear()
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--per-shard", type=int, default=500, help="samples per shard/chunk in every format")
    ap.add_argument("--buffer", type=int, default=1000, help="WebDataset's sample shuffle buffer")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of {', '.join(SETTINGS)}")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma list of {', '.join(SYSTEMS)}")
    add_runs_option(ap)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # each table as soon as it is done
    settings = [s for s in args.settings.split(",") if s]
    systems = [s for s in args.systems.split(",") if s]
    for name in settings:
        if name not in SETTINGS:
            ap.error(f"unknown setting {name!r}")
    for name in systems:
        if name not in SYSTEMS:
            ap.error(f"unknown system {name!r}")

    from headwater.catalog import Catalog

    pythons = {"headwater": sys.executable, "webdataset": sys.executable}
    if "mosaic" in systems:
        pythons["mosaic"] = peer_python("mosaic", MOSAIC_REQUIREMENTS)
    if "litdata" in systems:
        pythons["litdata"] = peer_python("litdata", LITDATA_REQUIREMENTS)

    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="hw-bench-torch-") as tmp:
        src, www = os.path.join(tmp, "src"), os.path.join(tmp, "www")
        served = os.path.join(www, BUCKET)
        pool, mds, lit = (os.path.join(served, d) for d in ("pool", "mds", "litdata"))
        os.makedirs(src)
        t0 = time.perf_counter()
        droplets = make_images(src, args.n, args.seed)
        made = time.perf_counter() - t0
        digests = [hashlib.sha256(Path(src, f"{i:07d}.jpg").read_bytes()).hexdigest() for i in range(args.n)]
        t0 = time.perf_counter()
        write_shards(src, pool, per_shard=args.per_shard)
        tars = time.perf_counter() - t0
        shards = sorted(os.path.join(pool, f) for f in os.listdir(pool) if f.endswith(".tar"))
        size = sum(os.path.getsize(s) for s in shards)
        os.makedirs(os.path.join(tmp, "catalog"))
        catalog_path = os.path.join(tmp, "catalog", "catalog.sqlite")
        t0 = time.perf_counter()
        with Catalog(catalog_path) as catalog:
            catalog.create_database("main")
            catalog.publish("main", "bench", "torch", pools={"images": pool}, splits={"train": droplets},
                            template={"kind": "ImageAnnotationTemplate",
                                      "classes": {"thing": {"instances": {"boundingBox": True}}}})
        published = time.perf_counter() - t0
        conversions = [f"tars+index+manifest {tars:.1f} s", f"catalog publish {published:.1f} s"]
        sample_bytes = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src)) / args.n
        shard_bytes = int(sample_bytes * args.per_shard * 1.01)  # MDS cuts by bytes: ~per_shard samples a shard
        if "mosaic" in systems:
            done = convert(pythons["mosaic"], "_torch_mosaic.py",
                           {"src": src, "out": mds, "n": args.n, "size_limit": shard_bytes})
            if done["samples"] != args.n:
                sys.exit(f"MDS holds {done['samples']} samples, expected {args.n}")
            conversions.append(f"MDS {done['seconds']:.1f} s ({done['shards']} shards)")
        if "litdata" in systems:
            done = convert(pythons["litdata"], "_torch_litdata.py",
                           {"src": src, "out": lit, "n": args.n, "chunk_size": args.per_shard})
            if done["samples"] != args.n or done["shards"] == 0:
                sys.exit(f"LitData wrote {done['shards']} chunks with {done['samples']} samples, expected {args.n}")
            conversions.append(f"LitData optimize {done['seconds']:.1f} s ({done['shards']} chunks)")
        print(f"data: {args.n:,} samples (64x64 JPEG + droplet JSON), made in {made:.1f} s; {len(shards)} tar shards "
              f"of {args.per_shard} samples, {size / 1e6:.0f} MB")
        print("conversion (not in any epoch): " + "; ".join(conversions))
        print(f"loaders: DataLoader workers={args.workers}, batch {args.batch}; each epoch a fresh process; "
              f"WebDataset shuffle buffer {args.buffer}")
        limit = decode_limit(src, args.n, args.workers, args.runs)
        print(f"limit: Pillow decode of the same JPEGs from memory in {args.workers} processes: "
              f"{Spread(limit).rates(args.n).median:,.0f} samples/s (median of {len(limit)})")

        server: ServerHandle | None = None
        if any(s.startswith("http") for s in settings):
            server = start_server_process(www, latency_ms=args.latency_ms, multi_range="ignore")
            print(f"http: FileServer in a child process, {args.latency_ms:g} ms per request, {server.url}")
        try:
            cache_dir = os.path.join(tmp, "stream-cache")
            base = {"workers": args.workers, "batch": args.batch, "seed": args.seed, "buffer": args.buffer}

            def config(system: str, source: str, shuffle: bool, mode: str, scratch: str) -> dict[str, Any]:
                http = source == "http"
                cfg = {**base, "shuffle": shuffle, "mode": mode}
                if system == "headwater":
                    cfg |= {"catalog": catalog_path, "cache": cache_dir,
                            "pool": f"{server.url}/{BUCKET}/pool" if http and server else None}
                elif system == "webdataset":
                    cfg["shards"] = ([f"{server.url}/{BUCKET}/pool/{os.path.basename(s)}" for s in shards]
                                     if http and server else shards)
                else:
                    local_dir = mds if system == "mosaic" else lit
                    cfg |= {"local": local_dir, "remote": None, "cache": scratch}
                    if http and server:
                        cfg |= {"remote": f"s3://{BUCKET}/{os.path.basename(local_dir)}", "endpoint": server.url}
                return cfg

            scripts = {s: f"_torch_{s}.py" for s in SYSTEMS}

            def epoch(system: str, source: str, shuffle: bool, mode: str, cold: bool) -> dict[str, Any]:
                scratch = tempfile.mkdtemp(prefix=f"{system}-cache-", dir=tmp)
                try:
                    if cold:  # every data file any system reads: the served tree, the catalog, the stream cache
                        drop_pages(www, os.path.dirname(catalog_path), cache_dir)
                    if server is not None:
                        server.reset()
                    result = run_side(pythons[system], scripts[system],
                                      config(system, source, shuffle, mode, scratch))
                    if server is not None and source == "http":
                        snap = server.snapshot()
                        result["requests"], result["bytes"] = snap.requests, snap.bytes_sent
                    return result
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)

            # the bytes check: once per system and source, shuffled when any selected setting is (every timed
            # epoch checks "exactly once" again)
            failed: dict[tuple[str, str], str] = {}
            for source in dict.fromkeys(s.split("-")[0] for s in settings):
                shuffled = any(s.startswith(source) and s.endswith("-shuffle") for s in settings)
                for system in systems:
                    try:
                        result = epoch(system, source, shuffled, "verify", False)
                    except SideFailed as err:  # reported and left out of this source's tables, not hidden
                        failed[(system, source)] = str(err)
                        print(f"FAILED: {system} could not read every sample from the {source} source ({err}); "
                              f"left out of the {source} settings")
                        continue
                    check_once(system, f"{source} verify", result, args.n, digests)
            if "headwater" in systems and any(not s.endswith("-shuffle") for s in settings):
                # unshuffled, headwater replays its on-disk stream cache (droplets as NDJSON blocks) in every
                # epoch after the first: fill it once, untimed, so every timed epoch is such an epoch
                epoch("headwater", "local", False, "time", False)
            print(f"checked: every system delivered all {args.n:,} samples exactly once with the SHA-256 of its "
                  f"source JPEG, from every source selected")
            for setting in settings:
                source, shuffle, cold = setting.split("-")[0], setting.endswith("-shuffle"), "-cold" in setting
                here = [s for s in systems if (s, source) not in failed]
                results: dict[str, list[dict[str, Any]]] = {s: [] for s in here}
                broken: dict[str, list[str]] = {}

                def side(system: str, source: str = source, shuffle: bool = shuffle, cold: bool = cold,
                         setting: str = setting, results: dict[str, list[dict[str, Any]]] = results,
                         broken: dict[str, list[str]] = broken) -> Callable[[], float]:
                    def run() -> float:
                        try:
                            result = epoch(system, source, shuffle, "time", cold)
                        except SideFailed as err:  # e.g. Mosaic's reader over HTTP, shuffled: reported below
                            broken.setdefault(system, []).append(str(err))
                            return math.nan
                        check_once(system, setting, result, args.n, None)
                        results[system].append(result)
                        return float(result["seconds"])
                    return run

                times = alternate({s: side(s) for s in here}, args.runs,
                                  log=lambda line: print(line, file=sys.stderr))
                measured = [s for s in here if s not in broken]
                print_setting(setting, measured, {s: times[s] for s in measured}, results, args, limit)
                for system, errors in broken.items():
                    print(f"{system}: not measured: {len(errors)} of {args.runs} timed epochs failed ({errors[0]})")
                for (system, where), why in failed.items():
                    if where == source:
                        print(f"{system}: not measured ({why})")
        finally:
            if server is not None:
                server.stop()
    return 0


def print_setting(setting: str, systems: list[str], times: dict[str, list[float]],
                  results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, limit: list[float]) -> None:
    """One table: a row per system, then headwater over the best peer against the goal."""
    http = setting.startswith("http")
    print(f"\n== {setting}: {args.runs} epoch(s) a system, alternating ==")
    head = (f"{'system':<11} {'samples/s min':>13} {'median':>8} {'max':>8} {'TTFB s':>7} {'peak MB':>8} "
            f"{'req/smp' if http else '':>8} {'B/smp' + ('' if http else ' disk'):>11} {'|Δpos|/(n/3)':>12} "
            f"{'shards/batch':>12}")
    print(head)
    print("-" * len(head))
    for system in systems:
        rates = Spread(times[system]).rates(args.n)
        mid = median_run(results[system], key=lambda r: float(r["seconds"]))
        delta, per_batch = shuffle_quality(mid, args.n, args.per_shard)
        req = f"{mid['requests'] / args.n:.4f}" if http else ""
        nbytes = (mid["bytes"] if http else mid["read_bytes"]) / args.n
        ttfb = statistics.median(float(r["ttfb"]) for r in results[system])
        peak = statistics.median(float(r["peak_rss"]) for r in results[system]) / 1e6
        note = f"  ({'; '.join(mid['notes'])})" if mid.get("notes") else ""
        print(f"{system:<11} {rates.min:>13,.0f} {rates.median:>8,.0f} {rates.max:>8,.0f} {ttfb:>7.2f} {peak:>8.0f} "
              f"{req:>8} {nbytes:>11,.0f} {delta:>12.3f} {per_batch:>12.1f}{note}")
    if "headwater" in systems:
        print(limit_line(f"Pillow decode from memory, {args.workers} processes; headwater's share", limit,
                         times["headwater"], args.n, "samples/s"))
    peers = [s for s in systems if s != "headwater"]
    if "headwater" in systems and peers:
        best = min(peers, key=lambda s: statistics.median(times[s]))
        ratio, line = ratio_line(f"ratio headwater/{best} (the best peer)", times[best], times["headwater"])
        print(f"{line}  (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'})")
    if setting.endswith("-shuffle") and "headwater" in systems:
        # no loader wins by shuffling less: also against the best peer whose shuffle spreads at least half as far
        # as a uniform one (LitData's spreads 0.03 here: it reads almost in stored order)
        spread = {s: shuffle_quality(median_run(results[s], key=lambda r: float(r["seconds"])), args.n,
                                     args.per_shard)[0] for s in peers}
        mixing = [s for s in peers if spread[s] >= FAIR_SHUFFLE]
        if mixing and set(mixing) != set(peers):
            best = min(mixing, key=lambda s: statistics.median(times[s]))
            ratio, line = ratio_line(f"ratio headwater/{best} (the best peer with |Δpos|/(n/3) >= {FAIR_SHUFFLE})",
                                     times[best], times["headwater"])
            print(f"{line}  (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(main())
