"""The ``headwater`` command: one subcommand per job.

Examples::

    headwater pack photos/ pool/ --layout increment-id --base-level 3
    headwater index pool/images/*.tar
    headwater verify pool/
    headwater ls pool/
    headwater download pool/ 1-100 2048 -o out/
    headwater download http://host/pool 17 --layout increment-id -o out/
    headwater demo
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import click

from .errors import HeadwaterError

__all__ = ["main", "parse_size", "parse_ids"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_size(text: str) -> int:
    """``"1GB"`` → 1000000000, ``"64MiB"`` → 67108864, ``"4096"`` → 4096."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise click.BadParameter(f"not a size: {text!r} (e.g. 512MB, 1GiB, 4096)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_ids(tokens: list[str]) -> Iterator[Any]:
    """Ids from the command line: integers, ``a-b`` inclusive ranges, or other names as strings."""
    for token in tokens:
        for part in token.replace(",", " ").split():
            match = re.fullmatch(r"(\d+)-(\d+)", part)
            if match:
                lo, hi = int(match.group(1)), int(match.group(2))
                if hi < lo:
                    raise click.BadParameter(f"empty range {part!r}")
                yield from range(lo, hi + 1)
            elif part.isdigit():
                yield int(part)
            else:
                yield part


def _fail(err: Exception) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(package_name="headwater")
def main() -> None:
    """headwater: indexed tar pools and versioned annotation datasets."""


@main.command()
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("dst_dir", type=click.Path(file_okay=False))
@click.option("--max-shard-size", default="1GB", show_default=True, help="Cap per shard (sequential layout).")
@click.option("--layout", type=click.Choice(["sequential", "increment-id"]), default="sequential", show_default=True)
@click.option("--base-level", default=3, show_default=True, help="Digits of id % 10**N (increment-id).")
@click.option("--base-dir", default="images", show_default=True, help="Folder of the shards (increment-id).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def pack(src_dir: str, dst_dir: str, max_shard_size: str, layout: str, base_level: int, base_dir: str,
         quiet: bool) -> None:
    """Pack SRC_DIR into tar shards with hfutils indexes and a pool manifest in DST_DIR."""
    from .archive import pack_directory

    try:
        report = pack_directory(src_dir, dst_dir, layout=layout, max_shard_size=parse_size(max_shard_size),  # type: ignore[arg-type]
                                base_level=base_level, base_dir=base_dir, silent=quiet)
    except HeadwaterError as err:
        _fail(err)
    click.echo(f"packed {report.files} files into {len(report.shards)} shard(s), {report.bytes} bytes; "
               f"manifest {report.manifest}")
    for shard in report.oversized:
        click.echo(f"warning: {shard} exceeds --max-shard-size (its ids all map to it)", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--root", type=click.Path(file_okay=False), help="Pool root for the manifest (default: common folder).")
@click.option("--no-manifest", is_flag=True, help="Only write the per-shard JSON indexes.")
@click.option("-q", "--quiet", is_flag=True)
def index(paths: tuple[str, ...], root: str | None, no_manifest: bool, quiet: bool) -> None:
    """Index existing tars (files, or folders searched for *.tar) in one streaming pass each."""
    from tqdm import tqdm

    from .archive import encode_index, index_path_for, index_tar, rebuild_manifest
    from .storage import atomic_path, is_temp_name

    tars: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _dirs, files in os.walk(path):
                tars.extend(os.path.join(folder, f) for f in sorted(files)
                            if f.endswith(".tar") and not is_temp_name(f))
        else:
            tars.append(path)
    try:
        for tar in tqdm(tars, desc="Indexing", unit="shard", disable=quiet):
            with atomic_path(index_path_for(tar)) as tmp:
                with open(tmp, "wb") as f:
                    f.write(encode_index(index_tar(tar)))
    except HeadwaterError as err:
        _fail(err)
    click.echo(f"indexed {len(tars)} shard(s)")
    if not no_manifest and tars:
        if root is None:
            dirs = [p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p)) for p in paths]
            root = os.path.commonpath([os.path.abspath(d) for d in dirs])
        click.echo(f"manifest {rebuild_manifest(root)}")


@main.command()
@click.argument("pool")
@click.option("-q", "--quiet", is_flag=True)
def verify(pool: str, quiet: bool) -> None:
    """Check every shard's size and hashes and every member's sha256; exit 1 on any problem."""
    from .archive import verify_pool

    report = verify_pool(pool, silent=quiet)
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(f"checked {report.shards} shard(s), {report.members} member(s): "
               + ("ok" if report.ok else f"{len(report.problems)} problem(s)"))
    sys.exit(0 if report.ok else 1)


