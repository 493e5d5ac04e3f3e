"""Benchmark: thumbnails of annotated photos — headwater's renderer vs a naive Pillow full decode + draw + resize.

What is measured
    Thumbnails per second, every usable core busy (one process each, a :class:`ProcessPoolExecutor` made once
    and shared by every side, so process start-up is not timed), for ``--n`` renderings of 1600×1200 JPEGs
    with 10 labelled boxes each, to a 256-pixel JPEG thumbnail:

    * headwater — :func:`headwater.render.render` (``max_size=256``: the JPEG decoded at 1/4 scale by
      ``Image.draft``, resized to 256, the boxes and labels drawn at that scale) and
      :func:`headwater.render.encode`;
    * naive — what one writes first with Pillow: ``Image.open(...).convert("RGB")`` (a full decode),
      ``ImageDraw`` rectangles and labels at full size, ``resize`` to 256 (its default filter, bicubic),
      JPEG encode;
    * limit — ``Image.draft`` decode alone at the same scale (no drawing, no resize, no encode): the
      least any thumbnail of these files costs. headwater's figure is printed as a share of it.

Why
    The viewer renders a grid of 60 thumbnails per page view and ``headwater render --grid`` a sheet of
    hundreds; a full decode of each photo is most of the cost and is not needed for a 256-pixel tile. The
    goal is ≥ 5× the naive path.

Data
    ``--distinct`` different photos (smooth random colour fields with noise, JPEG quality 90, fixed seed),
    cycled to ``--n`` renderings; each droplet has 10 boxes of 3 classes with confidences. The sides run
    alternately ``--runs`` times each (default 3); min / median / max are printed, the median quoted
    (``benchmarks/_common.py``).

Run::

    .venv/bin/python benchmarks/bench_render.py [--n 240] [--distinct 24] [--size 256] [--runs 3] [--workers N]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from PIL import Image, ImageDraw, ImageFont

from _common import Spread, add_runs_option, alternate, describe_machine, limit_line, ratio_line, spread_table

GOAL_SPEEDUP = 5.0
CLASSES = ("person", "car", "dog")

_IMAGES: list[bytes] = []
_DROPLETS: list[bytes] = []


def make_photo(rng: random.Random, size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A photo-like JPEG: a smooth random colour field (a tiny random image enlarged) plus grain."""
    small = Image.frombytes("RGB", (16, 12), rng.randbytes(16 * 12 * 3))
    field = small.resize(size, Image.Resampling.BICUBIC)
    grain = Image.effect_noise(size, 24).convert("RGB")
    photo = Image.blend(field, grain, 0.15)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_droplet(rng: random.Random, i: int) -> bytes:
    """A droplet with 10 boxes (confidences set) over 3 classes, as JSON bytes."""
    import msgspec

    classes: dict[str, dict[str, list[dict[str, object]]]] = {c: {"instances": []} for c in CLASSES}
    for _ in range(10):
        x, y = rng.uniform(0, 0.7), rng.uniform(0, 0.7)
        w, h = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)
        box = {"rectangle": [[x, y], [x + w, y + h]], "confidence": round(rng.uniform(0.3, 1.0), 3)}
        classes[rng.choice(CLASSES)]["instances"].append({"boundingBox": box})
    return msgspec.json.encode({"kind": "ImageAnnotation", "image": {"paths": [f"pool://images/{i}.jpg"]},
                                "classes": classes, "uid": f"u{i}"})


def _init(images: list[bytes], droplets: list[bytes]) -> None:
    _IMAGES[:] = images
    _DROPLETS[:] = droplets
    from headwater.render import render  # import and font loading before any timed run

    render(images[0], droplets[0], max_size=64)


def headwater_side(indices: range, size: int) -> int:
    from headwater.droplet import decode_droplet
    from headwater.render import encode, render

    for i in indices:
        j = i % len(_IMAGES)
        out = render(_IMAGES[j], decode_droplet(_DROPLETS[j]), max_size=size)
        encode(out.image, "JPEG")
    return len(indices)


