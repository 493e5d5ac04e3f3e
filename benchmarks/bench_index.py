"""Benchmark: indexing tar shards — hfutils' ``tar_create_index`` vs headwater, one shard and a folder of them.

What is measured
    Wall-clock seconds to turn local tars of many small files into their index JSON in the hfutils format
    (``filesize``, git-blob ``hash``, LFS ``hash_lfs``, and per member ``offset``/``size``/``sha256``).

    * one shard — hfutils: ``hfutils.index.tar_create_index(tar, dst, silent=True)``. It hashes the whole
      file in one pass, then iterates the tar with :mod:`tarfile` and, for every member, extracts it into a
      fresh temporary directory to hash it — one temp dir, one file write and one re-read per member.
      headwater: ``index_tar(tar)`` followed by ``encode_index`` and a file write (so both sides end with a
      JSON file on disk). One forward pass over raw 512-byte headers hashes every member in place while the
      whole-file SHA-1 and SHA-256 run on two threads of their own; nothing is extracted.
    * a folder of ``--shards`` shards — headwater: ``headwater index FOLDER --no-manifest -q`` run in this
      process, which indexes as many shards at once as there are usable cores; against the limit, and with
      ``--hfutils-folder`` also against hfutils' ``tar_create_index`` on each tar in turn (it has no folder
      command; its time per tar is the one-shard time, so it is left out by default to keep the run short).

Why
    Indexing is what ``pack``/``index`` do for every shard of a pool; with many small files (the typical
    image pool) the per-member extraction dominates. The goals: ≥ 20× hfutils, and ≥ 0.8 of the limit
    below, with byte-for-byte equivalent output: the script checks ``json.loads`` of both files are equal.

Data
    ``--shards`` tars of ``--files`` files each, 200 B – 20 KB random bytes (fixed seed), written to a temp
    dir and put in tars with :mod:`tarfile` (default PAX format: each member has a pax header for its
    mtime). The first tar is the one-shard case. The tars are in the page cache for every side. The sides
    run alternately ``--runs`` times each (default 3); min / median / max are printed and the median quoted
    (``benchmarks/_common.py``).

Limit
    The hashes the indexes need, done with :mod:`hashlib` on the same bytes already in memory, on all
    cores: for every shard SHA-256 and git-blob SHA-1 of the whole tar and SHA-256 of each member, each of
    the three on a thread of its own and every shard at once (hashlib releases the GIL) — no reading, no
    parsing, no JSON. headwater's figure is printed as a share of it.

    ``--breakdown`` also prints, for the one shard, the CPU seconds of each part of headwater's work done
    alone on one thread (read, header walk, each hash), which shows what stands between it and the limit.

Run::

    .venv/bin/python benchmarks/bench_index.py [--files 5000] [--shards 4] [--runs 3] [--seed 1234] [--breakdown]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from _common import Spread, add_runs_option, alternate, describe_machine, limit_line, ratio_line, spread_table

GOAL_SPEEDUP = 20.0
GOAL_LIMIT = 0.8


def build_tar(
    tar_path: str, src_dir: str, files: int, seed: int, min_size: int = 200, max_size: int = 20 * 1024
) -> int:
    """Write ``files`` random-bytes files ``src_dir/NNNNN.bin`` and tar them (as ``data/NNNNN.bin``) with
    :mod:`tarfile`; returns the payload bytes."""
    rng = random.Random(seed)
    payload = 0
    os.makedirs(src_dir, exist_ok=True)
    with tarfile.open(tar_path, "w") as tar:
        for i in range(files):
            data = rng.randbytes(rng.randint(min_size, max_size))
            path = os.path.join(src_dir, f"{i:05d}.bin")
            with open(path, "wb") as f:
                f.write(data)
            tar.add(path, arcname=f"data/{i:05d}.bin")
            payload += len(data)
    return payload


class InMemory:
    """A tar's bytes and its members' spans, loaded before the limit is timed."""

    def __init__(self, tar_path: str) -> None:
        with open(tar_path, "rb") as f:
            self.data = f.read()
        with tarfile.open(tar_path, "r") as tar:
            self.spans = [(m.offset_data, m.size) for m in tar.getmembers() if m.isfile()]

    def jobs(self) -> list[Callable[[], None]]:
        """The three hashing jobs an index of this tar needs."""
        view = memoryview(self.data)

        def whole_sha256() -> None:
            hashlib.sha256(view).hexdigest()

        def whole_git_sha1() -> None:
            h = hashlib.sha1(f"blob {len(view)}\0".encode())
            h.update(view)
            h.hexdigest()

        def members_sha256() -> None:
            for offset, size in self.spans:
                hashlib.sha256(view[offset : offset + size]).hexdigest()

        return [whole_sha256, whole_git_sha1, members_sha256]


def hash_limit(tars: list[InMemory]) -> float:
    """Seconds to compute every hash the indexes of ``tars`` need with hashlib alone, from memory, every job
    on a thread of its own and all at once (so every core is used however many there are)."""
    threads = [threading.Thread(target=job) for tar in tars for job in tar.jobs()]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def with_cpu(side: Callable[[], float | None], into: list[float]) -> Callable[[], float | None]:
    """``side``, also noting the CPU seconds of all this process's threads during each run into ``into``."""

    def run() -> float | None:
        start = time.process_time()
        measured = side()
        into.append(time.process_time() - start)
        return measured

    return run


