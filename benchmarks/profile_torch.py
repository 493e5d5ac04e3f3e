"""Where headwater's training loader spends its time per sample (issue 16: why LitData is ahead unshuffled).

The images of ``bench_torch.py`` are tiny (64×64 JPEGs, ~4.7 KB), so an epoch measures the loader's
per-sample overhead more than decoding. This script builds the same data (``bench_torch.make_images`` and
``write_shards``, one SQLite catalog) and times each stage of headwater's per-sample path **in one
process** (no DataLoader workers), as µs per sample, so the stages add up to what one worker pays:

* ``droplets``: the catalog pass (``Dataset.stream_blocks``) decoded into ``ImageAnnotation`` structs;
* ``fetch``: the JPEG bytes of the same droplets through ``ImageFetcher.fetch_many``, 32 at a time
  (manifest lookup, planned range reads, sha256 of every member);
* ``decode``: ``PIL.Image.open`` + ``load`` of those bytes (the same call every system pays);
* ``pickle``: ``pickle.dumps`` + ``loads`` of 32-sample batches — what a DataLoader worker sends to the
  main process (a PIL image pickles as its raw pixels; the peers send the same images);
* ``dataset``: ``iter(DropletDataset(..., images="pil"))`` end to end in this process — the stages above
  plus the glue;
* ``loader``: ``DropletLoader`` with ``--workers`` workers, for reference (samples/s, wall clock).

Each stage runs ``--runs`` times (min / median / max µs per sample); then a ``cProfile`` of one in-process
``dataset`` pass prints the functions with the most own time, and headwater's by cumulative time.
``--shuffle`` runs the shuffled pass (``shuffle_seed``) instead of the stored order.

Run::

    .venv/bin/python benchmarks/profile_torch.py [--n 10000] [--runs 3] [--shuffle] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pickle
import pstats
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

from _common import Spread, add_runs_option, describe_machine, spread_table
from bench_torch import make_images, write_shards


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shuffle", action="store_true", help="profile the shuffled pass (shuffle_seed=3)")
    ap.add_argument("--top", type=int, default=25, help="functions listed from the profile")
    add_runs_option(ap)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from PIL import Image

    from headwater.catalog import Catalog
    from headwater.client import Api
    from headwater.droplet import decode_droplet_blocks
    from headwater.integrations.torch import DropletDataset, DropletLoader

    print(describe_machine())
    seed = 3 if args.shuffle else None
    with tempfile.TemporaryDirectory(prefix="hw-profile-torch-") as tmp:
        src, pool = os.path.join(tmp, "src"), os.path.join(tmp, "pool")
        os.makedirs(src)
        droplets = make_images(src, args.n, 3)
        write_shards(src, pool, per_shard=500)
        catalog_path = os.path.join(tmp, "catalog.sqlite")
        with Catalog(catalog_path) as catalog:
            catalog.create_database("main")
            catalog.publish("main", "bench", "torch", pools={"images": pool}, splits={"train": droplets},
                            template={"kind": "ImageAnnotationTemplate",
                                      "classes": {"thing": {"instances": {"boundingBox": True}}}})
        cache = os.path.join(tmp, "cache")
        dataset = Api(catalog=catalog_path, cache=cache).get_default_database().get_dataset("bench/torch:latest")
        use_cache = seed is None  # DropletDataset's default: the stream cache only unshuffled
        print(f"data: {args.n:,} samples, {'shuffled (shuffle_seed=3)' if seed is not None else 'stored order'}; "
              f"stream cache {'on (warmed)' if use_cache else 'off'}")

        def stream() -> list[Any]:
            return list(decode_droplet_blocks(dataset.stream_blocks("train", shuffle_seed=seed, cache=use_cache)))

        items = stream()  # also warms the stream cache and the page cache
        fetcher = dataset.image_fetcher()
        groups = [items[i:i + 32] for i in range(0, len(items), 32)]
        raw = [data for group in groups for data in fetcher.fetch_many(group)]

        def fetch() -> None:
            fresh = dataset.image_fetcher()  # a worker builds one per epoch
            for group in groups:
                fresh.fetch_many(group)

        def decode() -> None:
            for data in raw:
                Image.open(io.BytesIO(data)).load()

        images = [Image.open(io.BytesIO(data)) for data in raw[:32]]
        for image in images:
            image.load()
        batch = [{"droplet": d, "position": i, "image": im}
                 for i, (d, im) in enumerate(zip(items, images, strict=False))]

        def transport() -> None:
            for _ in groups:
                pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))

        def in_process() -> None:
            count = sum(1 for _ in DropletDataset(dataset, "train", images="pil", shuffle_seed=seed))
            assert count == args.n, count

        def loader() -> None:
            data = DropletDataset(dataset, "train", images="pil", shuffle_seed=seed)
            count = sum(len(b) for b in DropletLoader(data, batch_size=32, num_workers=args.workers))
            assert count == args.n, count

        stages: dict[str, Callable[[], Any]] = {"droplets": stream, "fetch": fetch, "decode": decode,
                                                 "pickle": transport, "dataset": in_process,
                                                 f"loader ({args.workers} workers)": loader}
        timings: dict[str, list[float]] = {name: [] for name in stages}
        for _ in range(args.runs):
            for name, stage in stages.items():
                start = time.perf_counter()
                stage()
                timings[name].append(time.perf_counter() - start)
        print(spread_table({name: Spread([s / args.n * 1e6 for s in t]) for name, t in timings.items()},
                           "µs per sample (in one process; the loader's is wall clock)", fmt=",.1f", width=22))
        med = {name: Spread(t).median / args.n * 1e6 for name, t in timings.items()}
        parts = med["droplets"] + med["fetch"] + med["decode"]
        print(f"droplets + fetch + decode = {parts:.1f} µs/sample; the in-process dataset pass {med['dataset']:.1f} "
              f"(glue {med['dataset'] - parts:.1f}); + pickle {med['pickle']:.1f} = one worker's "
              f"{med['dataset'] + med['pickle']:.1f} µs/sample, so {args.workers} workers could give "
              f"{args.workers * 1e6 / (med['dataset'] + med['pickle']):,.0f} samples/s at best; the loader gave "
              f"{1e6 / med[f'loader ({args.workers} workers)']:,.0f}")

        profile = cProfile.Profile()
        profile.enable()
        in_process()
        profile.disable()
        for order, where in (("tottime", ()), ("cumulative", ("headwater",))):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(*where, args.top)
            label = "own time" if order == "tottime" else "cumulative time, headwater's functions"
            print(f"\ncProfile of one in-process dataset pass, by {label}:")
            print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
