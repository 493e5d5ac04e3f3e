"""The Quickstart demo: generated images → pool → fetch by id → a published, streamed dataset.

Steps 1-6 show the pool layer (pack, verify, cheesechaser-style downloads); steps 7-9 show datasets:
annotations (the box drawn on each image) are published from JSONL into an embedded SQLite catalog
(images packed into a new pool, a seeded validation split), a chunk is streamed back through the
datatap-style ``Api`` and its image fetched through its ``pool://`` reference, and a bad droplet is
refused with its line number. It ends with the command that serves the demo's catalog and the viewer URL
to open (the demo database is public, so no sign-in is needed).

The demo writes only into a folder it owns: an absent or empty ``--dir`` (then marked with
:data:`DEMO_MARKER`), or one a previous demo run marked. A re-run removes only the entries the demo itself
writes (:data:`DEMO_OUTPUTS`); a folder holding anything else and no marker is refused, never cleared —
``--dir`` may be a typo for a folder full of someone's work.

Example (writes into ``demo-output/``)::

    headwater demo --images 200
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import sys
import time

import click
from PIL import Image, ImageDraw

from ..archive import pack_directory, verify_pool
from ..pool import StorePool
from .options import HeadwaterCommand

__all__ = ["COMMANDS", "DEMO_MARKER", "DEMO_OUTPUTS", "MIN_IMAGES", "VIEWER_URL", "demo", "make_images",
           "prepare_demo_dir", "run_demo", "serve_command"]

DEMO_MARKER = ".headwater-demo"
"""File the demo writes into its folder first: only a folder holding it may be cleared by a later run."""

DEMO_OUTPUTS = ("images", "pool", "downloaded", "droplets.jsonl", "bad.jsonl", "catalog.sqlite",
                "catalog.sqlite-journal", "catalog.sqlite-wal", "catalog.sqlite-shm", "dataset-pool", "bad-pool")
"""Every entry the demo writes into its folder (besides the marker); a re-run removes these and nothing else."""

MIN_IMAGES = 2
"""The dataset steps publish a good and a bad droplet (two images) and stream one back."""


def make_images(folder: str, count: int, seed: int = 0,
                boxes: dict[int, tuple[int, int, int, int]] | None = None) -> list[int]:
    """Write ``count`` small PNGs named ``<id>.png`` with sparse increasing ids; returns the ids.

    Each image has one filled rectangle; ``boxes`` (if given) receives its pixel box
    ``(x1, y1, x2, y2)`` per id, end-exclusive.
    """
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    ids, rid = [], 1000
    for _ in range(count):
        rid += rng.randint(1, 40)
        img = Image.new("RGB", (64, 48), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        x, y = rng.randrange(40), rng.randrange(30)
        draw.rectangle([x, y, x + 20, y + 15], fill=tuple(rng.randrange(256) for _ in range(3)))
        if boxes is not None:
            boxes[rid] = (x, y, x + 21, y + 16)  # PIL's rectangle includes both corners
        img.save(os.path.join(folder, f"{rid}.png"))
        ids.append(rid)
    return ids


def prepare_demo_dir(work_dir: str) -> None:
    """Make ``work_dir`` an empty demo folder without deleting anything the demo did not write.

    Absent or empty: created and marked. Marked by an earlier run: that run's :data:`DEMO_OUTPUTS` are
    removed (a file of the user's beside them stays). Anything else: :class:`click.BadParameter`, and
    nothing is touched.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = open(os.path.join(folder, "thesis.tex"), "w").write("years of work")
        >>> prepare_demo_dir(folder)
        Traceback (most recent call last):
        ...
        click.exceptions.BadParameter: ... is not empty and is not a folder the demo wrote ...
    """
    marker = os.path.join(work_dir, DEMO_MARKER)
    if os.path.lexists(work_dir) and not os.path.isdir(work_dir):
        raise click.BadParameter(f"{work_dir!r} exists and is not a folder", param_hint="--dir")
    if os.path.isdir(work_dir) and os.listdir(work_dir):
        if not (os.path.isfile(marker) and not os.path.islink(marker)):
            raise click.BadParameter(
                f"{work_dir!r} is not empty and is not a folder the demo wrote (no {DEMO_MARKER} in it); "
                "the demo deletes nothing it did not create: give a new or empty folder", param_hint="--dir")
        for name in DEMO_OUTPUTS:
            path = os.path.join(work_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
    os.makedirs(work_dir, exist_ok=True)
    with open(marker, "w") as f:
        f.write("written by `headwater demo`: a later run may remove what the demo wrote here "
                f"({', '.join(DEMO_OUTPUTS)}) and nothing else\n")


VIEWER_URL = "http://127.0.0.1:8000/view/demo/shapes/boxes"
"""Where the demo's dataset is shown once :func:`serve_command` runs."""


def serve_command(work_dir: str) -> str:
    """The one command that serves the demo's catalog (the viewer under ``/view/``) on 127.0.0.1:8000.

    >>> serve_command("/tmp/demo output").split(" serve ")[1]
    "--catalog '/tmp/demo output/catalog.sqlite' --port 8000"
    """
    catalog = shlex.quote(os.path.join(os.path.abspath(work_dir), "catalog.sqlite"))
    return f"{_headwater_program()} serve --catalog {catalog} --port 8000"


def _headwater_program() -> str:
    """``headwater`` when that is this installation's command on PATH, else its full path (``python3 dev.py demo``
    runs it from ``.venv/bin``, which is not on PATH)."""
    script = os.path.join(os.path.dirname(sys.executable), "headwater")
    if not os.path.exists(script) or shutil.which("headwater") == script:
        return "headwater"
    return shlex.quote(os.path.relpath(script) if not os.path.relpath(script).startswith("..") else script)


def run_demo(work_dir: str, images: int = 500) -> None:
    """Run the demo's nine steps in ``work_dir`` (see :func:`prepare_demo_dir` for what it may delete)."""
    if images < MIN_IMAGES:
        raise click.BadParameter(f"the demo needs at least {MIN_IMAGES} images, got {images}", param_hint="--images")
    prepare_demo_dir(work_dir)
    src, pool_dir, out = (os.path.join(work_dir, p) for p in ("images", "pool", "downloaded"))
    t0 = time.perf_counter()
    boxes: dict[int, tuple[int, int, int, int]] = {}
    ids = make_images(src, images, boxes=boxes)
    click.echo(f"1. generated {len(ids)} PNG images in {src} ({time.perf_counter() - t0:.2f}s)")

    t0 = time.perf_counter()
    packed = pack_directory(src, pool_dir, layout="increment-id", base_level=2, silent=True)
    click.echo(f"2. packed them into {len(packed.shards)} tar shards (cheesechaser increment-id layout, "
               f"base_level=2) with hfutils indexes and a manifest ({time.perf_counter() - t0:.2f}s)")

    report = verify_pool(pool_dir, silent=True)
    click.echo(f"3. verified {report.shards} shards, {report.members} members: "
               + ("ok" if report.ok else f"{len(report.problems)} problems"))

    pool = StorePool(pool_dir, layout="increment-id", base_level=2)
    wanted = [*random.Random(1).sample(ids, min(100, len(ids))), 999_999_999]
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
    _dataset_steps(work_dir, src, ids[:min(len(ids), 200)], boxes)
    click.echo(f"done: everything is under {os.path.abspath(work_dir)}")
    click.echo(f"look at it in a browser: {serve_command(work_dir)}")
    click.echo(f"  then open {VIEWER_URL}")


def _dataset_steps(work_dir: str, images_dir: str, ids: list[int],
                   boxes: dict[int, tuple[int, int, int, int]]) -> None:
    """Publish the drawn boxes as a dataset, stream a chunk back, show a refused publish."""
    from ..catalog import Catalog
    from ..client import Api
    from ..publish import PublishError, publish

    width, height = 64, 48
    rows = []
    for rid in ids:
        x1, y1, x2, y2 = boxes[rid]
        rows.append({"kind": "ImageAnnotation", "uid": str(rid), "image": {"paths": [f"{rid}.png"]},
                     "classes": {"shape": {"instances": [{"boundingBox": {"rectangle": [
                         [x1 / width, y1 / height], [x2 / width, y2 / height]]}}]}}})
    jsonl = os.path.join(work_dir, "droplets.jsonl")
    with open(jsonl, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)

    t0 = time.perf_counter()
    catalog_path = os.path.join(work_dir, "catalog.sqlite")
    with Catalog(catalog_path) as cat:
        cat.create_database("demo", public=True, exist_ok=True)  # the viewer shows it without signing in
        record = publish(cat, "demo", "shapes", "boxes", jsonl, images=images_dir,
                         pool_dir=os.path.join(work_dir, "dataset-pool"), splits={"validation": 0.2},
                         split_seed=0, silent=True)
        click.echo(f"7. published {len(rows)} droplets from {jsonl} as dataset {record.uid} of demo/shapes/boxes "
                   f"(tag latest) in {catalog_path}: splits {record.splits}, images packed into pool "
                   f"{record.pools['images']} ({time.perf_counter() - t0:.2f}s)")

        api = Api(catalog=cat, cache=False)
        dataset = api.get_database_by_name("demo").get_dataset("shapes/boxes:latest")
        chunk = list(dataset.stream_split("train", chunk=0, nchunks=2))
        first = chunk[0]
        rect = first.classes["shape"].instances[0].bounding_box.rectangle  # type: ignore[union-attr]
        data = dataset.image_fetcher().fetch(first)
        with open(os.path.join(images_dir, f"{first.uid}.png"), "rb") as f:
            same = f.read() == data
        click.echo(f"8. streamed chunk 0 of 2 of 'train': {len(chunk)} of {dataset.split_count('train')} droplets; "
                   f"the first is image {first.uid} via {first.image.paths[0]}, box {rect.to_xyxy()}, "
                   f"{len(data)} image bytes read from the pool ({'identical to' if same else 'DIFFERENT from'} "
                   "the original)")

        bad = os.path.join(work_dir, "bad.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps(rows[0]) + "\n")
            f.write(json.dumps({**rows[1], "classes": {"shape": {"instances": [
                {"boundingBox": {"rectangle": [[0.5, 0.5], [1.25, 0.9]]}}]}}}) + "\n")
        try:
            publish(cat, "demo", "shapes", "boxes", bad, images=images_dir,
                    pool_dir=os.path.join(work_dir, "bad-pool"), silent=True)
        except PublishError as err:
            first_problem = err.problems[0]
            click.echo(f"9. a droplet with a box outside the image is refused, nothing written "
                       f"({len(cat.datasets('demo', 'shapes', 'boxes'))} dataset in the repository, no bad-pool/): "
                       f"{first_problem}")


@click.command(cls=HeadwaterCommand)
@click.option("--dir", "work_dir", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@click.option("--images", default=500, show_default=True, type=click.IntRange(min=MIN_IMAGES),
              help="How many images to generate.")
def demo(work_dir: str, images: int) -> None:
    """Build a sample pool from generated images, fetch from it, publish and stream a dataset.

    The folder must be new, empty, or an earlier demo's (marked by it): the demo never deletes what it
    did not write."""
    run_demo(work_dir, images)


COMMANDS = [demo]