def breakdown(tar_path: str) -> list[tuple[str, float]]:
    """CPU seconds of each part of indexing ``tar_path``, each done alone on this thread (median of 5)."""
    from headwater.archive.tarwalk import walk_chunks

    tar = InMemory(tar_path)
    view = memoryview(tar.data)
    chunks = [view[i : i + (1 << 20)] for i in range(0, len(view), 1 << 20)]
    spans = tar.spans

    def read() -> None:
        block = memoryview(bytearray(1 << 20))
        with open(tar_path, "rb", buffering=0) as f:
            while f.readinto(block):
                pass

    def walk() -> None:
        for _ in walk_chunks(chunks, hash_members=False):
            pass

    def members() -> None:
        for offset, size in spans:
            hashlib.sha256(view[offset : offset + size]).hexdigest()

    parts: dict[str, Callable[[], object]] = {
        "read (readinto 1 MiB blocks, page cache)": read,
        "walk headers (no hashing)": walk,
        "SHA-256 of each member": members,
        "SHA-256 of the whole tar": lambda: hashlib.sha256(view).digest(),
        "git SHA-1 of the whole tar": lambda: hashlib.sha1(view).digest(),
    }
    out = []
    for name, part in parts.items():
        times = []
        for _ in range(5):
            start = time.process_time()
            part()
            times.append(time.process_time() - start)
        out.append((name, sorted(times)[2]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000, help="members in each tar (default 5000)")
    parser.add_argument("--shards", type=int, default=4, help="tars in the folder case (default 4)")
    add_runs_option(parser)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--hfutils-folder", action="store_true",
                        help="also run hfutils over the folder, one tar after another (minutes at the default size)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print the CPU seconds of each part of the work on the one shard")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from hfutils.index import tar_create_index

    from headwater.archive import encode_index, index_tar
    from headwater.archive.index import usable_cores
    from headwater.cli import main as headwater

    with tempfile.TemporaryDirectory(prefix="hw-bench-index-") as tmp:
        pool = os.path.join(tmp, "pool")
        os.makedirs(pool)
        tars = [os.path.join(pool, f"part-{i:02d}.tar") for i in range(args.shards)]
        t0 = time.perf_counter()
        payload = [build_tar(tar, os.path.join(tmp, f"src-{i}"), args.files, args.seed + i)
                   for i, tar in enumerate(tars)]
        sizes = [os.path.getsize(tar) for tar in tars]
        print(describe_machine())
        print(f"tars: {args.shards} of {args.files} members each; the first: payload {payload[0] / 1e6:.1f} MB, "
              f"tar {sizes[0] / 1e6:.1f} MB; all: tar {sum(sizes) / 1e6:.1f} MB (built in "
              f"{time.perf_counter() - t0:.1f}s, seed {args.seed}); headwater uses {usable_cores()} cores")
        for tar in tars:  # warm the page cache so no side pays for the first read
            with open(tar, "rb") as f:
                while f.read(8 << 20):
                    pass
        in_memory = [InMemory(tar) for tar in tars]
        hf_dir, hw_dir = os.path.join(tmp, "hfutils"), os.path.join(tmp, "headwater")
        os.makedirs(hf_dir)
        os.makedirs(hw_dir)

        def run_hfutils(which: list[str]) -> Callable[[], None]:
            def run() -> None:
                for tar in which:
                    tar_create_index(tar, os.path.join(hf_dir, os.path.basename(tar)[:-4] + ".json"), silent=True)
            return run

        def run_headwater_one() -> None:
            data = encode_index(index_tar(tars[0]))
            with open(os.path.join(hw_dir, "part-00.json"), "wb") as f:
                f.write(data)

        def run_headwater_folder() -> None:
            headwater(["index", pool, "--no-manifest", "-q"], standalone_mode=False)

        names_one = ["1 shard: hfutils tar_create_index", "1 shard: headwater index_tar",
                     "1 shard: limit (hashlib, all cores)"]
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet  # the command's one line of output per run
            try:
                sides: dict[str, Callable[[], float | None]] = {
                    "1 shard: hfutils tar_create_index": run_hfutils(tars[:1]),
                    "1 shard: headwater index_tar": run_headwater_one,
                    "1 shard: limit (hashlib, all cores)": lambda: hash_limit(in_memory[:1]),
                    f"{args.shards} shards: headwater index": run_headwater_folder,
                    f"{args.shards} shards: limit (all cores)": lambda: hash_limit(in_memory),
                }
                if args.hfutils_folder:
                    sides[f"{args.shards} shards: hfutils, one by one"] = run_hfutils(tars[1:])
                cpu: dict[str, list[float]] = {name: [] for name in sides}
                times = alternate({name: with_cpu(side, cpu[name]) for name, side in sides.items()}, args.runs,
                                  log=lambda line: print(line, file=sys.stderr))
                if args.hfutils_folder:  # the first tar's hfutils run is the one-shard side's, in the same round
                    folder = f"{args.shards} shards: hfutils, one by one"
                    times[folder] = [a + b for a, b in zip(times[folder], times[names_one[0]], strict=True)]
                    cpu[folder] = [a + b for a, b in zip(cpu[folder], cpu[names_one[0]], strict=True)]
            finally:
                sys.stdout = stdout

        differences = []
        for i, tar in enumerate(tars if args.hfutils_folder else tars[:1]):
            name = os.path.basename(tar)[:-4] + ".json"
            with open(os.path.join(hf_dir, name), "rb") as f:
                theirs = json.loads(f.read())
            with open(os.path.join(pool, name), "rb") as f:  # written by `headwater index`
                ours = json.loads(f.read())
            if i == 0:
                with open(os.path.join(hw_dir, name), "rb") as f:
                    if json.loads(f.read()) != ours:
                        differences.append(f"{name}: index_tar and `headwater index` differ")
            if ours != theirs:
                differences.append(f"{name}: {_first_difference(ours, theirs)}")
        json_bytes = {"hfutils": os.path.getsize(os.path.join(hf_dir, "part-00.json")),
                      "headwater": os.path.getsize(os.path.join(hw_dir, "part-00.json"))}
        parts = breakdown(tars[0]) if args.breakdown else []

    names = list(times)
    folder_names = [f"{args.shards} shards: hfutils, one by one"] if args.hfutils_folder else []
    folder_names += [f"{args.shards} shards: headwater index", f"{args.shards} shards: limit (all cores)"]
    print()
    print(f"{args.runs} runs a side, alternating; JSON bytes of the first tar: hfutils {json_bytes['hfutils']:,}, "
          f"headwater {json_bytes['headwater']:,}")
    print(spread_table({name: Spread(t) for name, t in times.items()}, "seconds", width=38))
    amounts = {name: (sizes[0] if name.startswith("1 shard") else sum(sizes)) / 1e6 for name in names}
    print(spread_table({name: Spread(times[name]).rates(amounts[name]) for name in names}, "MB/s", fmt=",.1f",
                       width=38))
    print(spread_table({name: Spread(cpu[name]) for name in names if "hfutils" not in name},
                       "CPU seconds, all threads", width=38))
    print(f"indexes equal (json.loads of both files, every tar): {'yes' if not differences else 'NO'}")
    for case, case_names, mb in (("1 shard", names_one, sizes[0] / 1e6),
                                 (f"{args.shards} shards", folder_names, sum(sizes) / 1e6)):
        *hf_side, hw, limit = case_names
        if hf_side:
            speedup, line = ratio_line(f"{case}: speed-up headwater vs hfutils", times[hf_side[0]], times[hw])
            print(f"{line}  (goal >= {GOAL_SPEEDUP:g}x: {'met' if speedup >= GOAL_SPEEDUP else 'NOT met'})")
        share_line = limit_line(f"{case}: SHA-256 + git SHA-1 of each tar, SHA-256 of each member, hashlib on "
                                "all cores", times[limit], times[hw], mb, "MB/s")
        share = (mb / Spread(times[hw]).median) / (mb / Spread(times[limit]).median)
        print(f"{share_line}  (goal >= {GOAL_LIMIT:g}: {'met' if share >= GOAL_LIMIT else 'NOT met'})")
        work = Spread(cpu[limit]).median / Spread(cpu[hw]).median
        print(f"{case}: CPU work, limit / headwater (medians): {work:.2f} — the share of the limit headwater "
              "reaches when every core is its own (a loaded machine lowers the wall-clock share, not this)")
    if parts:
        total = sum(seconds for _, seconds in parts)
        print("\nbreakdown of the first tar, CPU seconds of each part alone (median of 5); the limit is the "
              "last three")
        for name, seconds in parts:
            print(f"  {name:<44} {seconds * 1e3:8.1f} ms  {seconds / total:6.1%}")
    for difference in differences:
        print(f"difference: {difference}")
    return 0 if not differences else 1


def _first_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """A short description of the first field where the two indexes differ."""
    for key in ("filesize", "hash", "hash_lfs"):
        if ours.get(key) != theirs.get(key):
            return f"{key}: ours {ours.get(key)!r} vs hfutils {theirs.get(key)!r}"
    a, b = ours.get("files", {}), theirs.get("files", {})
    if a.keys() != b.keys():
        only_ours, only_theirs = sorted(a.keys() - b.keys())[:5], sorted(b.keys() - a.keys())[:5]
        return f"member names differ: only ours {only_ours}, only hfutils {only_theirs}"
    for name in a:
        if a[name] != b[name]:
            return f"{name}: ours {a[name]} vs hfutils {b[name]}"
    return "none found"


if __name__ == "__main__":
    sys.exit(main())
