"""The Quickstart demo: generated images → pool → fetch by id, with every step reported.

Example (writes into ``demo-output/``)::

    headwater demo --images 200
"""

from __future__ import annotations

import os
import random
import shutil
import time

import click
from PIL import Image, ImageDraw

from .archive import pack_directory, verify_pool
from .pool import StorePool

__all__ = ["make_images", "run_demo"]


def make_images(folder: str, count: int, seed: int = 0) -> list[int]:
    """Write ``count`` small PNGs named ``<id>.png`` with sparse increasing ids; returns the ids."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    ids, rid = [], 1000
    for _ in range(count):
        rid += rng.randint(1, 40)
        img = Image.new("RGB", (64, 48), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        x, y = rng.randrange(40), rng.randrange(30)
        draw.rectangle([x, y, x + 20, y + 15], fill=tuple(rng.randrange(256) for _ in range(3)))
        img.save(os.path.join(folder, f"{rid}.png"))
        ids.append(rid)
    return ids


def run_demo(work_dir: str, images: int = 500) -> None:
    shutil.rmtree(work_dir, ignore_errors=True)
    src, pool_dir, out = (os.path.join(work_dir, p) for p in ("images", "pool", "downloaded"))
    t0 = time.perf_counter()
    ids = make_images(src, images)
    click.echo(f"1. generated {len(ids)} PNG images in {src} ({time.perf_counter() - t0:.2f}s)")

    t0 = time.perf_counter()
    packed = pack_directory(src, pool_dir, layout="increment-id", base_level=2, silent=True)
    click.echo(f"2. packed them into {len(packed.shards)} tar shards (cheesechaser increment-id layout, "
               f"base_level=2) with hfutils indexes and a manifest ({time.perf_counter() - t0:.2f}s)")

    report = verify_pool(pool_dir, silent=True)
    click.echo(f"3. verified {report.shards} shards, {report.members} members: "
               + ("ok" if report.ok else f"{len(report.problems)} problems"))

    pool = StorePool(pool_dir, layout="increment-id", base_level=2)
    wanted = random.Random(1).sample(ids, min(100, len(ids))) + [999_999_999]
    infos = [(rid, {"id": rid, "source": "demo"}) for rid in wanted]
    got = pool.batch_download_to_directory(infos, out, max_downloads=80, silent=True)
    click.echo(f"4. batch download of {len(wanted)} ids (one unknown), max_downloads=80: {got.summary()}")
    click.echo(f"   {len(os.listdir(out))} files in {out} (images + metainfo JSON)")

    again = pool.batch_download_to_directory(infos, out, max_downloads=80, silent=True)
    click.echo(f"5. the same call again resumes instead of re-downloading: {again.summary()}")

    with pool.mock_resource(ids[0], {"note": "temporary"}) as (folder, info):
        names = os.listdir(folder)
        with Image.open(os.path.join(folder, names[0])) as img:
            click.echo(f"6. mock_resource({ids[0]}) → {names} ({img.size[0]}x{img.size[1]} {img.mode}), info={info}")
    click.echo(f"done: everything is under {os.path.abspath(work_dir)}")
