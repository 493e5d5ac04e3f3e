"""``headwater render``: droplets drawn on their images, as one file each or one contact sheet.

Like ``stream`` it opens one :class:`~headwater.client.Api` (a local catalog, or a server with
``--server``); the droplets come from the split's stream (starting at ``--ordinal`` in O(1)), their images
through the dataset's :class:`~headwater.droplet.ImageFetcher` — the pool layer's planned, merged range
reads, as a download does — a batch at a time, and :mod:`headwater.render` draws them on a few threads
(Pillow decodes and resizes without the GIL). A missing or undecodable image becomes a placeholder tile
naming the problem: the other files and the sheet are still written, and the command exits 1 listing it.

Example:
    >>> output_kind("sheet.png", grid=(4, 2), fmt=None)
    ('sheet', 'PNG')
    >>> output_kind("out/", grid=None, fmt=None)
    ('folder', 'PNG')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from ..catalog import NotFoundError
from ..droplet import ImageAnnotation, decode_droplet
from .context import open_api
from .options import (
    GRID,
    REPO_REF,
    HeadwaterCommand,
    RepoRef,
    catalog_option,
    database_option,
    progress_option,
    server_options,
    silent_of,
)

if TYPE_CHECKING:
    from ..client import Dataset
    from ..render import Rendered

__all__ = ["COMMANDS", "render", "output_kind"]

_BATCH = 32
_DEFAULT_COUNT = 16
_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


@dataclass
class _Item:
    ordinal: int
    droplet: ImageAnnotation


def output_kind(out: str, *, grid: tuple[int, int] | None, fmt: str | None) -> tuple[str, str]:
    """What ``-o OUT`` is — ``"sheet"`` (with ``--grid``), ``"file"`` (an image suffix) or ``"folder"`` —
    and the image format written there (``--format``, else OUT's suffix, else PNG)."""
    from ..render.encoding import FORMATS

    suffix = os.path.splitext(out.rstrip("/"))[1].lower().lstrip(".")
    by_suffix = FORMATS.get(suffix) if not out.endswith(("/", os.sep)) else None
    chosen = FORMATS[fmt] if fmt is not None else (by_suffix or "PNG")
    if grid is not None:
        if os.path.isdir(out):
            raise click.BadParameter(f"{out!r} is a folder; with --grid, give the sheet's file name "
                                     "(e.g. sheet.png)", param_hint="-o")
        return "sheet", chosen
    return ("file" if by_suffix is not None else "folder"), chosen


def _prepare(out: str, kind: str) -> None:
    """Make the folder OUT (or OUT's folder) and check it can be written, before any work is done."""
    folder = out if kind == "folder" else os.path.dirname(os.path.abspath(out))
    if kind != "folder" and os.path.isdir(out):
        raise click.BadParameter(f"cannot write {out}: it is a folder, not a file name", param_hint="-o")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(f"cannot write {out}: cannot create folder {folder}: {err.strerror or err}",
                                 param_hint="-o") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write {out}: folder {folder} is not writable", param_hint="-o")


def _find_uid(ds: Dataset, split: str, uid: str) -> _Item:
    """The droplet whose uid is ``uid``, by scanning the split (lines without the uid are not decoded)."""
    # TODO(facets): look the ordinal up with Catalog.ordinal_of (an index) instead of scanning the split
    import msgspec

    token = msgspec.json.encode(uid)
    for ordinal, line in enumerate(ds.stream_split(split, raw=True, cache=False)):
        if token in line:
            droplet = decode_droplet(line)
            if droplet.uid == uid:
                return _Item(ordinal, droplet)
    raise NotFoundError(f"no droplet with uid {uid!r} in split {split!r} of dataset {ds.uid}")


def _select(ds: Dataset, split: str, start: int, count: int, classes: frozenset[str] | None) -> Iterator[_Item]:
    """Up to ``count`` droplets from ordinal ``start`` on; with ``classes``, only those having one of them."""
    if count == 0:
        return
    found = 0
    for ordinal, droplet in enumerate(ds.stream_split(split, offset=start, cache=False), start):
        if classes is not None and not any(
            name in classes and (annotation.instances or annotation.multi_instances)
            for name, annotation in droplet.classes.items()
        ):
            continue
        yield _Item(ordinal, droplet)
        found += 1
        if found >= count:
            return


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80].strip("._") or "_"