def naive_side(indices: range, size: int) -> int:
    import msgspec

    font = ImageFont.truetype("DejaVuSans.ttf", 22)
    for i in indices:
        j = i % len(_IMAGES)
        droplet = msgspec.json.decode(_DROPLETS[j])
        image = Image.open(io.BytesIO(_IMAGES[j])).convert("RGB")
        width, height = image.size
        draw = ImageDraw.Draw(image)
        for name, annotation in droplet["classes"].items():
            for instance in annotation["instances"]:
                box = instance["boundingBox"]
                (x1, y1), (x2, y2) = box["rectangle"]
                xy = [x1 * width, y1 * height, x2 * width, y2 * height]
                draw.rectangle(xy, outline=(255, 0, 0), width=4)
                draw.text((xy[0], xy[1] - 24), f"{name} {box['confidence']:.2f}", fill=(255, 0, 0), font=font)
        scale = size / max(width, height)
        thumb = image.resize((round(width * scale), round(height * scale)))  # Pillow's default filter (bicubic)
        buf = io.BytesIO()
        thumb.save(buf, "JPEG", quality=85)
    return len(indices)


def draft_side(indices: range, size: int) -> int:
    for i in indices:
        image = Image.open(io.BytesIO(_IMAGES[i % len(_IMAGES)]))
        scale = size / max(image.size)
        image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
        image.load()
    return len(indices)


SIDES = {"headwater render": headwater_side, "naive full decode + draw + resize": naive_side,
         "limit: Image.draft decode alone": draft_side}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=240, help="thumbnails per run of each side (default 240)")
    parser.add_argument("--distinct", type=int, default=24, help="different photos, cycled (default 24)")
    parser.add_argument("--size", type=int, default=256, help="longest side of a thumbnail (default 256)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="processes (default: the usable cores)")
    parser.add_argument("--seed", type=int, default=1234)
    add_runs_option(parser)
    args = parser.parse_args()
    print(describe_machine())
    rng = random.Random(args.seed)
    images = [make_photo(rng) for _ in range(args.distinct)]
    droplets = [make_droplet(rng, i) for i in range(args.distinct)]
    print(f"data: {args.distinct} distinct 1600x1200 JPEGs ({sum(map(len, images)) / len(images) / 1e3:.0f} KB "
          f"each), 10 boxes a droplet; {args.n} thumbnails of {args.size} px a run; {args.workers} processes")
    step = max(1, args.n // (args.workers * 4))
    chunks = [range(i, min(args.n, i + step)) for i in range(0, args.n, step)]
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(images, droplets)) as pool:
        sizes = pool.submit(_sizes, args.size).result()
        assert sizes[0] == sizes[1], f"the two sides make different thumbnails: {sizes}"

        cpu: dict[str, list[float]] = {name: [] for name in SIDES}

        def side(name: str, fn: Callable[[range, int], int]) -> Callable[[], None]:
            def run() -> None:
                done = list(pool.map(_timed, [fn] * len(chunks), chunks, [args.size] * len(chunks)))
                assert sum(count for count, _ in done) == args.n
                cpu[name].append(sum(seconds for _, seconds in done))

            return run

        times = alternate({name: side(name, fn) for name, fn in SIDES.items()}, args.runs,
                          log=lambda line: print(line, file=sys.stderr))
    rates = {name: Spread(t).rates(args.n) for name, t in times.items()}
    print(spread_table(rates, "thumbnails/s (wall clock, all workers)", fmt=",.1f"))
    naive, ours, limit = "naive full decode + draw + resize", "headwater render", "limit: Image.draft decode alone"
    ratio, line = ratio_line("headwater vs naive", times[naive], times[ours])
    print(line + f"; goal >= {GOAL_SPEEDUP:.0f}x — {'met' if ratio >= GOAL_SPEEDUP else 'not met'}")
    per_thumb = {name: Spread([c / args.n * 1000 for c in samples]) for name, samples in cpu.items()}
    print(spread_table(per_thumb, "CPU ms a thumbnail (all workers; not slowed by other load)", fmt=",.2f"))
    print(ratio_line("headwater vs naive, CPU work", cpu[naive], cpu[ours])[1])
    print(ratio_line("limit vs headwater, CPU work (headwater's share of the limit)", cpu[limit], cpu[ours])[1])
    print(limit_line("Image.draft decode alone", times[limit], times[ours],
                     args.n, "thumbnails/s"))


def _timed(fn: Callable[[range, int], int], indices: range, size: int) -> tuple[int, float]:
    """``fn(indices, size)`` in a worker, with the CPU seconds it took there."""
    start = time.process_time()
    count = fn(indices, size)
    return count, time.process_time() - start


def _sizes(size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The thumbnail size each side makes of the first photo (they must agree for the comparison to hold)."""
    from headwater.render import render

    ours = render(_IMAGES[0], _DROPLETS[0], max_size=size).image.size
    image = Image.open(io.BytesIO(_IMAGES[0]))
    scale = size / max(image.size)
    return ours, (round(image.width * scale), round(image.height * scale))


if __name__ == "__main__":
    main()
