"""The README's screenshots of the viewer, made again by one command.

What it does
    Publishes ``--count`` synthetic street scenes (benchmarks/_viewer_data.py: JPEGs with cars, trees and
    people, and droplets whose boxes, masks and keypoints lie on them) into a temporary SQLite catalog,
    serves it with the real server on 127.0.0.1, opens the viewer in headless Chromium (Debian's, as the
    browser tests do) and saves two PNGs: a grid page and a sample page with its overlay. The PNGs are
    reduced to 256 colours so the repository stays small.

Run::

    .venv/bin/python benchmarks/screenshots.py [--out docs/images] [--count 48]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository root: tests.support

from tests.support.browser import PageWatch, chromium, decoded_thumbnails  # noqa: E402
from tests.support.servers import live_server  # noqa: E402

from _viewer_data import publish_scenes  # noqa: E402
from headwater.catalog import Catalog  # noqa: E402
from headwater.server.app import ServerConfig  # noqa: E402

GRID_PNG, SAMPLE_PNG = "viewer-grid.png", "viewer-sample.png"


def _save_small(png: bytes, path: str) -> int:
    """Write the screenshot ``png`` to ``path`` as a 256-colour PNG; returns its size in bytes."""
    import io

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return os.path.getsize(path)


def _richest(cat: Catalog, uid: str, split: str) -> int:
    """The ordinal of the first droplet of the split's first page holding the most classes."""
    stop = min(60, cat.dataset_by_uid(uid).splits[split])
    droplets = [json.loads(d) for d in cat.read_range(uid, split, 0, stop)]
    return max(range(len(droplets)), key=lambda i: (len(droplets[i]["classes"]), -i))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images"), help="folder of the PNGs")
    parser.add_argument("--count", type=int, default=48, help="scenes to publish (one grid page holds 60)")
    parser.add_argument("--sample", type=int, default=None,
                        help="ordinal of the sample page to capture (default: the first with every class)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hw-shots-") as tmp:
        path = os.path.join(tmp, "catalog.sqlite")
        with Catalog(path) as cat:
            record = publish_scenes(cat, tmp, args.count, splits={"validation": 0.1})
            sample = args.sample if args.sample is not None else _richest(cat, record.uid, "train")
        base = f"/view/demo/city/streets/{record.uid}/train"
        with live_server(ServerConfig(catalog=path)) as url, chromium() as browser:
            context = browser.new_context(viewport={"width": 1200, "height": 860})
            page = context.new_page()
            watch = PageWatch(page)
            page.goto(url + base)
            decoded_thumbnails(page)
            grid = _save_small(page.screenshot(), os.path.join(args.out, GRID_PNG))
            page.goto(f"{url}{base}/{sample}")
            page.wait_for_selector("body.overlay-ready", state="attached")
            sample_size = _save_small(page.screenshot(), os.path.join(args.out, SAMPLE_PNG))
            watch.assert_clean()
            context.close()
    print(f"{os.path.join(args.out, GRID_PNG)}: {grid / 1e3:.0f} kB")
    print(f"{os.path.join(args.out, SAMPLE_PNG)}: {sample_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
