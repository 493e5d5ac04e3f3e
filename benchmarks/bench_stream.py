"""Benchmark: streaming a split — headwater's catalog + stream cache vs the datatap client's own path.

What is measured
    Annotations/s over one split of ``--n`` droplets (default 1,000,000), two passes each side:

    * headwater: ``Api(catalog=…).get_database_by_name(…).get_dataset(…).stream_split("training")``
      on an embedded SQLite catalog. Pass 1 reads the catalog, fills the stream cache (temp file, then
      renamed into place when the pass completes) and decodes every droplet into msgspec structs. Pass 2
      replays the promoted cache entry.
    * datatap 0.3.0 (own venv, ``benchmarks/_datatap_stream.py``): what ``Dataset.stream_split`` does once
      the bytes arrive — ``CacheGenerator`` around a generator of ``json.loads(line)``, then
      ``ImageAnnotation.from_json`` per droplet. Its lines come from a local file, so the network costs
      nothing; only the client's decode + cache path is timed. Its cache is never promoted to its final
      name, so its pass 2 streams again (the bug DESIGN.md lists).

Both sides yield fully decoded, typed droplets and count them; the counts must equal ``--n``.

Why
    Training reads a split once per epoch; the client's decode and cache path bounds how fast annotations
    reach the data loader. Goal: ≥ 10× the datatap client's annotations/s on both passes.

Run::

    .venv/bin/python benchmarks/bench_stream.py [--n 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

import msgspec

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support
from tests.support.peers import peer_python

from headwater.catalog import Catalog
from headwater.client import Api

GOAL = 10.0
CLASSES = ["person", "car", "dog", "bicycle", "traffic light"]


def make_droplets(n: int, seed: int) -> list[bytes]:
    """``n`` droplets like a detection set: 1–6 boxed instances over 5 classes, some with attributes."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    out = []
    for i in range(n):
        classes: dict[str, dict[str, list[Any]]] = {c: {"instances": [], "multiInstances": []} for c in CLASSES}
        for _ in range(rng.randint(1, 6)):
            x, y = rng.random() * 0.8, rng.random() * 0.8
            w, h = 0.01 + rng.random() * 0.19, 0.01 + rng.random() * 0.19
            box = [[round(x, 4), round(y, 4)], [round(x + w, 4), round(y + h, 4)]]
            inst: dict[str, Any] = {"boundingBox": {"rectangle": box, "confidence": round(rng.random(), 3)}}
            if rng.random() < 0.3:
                inst["attributes"] = {"occluded": [{"value": rng.choice(["yes", "no"])}]}
            classes[rng.choice(CLASSES)]["instances"].append(inst)
        out.append(enc.encode({"kind": "ImageAnnotation", "uid": f"{i:08d}",
                               "image": {"paths": [f"pool://images/{i:08d}.jpg"]}, "classes": classes}))
    return out


def template() -> dict[str, Any]:
    return {"kind": "ImageAnnotationTemplate", "classes": {
        c: {"instances": {"boundingBox": True, "attributes": {"occluded": ["yes", "no"]}}, "multiInstances": {}}
        for c in CLASSES}}


def run_headwater(catalog_path: str, cache_dir: str, n: int) -> list[float]:
    api = Api(catalog=catalog_path, cache=cache_dir)
    dataset = api.get_database_by_name("bench").get_dataset("bench/stream:latest")
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        count = sum(1 for _ in dataset.stream_split("training"))
        seconds.append(time.perf_counter() - start)
        if count != n:
            sys.exit(f"headwater streamed {count} droplets, expected {n}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    datatap_python = peer_python("datatap", ["datatap==0.3.0", "Pillow"])

    with tempfile.TemporaryDirectory(prefix="hw-bench-stream-") as tmp:
        t0 = time.perf_counter()
        droplets = make_droplets(args.n, args.seed)
        source = os.path.join(tmp, "split.ndjson")
        with open(source, "wb") as f:
            f.write(b"\n".join(droplets) + b"\n")
        size = os.path.getsize(source)
        print(f"data: {args.n:,} droplets, {size / 1e6:.0f} MB of NDJSON, made in {time.perf_counter() - t0:.1f} s")

        catalog_path = os.path.join(tmp, "catalog.sqlite")
        catalog = Catalog(catalog_path)
        catalog.create_database("bench")
        t0 = time.perf_counter()
        catalog.publish("bench", "bench", "stream", template=template(), splits={"training": droplets})
        publish_s = time.perf_counter() - t0
        catalog.close()
        del droplets
        print(f"publish into SQLite: {publish_s:.1f} s ({args.n / publish_s:,.0f} droplets/s, one transaction)")

        ours = run_headwater(catalog_path, os.path.join(tmp, "cache"), args.n)
        peer = subprocess.run([datatap_python, os.path.join(os.path.dirname(__file__), "_datatap_stream.py"),
                               source, "2"], check=True, capture_output=True, text=True)
        theirs = json.loads(peer.stdout.strip().splitlines()[-1])
        for p in theirs:
            if p["count"] != args.n:
                print(f"note: datatap pass yielded {p['count']} droplets, expected {args.n}")

    print()
    print(f"{'pass':<34}{'headwater ann/s':>18}{'datatap ann/s':>16}{'ratio':>9}")
    ok = True
    labels = ["1: catalog/stream -> cache", "2: replay (datatap: re-stream)"]
    for label, mine, other in zip(labels, ours, theirs, strict=True):
        ratio = other["seconds"] / mine
        ok &= ratio >= GOAL
        print(f"{label:<34}{args.n / mine:>18,.0f}{other['count'] / other['seconds']:>16,.0f}{ratio:>8.1f}x")
    print(f"datatap promoted its cache entry: {theirs[-1]['promoted']}")
    print(f"goal >= {GOAL:.0f}x on both passes: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
