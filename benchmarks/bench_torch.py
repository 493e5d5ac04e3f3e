"""Benchmark: training-loader throughput on a local pool — headwater's DropletLoader vs WebDataset.

What is measured
    Samples/s of one full epoch through a real ``torch.utils.data.DataLoader`` with ``--workers``
    workers (default 2) and batch size 32, each sample being a decoded Pillow image (RGB, fully loaded)
    plus its annotation:

    * WebDataset: ``wds.WebDataset(shards, shardshuffle=False).decode("pil")`` over the tar shards
      (``{key}.jpg`` + ``{key}.json`` members), split over workers by WebDataset's own node/worker
      splitters; the JSON is parsed by its decoder.
    * headwater: ``DropletLoader(DropletDataset(dataset, "train", images="pil"))`` — droplets stream from
      the embedded SQLite catalog (stream cache on, warmed by one untimed pass so both sides read from
      the page cache), images come from the *same* tar files through the pool manifest with planned,
      coalesced range reads, decoded with Pillow into ``ImageAnnotation`` structs.

Both sides see the same files on the same disk; after one untimed warm-up epoch each, the sides
alternate ``--runs`` epochs each (default 3); min / median / max samples/s are printed and the median
quoted (``benchmarks/_common.py``). No limit line yet (the decode-bound limit with N workers is not a
cheap measurement).

Why
    A local training job should not pay for random access: the goal is ≥ 1× WebDataset's samples/s
    while keeping what WebDataset lacks (exact per-rank sharding, resume, typed droplets, seeks).

Run::

    .venv/bin/python benchmarks/bench_torch.py [--n 20000] [--workers 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
import warnings
from typing import Any

from PIL import Image

from _common import Spread, add_runs_option, alternate, describe_machine, ratio_line, spread_table

GOAL = 1.0


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


def run_webdataset(shards: list[str], workers: int, n: int) -> float:
    import webdataset as wds
    from torch.utils.data import DataLoader

    ds = wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode("pil").to_tuple("jpg", "json")

    def collate(batch: list[Any]) -> list[Any]:
        return batch

    start = time.perf_counter()
    count = 0
    for batch in DataLoader(ds, batch_size=32, num_workers=workers, collate_fn=collate):
        for image, _ in batch:
            image.load()
        count += len(batch)
    seconds = time.perf_counter() - start
    if count != n:
        sys.exit(f"webdataset yielded {count} samples, expected {n}")
    return seconds


def run_headwater(catalog_path: str, cache_dir: str, workers: int, n: int) -> float:
    from headwater.client import Api
    from headwater.integrations.torch import DropletDataset, DropletLoader

    dataset = Api(catalog=catalog_path, cache=cache_dir).get_default_database().get_dataset("bench/torch:latest")
    data = DropletDataset(dataset, "train", images="pil", equal_samples=False)
    start = time.perf_counter()
    count = 0
    for batch in DropletLoader(data, batch_size=32, num_workers=workers):
        for sample in batch:
            sample["image"].load()
        count += len(batch)
    seconds = time.perf_counter() - start
    if count != n:
        sys.exit(f"headwater yielded {count} samples, expected {n}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    add_runs_option(ap)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from headwater.catalog import Catalog

    with tempfile.TemporaryDirectory(prefix="hw-bench-torch-") as tmp:
        src, pool = os.path.join(tmp, "src"), os.path.join(tmp, "pool")
        os.makedirs(src)
        t0 = time.perf_counter()
        droplets = make_images(src, args.n, args.seed)
        write_shards(src, pool, per_shard=500)
        shards = sorted(os.path.join(root, f) for root, _, files in os.walk(pool) for f in files if f.endswith(".tar"))
        size = sum(os.path.getsize(s) for s in shards)
        catalog_path = os.path.join(tmp, "catalog.sqlite")
        with Catalog(catalog_path) as catalog:
            catalog.create_database("main")
            catalog.publish("main", "bench", "torch", pools={"images": pool}, splits={"train": droplets},
                            template={"kind": "ImageAnnotationTemplate",
                                      "classes": {"thing": {"instances": {"boundingBox": True}}}})
        print(describe_machine())
        print(f"data: {args.n:,} samples (64x64 JPEG + droplet) in {len(shards)} tar shards, {size / 1e6:.0f} MB, "
              f"built in {time.perf_counter() - t0:.1f} s; DataLoader workers={args.workers}, batch 32")

        cache_dir = os.path.join(tmp, "cache")
        run_headwater(catalog_path, cache_dir, args.workers, args.n)  # warm: fills the stream cache
        run_webdataset(shards, args.workers, args.n)  # warm: page cache
        times = alternate({"headwater": lambda: run_headwater(catalog_path, cache_dir, args.workers, args.n),
                           "webdataset": lambda: run_webdataset(shards, args.workers, args.n)},
                          args.runs, log=lambda line: print(line, file=sys.stderr))

    print(f"{args.runs} epochs a side, alternating:")
    print(spread_table({name: Spread(t).rates(args.n) for name, t in times.items()}, "samples/s", fmt=",.0f",
                       width=12))
    ratio, line = ratio_line("ratio headwater/webdataset", times["webdataset"], times["headwater"])
    print(f"{line}  (goal >= {GOAL:.0f}x: {'met' if ratio >= GOAL else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
