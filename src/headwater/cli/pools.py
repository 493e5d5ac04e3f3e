"""Pool commands: ``pack``, ``index``, ``verify``, ``download``, ``extract``, ``upload``.

Each command works on a pool given as a folder or a URL (``http(s)://``, ``s3://``, ``hf://datasets/…``);
a pool that does not exist is an error naming it, never an empty success. Commands that handle many items
finish what they can and exit 1 with a report naming each item that failed.

Example:
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(pack, ["--help"]).output.splitlines()[0]
    'Usage: pack [OPTIONS] SRC_DIR DST_DIR'
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, TextIO

import click

from .options import (
    SIZE,
    HeadwaterCommand,
    layout_options,
    parse_ids,
    progress_option,
    renamed,
    retry_for_option,
    server_options,
    silent_of,
)

__all__ = ["COMMANDS", "pack", "index", "verify", "download", "extract", "upload", "open_pool"]


@click.command(cls=HeadwaterCommand)
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("dst_dir", type=click.Path(file_okay=False))
@click.option("--max-shard-size", type=SIZE, default="1GB", show_default=True,
              help="Cap per shard (sequential layout).")
@click.option("--add", is_flag=True,
              help="DST_DIR already holds a pool: add these files to it (names it holds are refused).")
@layout_options(reading=False)
@click.option("--max-workers", type=click.IntRange(1, 256), default=None,
              help="Shards written at once (threads; each also hashes on two more) [default: usable cores].")
@progress_option
def pack(src_dir: str, dst_dir: str, max_shard_size: int, add: bool, layout: str, base_level: tuple[int, ...],
         base_dir: str, max_workers: int | None, progress: bool | None) -> None:
    """Pack SRC_DIR into tar shards with hfutils indexes and a pool manifest in DST_DIR (new or empty,
    unless --add).

    \b
    headwater pack photos/ pool/ --layout increment-id --base-level 3
    headwater pack photos/ pool-seq/ --max-shard-size 1GB
    headwater pack more-photos/ pool/ --add --layout increment-id --base-level 3
    """
    from ..archive import pack_directory

    if len(base_level) > 1:
        raise click.BadParameter("pack writes each file into one shard: give one --base-level",
                                 param_hint="--base-level")
    report = pack_directory(src_dir, dst_dir, layout=layout,  # type: ignore[arg-type]
                            max_shard_size=max_shard_size, base_level=base_level[0] if base_level else 3,
                            base_dir=base_dir, add=add, silent=silent_of(progress), workers=max_workers)
    click.echo(f"packed {report.files} files into {len(report.shards)} shard(s), {report.bytes} bytes; "
               f"manifest {report.manifest}")
    for shard in report.oversized:
        click.echo(f"warning: {shard} exceeds --max-shard-size (its ids all map to it)", err=True)


@click.command(cls=HeadwaterCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--root", type=click.Path(file_okay=False), help="Pool root for the manifest [default: common folder].")
@click.option("--no-manifest", is_flag=True, help="Only write the per-shard JSON indexes.")
@click.option("--max-workers", type=click.IntRange(1, 256), default=None,
              help="Shards indexed at once (threads; each reads and hashes on three more) [default: usable cores].")
@progress_option
def index(paths: tuple[str, ...], root: str | None, no_manifest: bool, max_workers: int | None,
          progress: bool | None) -> None:
    """Index existing tars (files, or folders searched for *.tar) in one streaming pass each, several at once.

    A shard that is not a valid tar is named with what is wrong and left without a new index; the others
    are indexed (exit 1 when any failed). Members that are not regular files (symlinks, hardlinks, devices,
    fifos) are left out of the index, each named on stderr. Each index is written whole or not at all.
    """
    from tqdm import tqdm

    from ..archive import encode_index, index_path_for, index_tars, rebuild_manifest
    from ..storage import is_temp_name, write_bytes_atomic

    tars: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _dirs, files in os.walk(path):
                tars.extend(os.path.join(folder, f) for f in sorted(files)
                            if f.endswith(".tar") and not is_temp_name(f))
        else:
            tars.append(path)
    failed: dict[str, str] = {}
    skipped: list[str] = []
    total = sum(os.path.getsize(tar) for tar in tars)
    with tqdm(total=total, desc="Indexing", unit="B", unit_scale=True, disable=silent_of(progress)) as bar:
        for done in index_tars(tars, workers=max_workers, on_progress=bar.update):
            skipped.extend(f"skipped {done.path}: {member.name!r}: {member.kind}, not a regular file (not indexed)"
                           for member in done.skipped)
            if done.index is not None:
                write_bytes_atomic(index_path_for(done.path), encode_index(done.index))
            else:
                failed[done.path] = str(done.error)
    click.echo(f"indexed {len(tars) - len(failed)} shard(s)"
               + (f", skipped {len(skipped)} member(s) that are not regular files" if skipped else ""))
    for line in skipped:
        click.echo(line, err=True)
    if not no_manifest and len(failed) < len(tars):
        if root is None:
            dirs = [p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p)) for p in paths]
            root = os.path.commonpath([os.path.abspath(d) for d in dirs])
        click.echo(f"manifest {rebuild_manifest(root)}")
    for reason in failed.values():
        click.echo(f"failed {reason}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


@click.command(cls=HeadwaterCommand)
@click.argument("pool")
@progress_option
def verify(pool: str, progress: bool | None) -> None:
    """Check every shard's size and hashes and every member's sha256; exit 1 on any problem."""
    from ..archive import verify_pool

    report = verify_pool(pool, silent=silent_of(progress))
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(f"checked {report.shards} shard(s), {report.members} member(s): "
               + ("ok" if report.ok else f"{len(report.problems)} problem(s)"))
    if not report.ok:
        raise click.exceptions.Exit(1)


_HF_URL = re.compile(r"hf://datasets/([^/@]+/[^/@]+)(?:@(.+))?")
_RESOLVE_URL = re.compile(r"(https?://.+?)/datasets/([^/]+/[^/]+)/resolve/([^/]+)/?")


def open_pool(url: str, layout: str = "sequential", base_level: tuple[int, ...] = (), base_dir: str = "images",
              table: str | None = None, api_key: str | None = None, retry_for: float | None = None) -> Any:
    """The pool at ``url``: a folder, ``http(s)://``, ``s3://``, ``hf://datasets/OWNER/REPO[@REVISION]``, or a
    Hub ``resolve`` URL (``http(s)://HOST/datasets/OWNER/REPO/resolve/REVISION``, e.g. a ``headwater serve``
    pool) — the last two read as Hub pools: the revision pinned to its commit, a repo or revision the server
    does not have named as such. ``retry_for``: retry unanswered reads for that many seconds (default: the
    store's own policy)."""
    from ..pool import HfBasedDataPool, IncrementIDDataPool, StorePool, TableLayout
    from ..storage import RetryPolicy

    retry = RetryPolicy.lasting(retry_for) if retry_for is not None else None

    levels: int | list[int] = list(base_level) if len(base_level) > 1 else (base_level[0] if base_level else 3)
    hub = _HF_URL.fullmatch(url)
    resolve = _RESOLVE_URL.fullmatch(url)
    if hub or resolve:
        if resolve:
            endpoint, repo, revision = resolve.group(1), resolve.group(2), resolve.group(3)
        else:
            assert hub is not None
            endpoint, repo, revision = None, hub.group(1), hub.group(2) or "main"
        if layout == "increment-id":  # the indexes at the same revision as the shards
            return IncrementIDDataPool(repo, revision, repo, revision, base_level=levels, base_dir=base_dir,
                                       hf_token=api_key, endpoint=endpoint, retry=retry)
        return HfBasedDataPool(repo, revision, repo, revision, hf_token=api_key, endpoint=endpoint,
                               layout=TableLayout(table) if table else None, retry=retry)
    if table:
        return StorePool(url, layout=TableLayout(table), retry=retry)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key and url.startswith("http") else None
    return StorePool(url, layout=layout, base_level=levels, base_dir=base_dir, headers=headers, retry=retry)


@click.command(cls=HeadwaterCommand)
@click.argument("pool_url")
@click.argument("ids", nargs=-1)
@click.option("-o", "--output", "dst_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the files (and metainfo) into.")
@click.option("--ids-file", type=click.File("r"), help="More ids, whitespace or comma separated.")
@layout_options(reading=True)
@click.option("--table", help="CSV/Parquet table with id, archive, filename columns (table layout).")
@click.option("--max-downloads", type=click.IntRange(0), help="Exact cap on resources delivered.")
@click.option("--max-workers", type=click.IntRange(1, 256), default=12, show_default=True,
              help="Reads in flight (threads).")
@renamed("--workers", "--max-workers", "max_workers", type=click.IntRange(1, 256))
@click.option("--api-key", envvar="HEADWATER_API_KEY", show_envvar=True, metavar="KEY",
              help="Bearer token for the pool's server [hf:// pools: also $HF_TOKEN].")
@renamed("--token", "--api-key", "api_key")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@retry_for_option
@progress_option
def download(pool_url: str, ids: tuple[str, ...], dst_dir: str, ids_file: TextIO | None, layout: str,
             base_level: tuple[int, ...], base_dir: str, table: str | None, max_downloads: int | None,
             max_workers: int, api_key: str | None, report_path: str | None, retry_for: float | None,
             progress: bool | None) -> None:
    """Download resources by id from POOL_URL (a folder, http(s)://, s3://, hf://datasets/OWNER/REPO@REV).

    Files already complete in the output folder are skipped (a re-run resumes). Exits 1 when an id was
    missing from the pool or failed, listing each.

    \b
    headwater download pool/ 1-500 2048 -o out/ --layout increment-id
    headwater download hf://datasets/owner/repo@main 7000001 -o out/ --layout increment-id --base-level 3 --base-level 4
    """
    tokens = list(ids) + ([ids_file.read()] if ids_file else [])
    if not tokens:
        raise click.UsageError("give ids as arguments or with --ids-file")
    pool = open_pool(pool_url, layout, base_level, base_dir, table, api_key, retry_for)
    report = pool.batch_download_to_directory(list(parse_ids(tokens)), dst_dir, max_workers=max_workers,
                                              max_downloads=max_downloads, silent=silent_of(progress))
    click.echo(report.summary())
    for rid, reason in list(report.failed.items())[:20]:
        click.echo(f"failed {rid}: {reason}", err=True)
    if report.missing:
        click.echo(f"missing: {' '.join(map(str, report.missing[:50]))}" + (" …" if len(report.missing) > 50 else ""),
                   err=True)
    if report_path:
        with open(report_path, "w") as f:
            json.dump(report.to_dict(), f, indent=2, default=str)
    if report.failed or report.missing:
        raise click.exceptions.Exit(1)


@click.command(cls=HeadwaterCommand)
@click.argument("pool")
@click.argument("shard")
@click.argument("dst_dir", type=click.Path(file_okay=False))
def extract(pool: str, shard: str, dst_dir: str) -> None:
    """Extract SHARD's members into DST_DIR (unsafe names are refused, never written outside); exit 1 when a
    member was refused.

    A damaged shard (cut short, or bytes that do not match the index) still gives every intact member;
    each damaged one is named. Members already in DST_DIR whole (an earlier run stopped by a full disk)
    are kept, not read again.
    """
    from ..archive import extract_shard

    report = extract_shard(pool, shard, dst_dir)
    for name, reason in report.refused.items():
        click.echo(f"refused {name!r}: {reason}", err=True)
    click.echo(f"extracted {len(report.written)} file(s)"
               + (f", {len(report.kept)} already there" if report.kept else ""))
    if report.refused:
        raise click.exceptions.Exit(1)


@click.command(cls=HeadwaterCommand)
@click.argument("pool_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("repo", metavar="OWNER/NAME")
@click.option("--prefix", default="", help="Folder inside the served pool to upload into (e.g. batch2).")
@click.option("--replace", is_flag=True, help="Replace shards that exist there with other bytes (default: refuse).")
@server_options
@progress_option
def upload(pool_dir: str, repo: str, prefix: str, replace: bool, server: str | None, api_key: str | None,
           retry_for: float | None, progress: bool | None) -> None:
    """Upload the tar shards under POOL_DIR into pool OWNER/NAME of a headwater server (needs a write key).

    The server indexes each shard and rebuilds the pool manifest. Shards already there with the same
    sha256 are skipped, so running the command again finishes an interrupted upload; shards there with
    other bytes are refused unless --replace. Prints a JSON report.

    \b
    headwater upload pool/ acme/images --server http://127.0.0.1:8000 --api-key $KEY
    """
    from ..client import HttpTransport, upload_pool

    if not server:
        raise click.UsageError("upload needs --server (or $HEADWATER_SERVER)")
    with HttpTransport(server, api_key, retry_for=retry_for) as transport:
        report = upload_pool(transport, repo, pool_dir, prefix=prefix, replace=replace, silent=silent_of(progress))
    click.echo(json.dumps(report.to_dict()))


COMMANDS = [pack, index, verify, download, extract, upload]
