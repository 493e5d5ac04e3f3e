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
    with :mod:`tarfile` (default PAX format). The tar is in the page cache for both sides; headwater is run a
    few times and the best is kept, hfutils once (it is the slow side and very stable).

Run::

    .venv/bin/python benchmarks/bench_index.py [--files 5000] [--repeats 5] [--seed 1234]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GOAL_SPEEDUP = 20.0


@dataclass(frozen=True)
class Timing:
    label: str
    seconds: float
    runs: int
    json_bytes: int


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


def time_call(fn: Callable[[], None], repeats: int) -> float:
    """Best wall-clock seconds of ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000, help="members in the tar (default 5000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of headwater; the best counts (default 5)")
    parser.add_argument("--hfutils-repeats", type=int, default=1, help="runs of hfutils (default 1)")
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
        print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
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

        hf_seconds = time_call(run_hfutils, args.hfutils_repeats)
        hw_seconds = time_call(run_headwater, args.repeats)

        with open(hf_json, "rb") as f:
            theirs = json.loads(f.read())
        with open(hw_json, "rb") as f:
            ours = json.loads(f.read())
        equal = ours == theirs
        timings = [
            Timing("hfutils tar_create_index", hf_seconds, args.hfutils_repeats, os.path.getsize(hf_json)),
            Timing("headwater index_tar+encode_index", hw_seconds, args.repeats, os.path.getsize(hw_json)),
        ]

    speedup = hf_seconds / hw_seconds
    print()
    print(f"{'implementation':<34} {'runs':>4} {'best s':>9} {'members/s':>11} {'MB/s':>8} {'json bytes':>11}")
    print("-" * 82)
    for t in timings:
        print(
            f"{t.label:<34} {t.runs:>4} {t.seconds:>9.3f} {args.files / t.seconds:>11,.0f} "
            f"{tar_size / 1e6 / t.seconds:>8.1f} {t.json_bytes:>11,}"
        )
    print("-" * 82)
    print(f"indexes equal (json.loads of both files): {'yes' if equal else 'NO'}")
    verdict = "met" if speedup >= GOAL_SPEEDUP else "NOT met"
    print(f"speed-up headwater vs hfutils: {speedup:.1f}x  (goal >= {GOAL_SPEEDUP:g}x: {verdict})")
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