@click.command(cls=HeadwaterCommand)
@database_option
@click.argument("dataset", type=REPO_REF)
@click.argument("split")
@click.option("--ordinal", type=click.IntRange(0), help="Start at the droplet at this position of the split "
                                                        "(0-based); alone, render that one droplet.")
@click.option("--uid", "droplet_uid", metavar="UID", help="Render the droplet whose uid is UID.")
@click.option("--limit", type=click.IntRange(1), help="How many droplets [default: the grid's cells, else 1 with "
                                                      f"--ordinal, else {_DEFAULT_COUNT}].")
@click.option("--class", "classes", multiple=True, metavar="C",
              help="Repeatable: draw only these classes (and, unless one droplet is named, skip droplets "
                   "without any of them).")
@click.option("--min-confidence", type=float, metavar="X", help="Hide annotations whose confidence is below X.")
@click.option("--grid", type=GRID, metavar="COLSxROWS",
              help="Write one contact sheet of COLSxROWS cells to OUT (a file).")
@click.option("--size", type=click.IntRange(16, 16384), metavar="PIXELS",
              help="Longest side of each image [default: the image's own size; 256 per cell with --grid].")
@click.option("--format", "fmt", type=click.Choice(["png", "jpeg", "webp"]),
              help="Image format [default: OUT's suffix, else png].")
@click.option("--no-boxes", is_flag=True, help="Do not draw bounding boxes.")
@click.option("--no-masks", is_flag=True, help="Do not draw segmentation masks.")
@click.option("--no-keypoints", is_flag=True, help="Do not draw keypoints.")
@click.option("--no-labels", is_flag=True, help="Do not write class names, confidences and keypoint names.")
@click.option("--attributes", is_flag=True, help="Add each instance's attributes to its label.")
@click.option("-o", "--output", "out", required=True, metavar="OUT",
              help="A folder (one image per droplet), an image file (one droplet), or the sheet's file (--grid).")
