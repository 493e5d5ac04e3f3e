"""Benchmark: indexing one tar shard — hfutils' ``tar_create_index`` vs ``headwater.archive.index_tar``.

What is measured
    Wall-clock seconds to turn one local tar of many small files into its index JSON in the hfutils
    format (``filesize``, git-blob ``hash``, LFS ``hash_lfs``, and per member ``offset``/``size``/``sha256``).

    * hfutils: ``hfutils.index.tar_create_index(tar, dst, silent=True)``. It hashes the whole file in one
      pass, then iterates the tar with :mod:`tarfile` and, for every member, extracts it into a fresh
      temporary directory to hash it — one temp dir, one file write and one re-read per member.
    * headwater: ``index_tar(tar)`` followed by ``encode_index`` and a file write (so both sides end with a
      JSON file on disk). One forward pass over raw 512-byte headers computes the whole-file hashes and
      every member's sha256 from the same bytes; nothing is extracted.

Why
    Indexing is what ``pack``/``index`` do for every shard of a pool; with many small files (the typical
    image pool) the per-member extraction dominates. The goal is a ≥ 20× speed-up with byte-for-byte
    equivalent output: the script checks ``json.loads`` of both files are equal dicts.

Data
    5,000 files of 200 B – 20 KB random bytes (fixed seed) written to a temp dir, then put in one tar
    with :mod:`tarfile` (default PAX format). The tar is in the page cache for both sides. The sides run
    alternately ``--runs`` times each (default 3); min / median / max are printed and the median quoted
    (``benchmarks/_common.py``).

Limit
    The hashes the index needs, done with :mod:`hashlib` on the same bytes already in memory: SHA-256 and
    git-blob SHA-1 of the whole tar and SHA-256 of every member, the three on separate threads (hashlib
    releases the GIL) — no parsing, no JSON. headwater's figure is printed as a share of it.

Run::

    .venv/bin/python benchmarks/bench_index.py [--files 5000] [--runs 3] [--seed 1234]
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
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import Spread, add_runs_option, alternate, describe_machine, limit_line, ratio_line, spread_table

GOAL_SPEEDUP = 20.0


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


def hash_limit(tar_path: str) -> float:
    """Seconds to compute the index's hashes with hashlib alone, the tar already in memory."""
    with open(tar_path, "rb") as f:
        data = f.read()
    with tarfile.open(tar_path, "r") as tar:
        spans = [(m.offset_data, m.size) for m in tar.getmembers() if m.isfile()]
    view = memoryview(data)

    def whole_sha256() -> None:
        hashlib.sha256(view).hexdigest()

    def whole_git_sha1() -> None:
        h = hashlib.sha1(f"blob {len(data)}\0".encode())
        h.update(view)
        h.hexdigest()

    def members_sha256() -> None:
        for offset, size in spans:
            hashlib.sha256(view[offset : offset + size]).hexdigest()

    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(3, workers)) as pool:
        for future in [pool.submit(job) for job in (whole_sha256, whole_git_sha1, members_sha256)]:
            future.result()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000, help="members in the tar (default 5000)")
    add_runs_option(parser)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from hfutils.index import tar_create_index

    from headwater.archive import encode_index, index_tar

    with tempfile.TemporaryDirectory(prefix="hw-bench-index-") as tmp:
        tar_path = os.path.join(tmp, "shard.tar")
        t0 = time.perf_counter()
        payload = build_tar(tar_path, os.path.join(tmp, "src"), args.files, args.seed)
        tar_size = os.path.getsize(tar_path)
        print(describe_machine())
        print(
            f"tar: {args.files} members, payload {payload / 1e6:.1f} MB, tar {tar_size / 1e6:.1f} MB "
            f"(built in {time.perf_counter() - t0:.1f}s, seed {args.seed})"
        )
        with open(tar_path, "rb") as f:  # warm the page cache so neither side pays for the first read
            while f.read(8 << 20):
                pass

        hf_json = os.path.join(tmp, "hfutils.json")
        hw_json = os.path.join(tmp, "headwater.json")

        def run_hfutils() -> None:
            tar_create_index(tar_path, hf_json, silent=True)

        def run_headwater() -> None:
            data = encode_index(index_tar(tar_path))
            with open(hw_json, "wb") as f:
                f.write(data)

        times = alternate(
            {"hfutils tar_create_index": run_hfutils, "headwater index_tar+encode_index": run_headwater,
             "limit: hashlib on 3 threads": lambda: hash_limit(tar_path)},
            args.runs, log=lambda line: print(line, file=sys.stderr),
        )

        with open(hf_json, "rb") as f:
            theirs = json.loads(f.read())
        with open(hw_json, "rb") as f:
            ours = json.loads(f.read())
        equal = ours == theirs
        json_bytes = {"hfutils": os.path.getsize(hf_json), "headwater": os.path.getsize(hw_json)}

    hf_times, hw_times, limit_times = times.values()
    print()
    print(f"{args.runs} runs a side, alternating; JSON bytes: hfutils {json_bytes['hfutils']:,}, "
          f"headwater {json_bytes['headwater']:,}")
    print(spread_table({name: Spread(t) for name, t in times.items()}, "seconds"))
    print(spread_table({name: Spread(t).rates(tar_size / 1e6) for name, t in times.items()}, "MB/s", fmt=",.1f"))
    print(f"indexes equal (json.loads of both files): {'yes' if equal else 'NO'}")
    speedup, line = ratio_line("speed-up headwater vs hfutils", hf_times, hw_times)
    verdict = "met" if speedup >= GOAL_SPEEDUP else "NOT met"
    print(f"{line}  (goal >= {GOAL_SPEEDUP:g}x: {verdict})")
    print(limit_line("SHA-256 + git SHA-1 of the tar, SHA-256 of each member, hashlib on 3 threads",
                     limit_times, hw_times, tar_size / 1e6, "MB/s"))
    if not equal:
        diff = _first_difference(ours, theirs)
        print(f"first difference: {diff}")
    return 0 if equal else 1


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