def _open_pool(url: str, layout: str, base_level: tuple[int, ...], base_dir: str, table: str | None,
               token: str | None) -> Any:
    from .pool import HfBasedDataPool, IncrementIDDataPool, StorePool, TableLayout

    levels: int | list[int] = list(base_level) if len(base_level) > 1 else (base_level[0] if base_level else 3)
    hf = re.fullmatch(r"hf://datasets/([^/@]+/[^/@]+)(?:@(.+))?", url)
    if hf:
        repo, revision = hf.group(1), hf.group(2) or "main"
        if layout == "increment-id":
            return IncrementIDDataPool(repo, revision, base_level=levels, base_dir=base_dir, hf_token=token)
        return HfBasedDataPool(repo, revision, hf_token=token, layout=TableLayout(table) if table else None)
    if table:
        return StorePool(url, layout=TableLayout(table))
    headers = {"Authorization": f"Bearer {token}"} if token and url.startswith("http") else None
    return StorePool(url, layout=layout, base_level=levels, base_dir=base_dir, headers=headers)


@main.command()
@click.argument("pool_url")
@click.argument("ids", nargs=-1)
@click.option("-o", "--output", "dst_dir", required=True, type=click.Path(file_okay=False))
@click.option("--ids-file", type=click.File("r"), help="More ids, whitespace or comma separated.")
@click.option("--layout", type=click.Choice(["scan", "increment-id"]), default="scan", show_default=True)
@click.option("--base-level", type=int, multiple=True, help="increment-id levels (repeatable).")
@click.option("--base-dir", default="images", show_default=True)
@click.option("--table", help="CSV/Parquet table with id, archive, filename columns (table layout).")
@click.option("--max-downloads", type=int, help="Exact cap on resources delivered.")
@click.option("--workers", default=12, show_default=True)
@click.option("--token", envvar="HF_TOKEN", help="Bearer token (HF_TOKEN).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("-q", "--quiet", is_flag=True)
def download(pool_url: str, ids: tuple[str, ...], dst_dir: str, ids_file: Any, layout: str,
             base_level: tuple[int, ...], base_dir: str, table: str | None, max_downloads: int | None,
             workers: int, token: str | None, report_path: str | None, quiet: bool) -> None:
    """Download resources by id from POOL_URL (dir, http(s)://, s3://, hf://datasets/owner/repo@rev)."""
    tokens = list(ids) + ([ids_file.read()] if ids_file else [])
    if not tokens:
        raise click.UsageError("give ids as arguments or with --ids-file")
    try:
        pool = _open_pool(pool_url, layout, base_level, base_dir, table, token)
        report = pool.batch_download_to_directory(list(parse_ids(tokens)), dst_dir, max_workers=workers,
                                                  max_downloads=max_downloads, silent=quiet)
    except HeadwaterError as err:
        _fail(err)
    click.echo(report.summary())
    for rid, reason in list(report.failed.items())[:20]:
        click.echo(f"failed {rid}: {reason}", err=True)
    if report.missing:
        click.echo(f"missing: {' '.join(map(str, report.missing[:50]))}" + (" …" if len(report.missing) > 50 else ""))
    if report_path:
        with open(report_path, "w") as f:
            json.dump(report.to_dict(), f, indent=2, default=str)
    sys.exit(1 if report.failed else 0)


@main.command(name="ls")
@click.argument("pool_url")
@click.option("--files", is_flag=True, help="List every member, not just shards.")
def ls_cmd(pool_url: str, files: bool) -> None:
    """List a pool's shards (from its manifest, or its indexes)."""
    from .archive import find_shards, load_index
    from .pool import StorePool

    try:
        pool = StorePool(pool_url)
        manifest = pool.manifest()
        if manifest is not None and not files:
            rows = [(s.path, s.files, s.filesize) for s in manifest.shards()]
        else:
            rows = []
            for shard in find_shards(pool.index_store):
                idx = load_index(pool.index_store, shard)
                rows.append((shard, len(idx.files), idx.filesize))
                if files:
                    for name, entry in idx.files.items():
                        click.echo(f"{shard}\t{name}\t{entry.offset}\t{entry.size}")
    except HeadwaterError as err:
        _fail(err)
    for shard, count, size in rows:
        click.echo(f"{shard}\t{count} files\t{size} bytes")
    click.echo(f"{len(rows)} shard(s), {sum(r[1] for r in rows)} files, {sum(r[2] for r in rows)} bytes")


@main.command()
@click.argument("pool")
@click.argument("shard")
@click.argument("dst_dir", type=click.Path(file_okay=False))
def extract(pool: str, shard: str, dst_dir: str) -> None:
    """Extract SHARD's members into DST_DIR (unsafe names are refused, never written outside)."""
    from .archive import extract_shard

    try:
        report = extract_shard(pool, shard, dst_dir)
    except HeadwaterError as err:
        _fail(err)
    for name, reason in report.refused.items():
        click.echo(f"refused {name!r}: {reason}", err=True)
    click.echo(f"extracted {len(report.written)} file(s)")
    sys.exit(1 if report.refused else 0)


@main.command()
@click.option("--dir", "work_dir", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@click.option("--images", default=500, show_default=True)
def demo(work_dir: str, images: int) -> None:
    """Build a sample pool from generated images, then fetch resources from it and report."""
    from .demo import run_demo

    run_demo(work_dir, images)


if __name__ == "__main__":  # pragma: no cover
    main()