@catalog_option
@server_options
@progress_option
def render(dataset: RepoRef, split: str, ordinal: int | None, droplet_uid: str | None, limit: int | None,
           classes: tuple[str, ...], min_confidence: float | None, grid: tuple[int, int] | None, size: int | None,
           fmt: str | None, no_boxes: bool, no_masks: bool, no_keypoints: bool, no_labels: bool, attributes: bool,
           out: str, database: str | None, catalog: str | None, server: str | None, api_key: str | None,
           retry_for: float | None, progress: bool | None) -> None:
    """Draw droplets of SPLIT on their images: boxes, masks, keypoints, labels, in a stable colour per class.

    Writes one image per droplet into the folder OUT (named ORDINAL[-UID].png), one image to OUT when it
    names a file and one droplet is chosen, or one contact sheet with --grid. A missing or undecodable
    image is drawn as a tile naming the problem; the rest is written and the command exits 1, listing
    it. Coordinates outside [0, 1] are drawn clipped, and listed as notes.

    \b
    headwater render main/acme/cats train --ordinal 3 -o cat3.png
    headwater render main/acme/cats:v2 validation --class cat --grid 8x4 -o cats.jpg
    """
    from tqdm import tqdm

    from ..render import RenderOptions, contact_sheet, encode
    from ..render import render as draw

    if droplet_uid is not None and (ordinal is not None or limit is not None):
        raise click.UsageError("--uid names one droplet: give it without --ordinal and --limit")
    kind, image_format = output_kind(out, grid=grid, fmt=fmt)
    cells = grid[0] * grid[1] if grid is not None else None
    single = droplet_uid is not None or (ordinal is not None and limit is None and grid is None)
    if kind == "file" and not single:
        raise click.BadParameter(f"{out!r} names one file: choose one droplet (--ordinal N or --uid UID), give a "
                                 "folder, or add --grid COLSxROWS for a contact sheet", param_hint="-o")
    if grid is not None and cells is not None and limit is not None and limit > cells:
        raise click.BadParameter(f"{limit} droplets do not fit a {grid[0]}x{grid[1]} grid ({cells} cells)",
                                 param_hint="--limit")
    count = 1 if droplet_uid is not None else limit or cells or (1 if ordinal is not None else _DEFAULT_COUNT)
    wanted = frozenset(classes) or None
    options = RenderOptions(classes=wanted, min_confidence=min_confidence, boxes=not no_boxes, masks=not no_masks,
                            keypoints=not no_keypoints, labels=not no_labels, attributes=attributes)
    max_size = size if size is not None else (256 if grid is not None else None)
    _prepare(out, kind)

    with open_api(catalog, server, api_key, retry_for=retry_for) as api:
        ds = api.get_database_by_name(dataset.database).get_dataset(dataset.namespace, dataset.name,
                                                                    dataset.tag or "latest")
        if split not in ds.splits:
            raise NotFoundError(f"split {split!r} not found in dataset {ds.uid} (splits: "
                                f"{', '.join(sorted(ds.splits)) or 'none'})")
        total = ds.split_count(split)
        if ordinal is not None and ordinal >= total:
            raise click.BadParameter(f"{ordinal} is out of range: split {split!r} has {total} droplet(s)",
                                     param_hint="--ordinal")
        if droplet_uid is not None:
            items: Iterator[_Item] = iter([_find_uid(ds, split, droplet_uid)])
        else:
            items = _select(ds, split, ordinal or 0, count, None if single else wanted)
        fetcher = ds.image_fetcher()
        rendered: list[tuple[_Item, Rendered]] = []
        problems = written = 0
        width = len(str(max(total - 1, 0)))
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool, \
                tqdm(total=count, desc="Rendering", unit="img", disable=silent_of(progress)) as bar:
            while batch := [item for _, item in zip(range(_BATCH), items, strict=False)]:
                images = fetcher.fetch_many([item.droplet.image for item in batch], errors="return")
                drawn = list(pool.map(lambda pair: draw(pair[0], pair[1].droplet, options=options,
                                                        max_size=max_size), zip(images, batch, strict=True)))
                for item, result in zip(batch, drawn, strict=True):
                    name = f"#{item.ordinal}" + (f" ({item.droplet.uid})" if item.droplet.uid else "")
                    if result.problem is not None:
                        problems += 1
                        click.echo(f"failed {name}: {result.problem}", err=True)
                    for flag in result.flags:
                        click.echo(f"note: {name}: {flag}", err=True)
                    if kind == "sheet":
                        rendered.append((item, result))
                        continue
                    if kind == "file":
                        path = out
                    else:
                        stem = f"{item.ordinal:0{width}d}" + (f"-{_safe_name(item.droplet.uid)}"
                                                               if item.droplet.uid else "")
                        path = os.path.join(out, stem + _SUFFIXES[image_format])
                    _write(path, encode(result.image, image_format))
                    written += 1
                bar.update(len(batch))
    if kind == "sheet":
        assert grid is not None
        captions = [f"#{item.ordinal}" + (f" {item.droplet.uid}" if item.droplet.uid else "") for item, _ in rendered]
        sheet = contact_sheet([r for _, r in rendered], grid[0], grid[1], tile=max_size or 256, captions=captions)
        _write(out, encode(sheet, image_format))
        click.echo(f"wrote a {grid[0]}x{grid[1]} sheet of {len(rendered)} droplet(s) to {out}")
    elif kind == "file":
        click.echo(f"wrote {out}")
    else:
        click.echo(f"wrote {written} image(s) to {out}")
    if written == 0 and kind == "folder" and wanted is not None:
        click.echo(f"note: no droplet from #{ordinal or 0} on has any of the classes {', '.join(sorted(wanted))}",
                   err=True)
    if problems:
        click.echo(f"{problems} image(s) could not be drawn (placeholders written)", err=True)
        raise click.exceptions.Exit(1)


def _write(path: str, data: bytes) -> None:
    """Write one image whole or not at all (a full disk is :class:`~headwater.storage.DiskFullError`, exit 3)."""
    from ..storage import DiskFullError, write_bytes_atomic

    try:
        write_bytes_atomic(path, data)
    except DiskFullError:
        raise
    except OSError as err:
        raise click.BadParameter(f"cannot write {path}: {err.strerror or err}", param_hint="-o") from None


COMMANDS = [render]
