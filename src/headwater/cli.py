"""The ``headwater`` command: one subcommand per job.

Examples::

    headwater pack photos/ pool/ --layout increment-id --base-level 3
    headwater index pool/images/*.tar
    headwater verify pool/
    headwater ls pool/
    headwater download pool/ 1-100 2048 -o out/
    headwater download http://host/pool 17 --layout increment-id -o out/
    headwater publish instances_val2017.json --images val2017/ --repo main/coco/val2017 --create-database
    headwater publish droplets.jsonl --repo main/acme/cats --split validation=0.05 --split-seed 1
    headwater ls main/acme/cats
    headwater tag main/acme/cats stable latest
    headwater stream main/acme/cats:stable validation --chunk 0 --nchunks 4 | head
    headwater stream main/acme/cats train --server http://host:8000 --api-key KEY | head
    headwater demo
    headwater keys create --user alice --write         # prints the secret once
    headwater database create shared --owner alice --public
    headwater serve --catalog catalog.sqlite --pool acme/images=pool/ --port 8000

Dataset commands find the catalog with ``--catalog`` (a SQLite file path or a ``postgresql://`` URL),
else ``$HEADWATER_CATALOG``, else ``$XDG_DATA_HOME/headwater/catalog.sqlite`` (``~/.local/share/…``).
``publish``, ``tag`` and ``stream`` work against a server instead with ``--server URL --api-key KEY``
(or ``$HEADWATER_SERVER`` / ``$HEADWATER_API_KEY``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from .errors import HeadwaterError

__all__ = ["main", "parse_size", "parse_ids", "parse_repo"]

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


# -- catalog helpers ---------------------------------------------------------------------------------
_CATALOG_HELP = ("Catalog: a SQLite file path or a postgresql:// URL "
                 "[default: $HEADWATER_CATALOG, else $XDG_DATA_HOME/headwater/catalog.sqlite]")


@contextmanager
def _open_catalog(location: str | None, *, create: bool = False) -> Iterator[Any]:
    """Open the catalog (creating a missing SQLite file's folder only when ``create``)."""
    from .catalog import Catalog, default_catalog_location

    loc = location or default_catalog_location()
    if "://" not in loc:
        loc = os.path.abspath(os.path.expanduser(loc))
        if not os.path.exists(loc):
            if not create:
                raise click.ClickException(f"no catalog at {loc} (publish a dataset first, or give --catalog "
                                           "or $HEADWATER_CATALOG)")
            os.makedirs(os.path.dirname(loc), exist_ok=True)
    try:
        cat = Catalog(loc)
    except HeadwaterError as err:
        raise click.ClickException(f"cannot open catalog {loc}: {err}") from None
    try:
        yield cat
    finally:
        cat.close()


# -- remote mode (a headwater server instead of a local catalog) ---------------------------------------
def _server_options(fn: Any) -> Any:
    """``--server URL`` / ``--api-key KEY`` (also ``$HEADWATER_SERVER`` / ``$HEADWATER_API_KEY``)."""
    fn = click.option("--api-key", envvar="HEADWATER_API_KEY", metavar="KEY",
                      help="API key for --server [default: $HEADWATER_API_KEY].")(fn)
    return click.option("--server", envvar="HEADWATER_SERVER", metavar="URL",
                        help="Work against this headwater server instead of a local catalog "
                             "[default: $HEADWATER_SERVER].")(fn)


def _remote_api(server: str, api_key: str | None, *, cache: Any = False) -> Any:
    from .client import Api

    try:
        return Api(url=server, api_key=api_key, cache=cache)
    except HeadwaterError as err:
        raise click.ClickException(str(err)) from None


def _parse_pool_urls(specs: tuple[str, ...]) -> dict[str, str]:
    """``("NAME=URL", …)`` → ``{NAME: URL}``."""
    pools: dict[str, str] = {}
    for spec in specs:
        pool, sep, url = spec.partition("=")
        if not sep or not pool or not url:
            raise click.BadParameter(f"{spec!r} is not NAME=URL", param_hint="--pool-url")
        pools[pool] = url
    return pools


def parse_repo(text: str, database: str | None = None) -> tuple[str, str, str, str | None]:
    """``"DB/NS/NAME[:TAG]"`` (or ``"NS/NAME[:TAG]"`` with ``database``) → ``(db, ns, name, tag or None)``.

    >>> parse_repo("main/acme/cats:stable")
    ('main', 'acme', 'cats', 'stable')
    >>> parse_repo("acme/cats", database="main")
    ('main', 'acme', 'cats', None)
    """
    body, sep, tag = text.partition(":")
    parts = body.split("/")
    if database is not None and len(parts) == 2:
        parts = [database, *parts]
    if len(parts) != 3 or not all(parts) or (sep and not tag):
        want = "NS/NAME[:TAG] (with --database)" if database is not None else "DB/NS/NAME[:TAG]"
        raise click.BadParameter(f"{text!r} is not {want}")
    return parts[0], parts[1], parts[2], (tag if sep else None)


def _when(dt: Any) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt is not None else "-"


def _splits_text(splits: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(splits.items())) or "(no splits)"


def _ls_databases(cat: Any) -> None:
    dbs = cat.databases()
    for db in dbs:
        repos = cat.repositories(db.name)
        click.echo(f"{db.name}\t{len(repos)} repositories\t{'public' if db.public else 'private'}\t{db.uid}")
    click.echo(f"{len(dbs)} database(s) in {cat.url.render_as_string(hide_password=True)}")


def _ls_repositories(cat: Any, db: str) -> None:
    repos = cat.repositories(db)
    for repo in repos:
        click.echo(f"{db}/{repo.namespace}/{repo.name}")
        for tag in cat.tags(db, repo.namespace, repo.name):
            click.echo(f"  {tag.tag}\t{tag.dataset}\t{_splits_text(tag.splits)}\t{_when(tag.updated_at)}")
    click.echo(f"{len(repos)} repositories in database {db!r}")


def _ls_repository(cat: Any, db: str, ns: str, name: str) -> None:
    tags = cat.tags(db, ns, name)
    click.echo("tags:")
    for tag in tags:
        click.echo(f"  {tag.tag}\t{tag.dataset}\t{_splits_text(tag.splits)}\t{_when(tag.updated_at)}")
    datasets = cat.datasets(db, ns, name)
    click.echo("datasets:")
    by_uid: dict[str, list[str]] = {}
    for tag in tags:
        by_uid.setdefault(tag.dataset, []).append(tag.tag)
    for ds in datasets:
        labels = ",".join(by_uid.get(ds.uid, [])) or "-"
        click.echo(f"  {ds.uid}\t{_when(ds.created_at)}\t{_splits_text(ds.splits)}\ttags: {labels}")
    click.echo(f"{len(datasets)} dataset(s), {len(tags)} tag(s)")


def _ls_dataset(ds: Any) -> None:
    click.echo(f"dataset {ds.uid}")
    click.echo(f"  repository: {ds.database_name or ds.database}/{ds.namespace}/{ds.name}")
    click.echo(f"  created:    {_when(ds.created_at)}")
    click.echo(f"  splits:     {_splits_text(ds.splits)}")
    for pool, url in sorted(ds.pools.items()):
        click.echo(f"  pool:       {pool} = {url}")
    classes = (ds.template or {}).get("classes") or {}
    click.echo(f"  classes ({len(classes)}): {', '.join(classes)}")


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


def _ls_pool(pool_url: str, files: bool) -> None:
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


@main.command(name="ls")
@click.argument("target", required=False)
@click.option("--files", is_flag=True, help="Pools: list every member, not just shards.")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
def ls_cmd(target: str | None, files: bool, catalog_loc: str | None) -> None:
    """List a pool's shards, or what a catalog holds.

    \b
    headwater ls POOL                  shards of a pool (a folder or a URL)
    headwater ls                       databases of the catalog
    headwater ls DB                    repositories of a database, with their tags
    headwater ls DB/NS/NAME            tags and every dataset of a repository
    headwater ls DB/NS/NAME:TAG        one dataset (TAG may be a dataset uid): splits, pools, classes

    TARGET is a pool when it is an existing path or a URL and --catalog is not given.
    """
    if catalog_loc is None and target is not None and (os.path.exists(target) or "://" in target):
        _ls_pool(target, files)
        return
    with _open_catalog(catalog_loc) as cat:
        try:
            if target is None:
                _ls_databases(cat)
            elif "/" not in target:
                _ls_repositories(cat, target)
            else:
                db, ns, name, tag = parse_repo(target)
                if tag is None:
                    _ls_repository(cat, db, ns, name)
                else:
                    _ls_dataset(cat.dataset(db, ns, name, tag))
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None


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


def _parse_split_specs(specs: tuple[str, ...]) -> tuple[Any, str]:
    """``--split`` values → (``splits`` argument of publish, default split name)."""
    fractions: dict[str, float] = {}
    bare: list[str] = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not name:
            raise click.BadParameter(f"{spec!r}: expected NAME=FRACTION or NAME", param_hint="--split")
        if not sep:
            bare.append(name)
            continue
        value = value.strip()
        try:
            frac = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise click.BadParameter(f"{spec!r}: {value!r} is not a fraction (0.05 or 5%)",
                                     param_hint="--split") from None
        if name in fractions:
            raise click.BadParameter(f"split {name!r} given twice", param_hint="--split")
        fractions[name] = frac
    if len(bare) > 1:
        raise click.BadParameter(f"only one split without a fraction (the rest) may be given, got {bare}",
                                 param_hint="--split")
    default = bare[0] if bare else "train"
    if default in fractions:
        raise click.BadParameter(f"split {default!r} is given both with and without a fraction",
                                 param_hint="--split")
    return (fractions or None), default


@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--repo", "repo", required=True, metavar="DB/NS/NAME",
              help="Where to publish: database/namespace/name (or NS/NAME with --database).")
@click.option("--database", help="The database, when --repo is NS/NAME.")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "coco", "yolo"]), default="auto",
              show_default=True, help="auto: a folder is YOLO, *.json COCO, *.jsonl/*.ndjson droplets.")
@click.option("--images", type=click.Path(exists=True, file_okay=False),
              help="Folder local image paths are relative to (JSONL: default its folder; COCO: default the "
                   "JSON's folder).")
@click.option("--pool", "pool_dir", type=click.Path(file_okay=False),
              help="New folder for the image pool [default: <catalog folder>/pools/DB/NS/NAME/<time>].")
@click.option("--pool-name", default="images", show_default=True, help="Name of the pool in pool:// refs.")
@click.option("--split", "split_specs", multiple=True, metavar="NAME[=FRACTION]",
              help="Repeatable. NAME=0.05 (or 5%) sends that fraction to NAME by a seeded hash; a bare NAME "
                   "takes the rest [train]. Explicit splits (YOLO folders, JSONL \"split\") win.")
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the split hash.")
@click.option("--template", "template_path", type=click.Path(exists=True, dir_okay=False),
              help="Template JSON every droplet must satisfy [default: inferred].")
@click.option("--tag", "tags", multiple=True, help="Repeatable: tags to point at the new dataset [latest].")
@click.option("--no-tag", is_flag=True, help="Point no tag at it (reach it by uid).")
@click.option("--create-database", is_flag=True, help="Create the database if it does not exist.")
@click.option("--max-shard-size", default="1GB", show_default=True, help="Cap per pool shard.")
@click.option("--max-problems", default=100, show_default=True, help="Problems listed when refusing.")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
@click.option("--pool-url", "pool_urls", multiple=True, metavar="NAME=URL",
              help="Repeatable: a pool the droplets' pool://NAME/… refs point at (required for refs with --server).")
@_server_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def publish(source: str, repo: str, database: str | None, fmt: str, images: str | None, pool_dir: str | None,
            pool_name: str, split_specs: tuple[str, ...], split_seed: int, template_path: str | None,
            tags: tuple[str, ...], no_tag: bool, create_database: bool, max_shard_size: str, max_problems: int,
            catalog_loc: str | None, pool_urls: tuple[str, ...], server: str | None, api_key: str | None,
            quiet: bool) -> None:
    """Publish SOURCE (JSONL droplets, a COCO instances JSON or a YOLO folder) as a new dataset.

    Every droplet is validated first; any problem is listed (with its line, image id or label file and
    line) and nothing is written. Local images are packed into a new pool and referenced as
    pool://NAME/KEY; the dataset, its splits and tags are committed in one transaction.
    """
    from .publish import PublishError, open_source
    from .publish import publish as run_publish

    db, ns, name, tag = parse_repo(repo, database)
    if tag is not None:
        raise click.BadParameter("give tags with --tag, not in --repo", param_hint="--repo")
    if no_tag and tags:
        raise click.UsageError("--no-tag and --tag exclude each other")
    splits, default_split = _parse_split_specs(split_specs)
    try:
        src = open_source(source, format=None if fmt == "auto" else fmt, images=images)
    except HeadwaterError as err:
        raise click.ClickException(str(err)) from None
    pools = _parse_pool_urls(pool_urls)
    if server:
        if create_database or pool_dir or catalog_loc:
            raise click.UsageError("--create-database, --pool and --catalog are for a local catalog, not --server")
        try:
            ds = _remote_api(server, api_key).get_database_by_name(db).publish(
                f"{ns}/{name}", src, pools=pools, splits=splits, split_seed=split_seed, default_split=default_split,
                template=template_path, tags=() if no_tag else (tags or ("latest",)), max_problems=max_problems,
                silent=quiet)
        except PublishError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None
        _echo_published(f"{ds.uid} to {db}/{ns}/{name} on {server}", {s: ds.split_count(s) for s in ds.splits},
                        () if no_tag else (tags or ("latest",)), ds.pools)
        return
    with _open_catalog(catalog_loc, create=True) as cat:
        try:
            if create_database:
                cat.create_database(db, exist_ok=True)
            else:
                cat.database(db)
        except HeadwaterError as err:
            hint = "" if create_database else " (add --create-database to create it)"
            raise click.ClickException(f"{err}{hint}") from None
        try:
            record = run_publish(
                cat, db, ns, name, src, pool_dir=pool_dir, pool_name=pool_name, pools=pools or None, splits=splits,
                split_seed=split_seed, default_split=default_split, template=template_path,
                tags=() if no_tag else (tags or ("latest",)), max_shard_size=parse_size(max_shard_size),
                max_problems=max_problems, silent=quiet,
            )
        except PublishError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None
    _echo_published(f"{record.uid} to {db}/{ns}/{name}", record.splits, () if no_tag else (tags or ("latest",)),
                    record.pools)
    for note, count in sorted(getattr(src, "notes", {}).items()):
        click.echo(f"note: {note}: {count}", err=True)


def _echo_published(what: str, splits: dict[str, int], tags: Any, pools: dict[str, str]) -> None:
    click.echo(f"published dataset {what}")
    click.echo(f"  splits: {_splits_text(splits)}")
    click.echo(f"  tags:   {', '.join(tags) or '(none)'}")
    for pool, url in sorted(pools.items()):
        click.echo(f"  pool:   {pool} = {url}")


@main.command(name="tag")
@click.argument("repo", metavar="DB/NS/NAME")
@click.argument("tag_name", metavar="[TAG]", required=False)
@click.argument("target", metavar="[UID_OR_TAG]", required=False)
@click.option("--history", is_flag=True, help="Show every move of the repository's tags (or of TAG).")
@click.option("--database", help="The database, when REPO is NS/NAME.")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
@_server_options
def tag_cmd(repo: str, tag_name: str | None, target: str | None, history: bool, database: str | None,
            catalog_loc: str | None, server: str | None, api_key: str | None) -> None:
    """Move a tag, list tags, or show their history.

    \b
    headwater tag DB/NS/NAME TAG UID_OR_TAG   point TAG at a dataset (uid, or where another tag points)
    headwater tag DB/NS/NAME                  list the tags
    headwater tag --history DB/NS/NAME [TAG]  every move, oldest first
    """
    db, ns, name, inline = parse_repo(repo, database)
    if inline is not None:
        raise click.BadParameter("give the tag as the second argument, not after ':'", param_hint="REPO")
    if server:
        _tag_remote(server, api_key, db, ns, name, tag_name, target, history)
        return
    with _open_catalog(catalog_loc) as cat:
        try:
            if history:
                if target is not None:
                    raise click.UsageError("--history takes REPO and at most one TAG")
                events = cat.tag_history(db, ns, name, tag_name)
                for ev in events:
                    click.echo(f"{_when(ev.moved_at)}\t{ev.tag}\t{ev.previous or '(new)'} -> {ev.dataset}")
                click.echo(f"{len(events)} move(s)")
                return
            if tag_name is None:
                for t in cat.tags(db, ns, name):
                    click.echo(f"{t.tag}\t{t.dataset}\t{_splits_text(t.splits)}\t{_when(t.updated_at)}")
                return
            if target is None:
                raise click.UsageError("give the dataset to point the tag at: headwater tag DB/NS/NAME TAG UID_OR_TAG")
            previous = next((t.dataset for t in cat.tags(db, ns, name) if t.tag == tag_name), None)
            new_uid = cat.dataset(db, ns, name, target).uid
            cat.move_tag(db, ns, name, tag_name, new_uid)
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None
    if previous == new_uid:
        click.echo(f"{tag_name}: already at {new_uid}")
    else:
        click.echo(f"{tag_name}: {previous or '(new tag)'} -> {new_uid}")


def _tag_remote(server: str, api_key: str | None, db: str, ns: str, name: str, tag_name: str | None,
                target: str | None, history: bool) -> None:
    """``headwater tag --server``: the same three jobs through the server's API."""
    from datetime import UTC, datetime

    try:
        repo = _remote_api(server, api_key).get_database_by_name(db).get_repository(ns, name)
        if history:
            if target is not None:
                raise click.UsageError("--history takes REPO and at most one TAG")
            events = repo.tag_history(tag_name)
            for ev in events:
                moved = datetime.fromtimestamp(ev["movedAt"] / 1000, tz=UTC)
                click.echo(f"{_when(moved)}\t{ev['tag']}\t{ev['previous'] or '(new)'} -> {ev['dataset']}")
            click.echo(f"{len(events)} move(s)")
            return
        if tag_name is None:
            for t in repo.tags:
                counts = {s.split: s.annotation_count for s in t.splits}
                click.echo(f"{t.tag}\t{t.dataset}\t{_splits_text(counts)}\t{_when(t.updated_at)}")
            return
        if target is None:
            raise click.UsageError("give the dataset to point the tag at: headwater tag DB/NS/NAME TAG UID_OR_TAG")
        previous = next((t.dataset for t in repo.tags if t.tag == tag_name), None)
        new_uid = repo.move_tag(tag_name, target).dataset
    except HeadwaterError as err:
        raise click.ClickException(str(err)) from None
    if previous == new_uid:
        click.echo(f"{tag_name}: already at {new_uid}")
    else:
        click.echo(f"{tag_name}: {previous or '(new tag)'} -> {new_uid}")


def _write_stdout(blocks: Iterator[bytes], limit: int | None) -> int:
    """Write NDJSON blocks to stdout, stopping after ``limit`` lines; returns lines written.

    A closed pipe (``headwater stream … | head``) ends the command quietly: the rest of the output
    is pointed at /dev/null so Python's exit-time flush does not raise again.
    """
    out = sys.stdout.buffer
    written = 0
    try:
        for block in blocks:
            if limit is not None:
                lines = block.count(b"\n")
                if written + lines >= limit:
                    cut = -1
                    for _ in range(limit - written):
                        cut = block.index(b"\n", cut + 1)
                    out.write(block[:cut + 1])
                    written = limit
                    break
                written += lines
            else:
                written += block.count(b"\n")
            out.write(block)
        out.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    return written


@main.command()
@click.argument("dataset", metavar="DB/NS/NAME[:TAG]")
@click.argument("split")
@click.option("--chunk", default=0, show_default=True, help="Which chunk (0-based) …")
@click.option("--nchunks", default=1, show_default=True, help="… of how many equal chunks.")
@click.option("--shuffle-seed", type=int,
              help="Chunk a seeded permutation of the split instead of its stored order.")
@click.option("--offset", default=0, show_default=True, help="Skip this many droplets of the chunk.")
@click.option("--limit", type=int, help="Stop after this many droplets.")
@click.option("--cache/--no-cache", default=False, show_default=True,
              help="Keep the chunk in the stream cache ($HEADWATER_CACHE) and replay it from there.")
@click.option("--database", help="The database, when DATASET is NS/NAME[:TAG].")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
@_server_options
def stream(dataset: str, split: str, chunk: int, nchunks: int, shuffle_seed: int | None, offset: int,
           limit: int | None, cache: bool, database: str | None, catalog_loc: str | None, server: str | None,
           api_key: str | None) -> None:
    """Write chunk CHUNK of NCHUNKS of SPLIT as NDJSON (one droplet a line) to stdout.

    TAG defaults to "latest"; a dataset uid works in its place. Chunk k of n is the same contiguous
    run (or, with --shuffle-seed, the same run of a seeded permutation) every time. Safe to pipe
    into head.
    """
    from contextlib import nullcontext

    from .client import Api, StreamCache

    db, ns, name, tag = parse_repo(dataset, database)
    if limit is not None and limit < 0:
        raise click.BadParameter("must be >= 0", param_hint="--limit")
    with nullcontext() if server else _open_catalog(catalog_loc) as cat:
        try:
            api = (_remote_api(server, api_key, cache=StreamCache() if cache else False) if server
                   else Api(catalog=cat, cache=StreamCache() if cache else False))
            ds = api.get_database_by_name(db).get_dataset(ns, name, tag or "latest")
            if split not in ds.splits:
                raise click.ClickException(f"dataset {ds.uid} has no split {split!r} "
                                           f"(its splits: {', '.join(sorted(ds.splits)) or 'none'})")
            try:
                blocks = ds.stream_blocks(split, chunk, nchunks, shuffle_seed=shuffle_seed, offset=offset,
                                          cache=cache)
            except ValueError as err:  # chunk/nchunks/offset out of range
                raise click.BadParameter(str(err), param_hint="--chunk/--nchunks/--offset") from None
            if limit != 0:
                _write_stdout(iter(blocks), limit)
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None


@main.command()
@click.option("--dir", "work_dir", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@click.option("--images", default=500, show_default=True)
def demo(work_dir: str, images: int) -> None:
    """Build a sample pool from generated images, then fetch resources from it and report."""
    from .demo import run_demo

    run_demo(work_dir, images)


# -- server, API keys, database access (issue 4) -----------------------------------------------------
def _parse_pools(specs: tuple[str, ...]) -> dict[str, str]:
    """``("owner/repo=URL", …)`` → ``{"owner/repo": URL}`` (local paths made absolute)."""
    pools: dict[str, str] = {}
    for spec in specs:
        repo, sep, url = spec.partition("=")
        if not sep or not url or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*", repo):
            raise click.BadParameter(f"{spec!r} is not OWNER/REPO=URL", param_hint="--pool")
        if repo in pools:
            raise click.BadParameter(f"pool {repo!r} given twice", param_hint="--pool")
        pools[repo] = url if "://" in url else os.path.abspath(os.path.expanduser(url))
    return pools


@main.command()
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
@click.option("--pool", "pool_specs", multiple=True, metavar="OWNER/REPO=URL",
              help="Serve a pool (local dir, s3://…, http(s)://…) as Hub dataset repo OWNER/REPO. Repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 512), help="Server processes.")
@click.option("--max-upload-size", default="2GB", show_default=True, help="Largest request body a write may send.")
@click.option("--no-anonymous", is_flag=True, help="Require an API key for every request (public databases too).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(catalog_loc: str | None, pool_specs: tuple[str, ...], host: str, port: int, workers: int,
          max_upload_size: str, no_anonymous: bool, log_level: str) -> None:
    """Serve the datatap API (/api/…), pools as Hub dataset repos (/datasets/…) and the OpenAPI docs (/docs).

    \b
    headwater serve --catalog catalog.sqlite --pool acme/images=pool/ --port 8000
    headwater serve --catalog postgresql://u@db/cat --pool acme/images=s3://bucket/pool --workers 8
    """
    from .server.app import ServerConfig
    from .server.runner import serve as run_server

    loc = catalog_loc or os.environ.get("HEADWATER_CATALOG")
    if not loc:
        from .catalog import default_catalog_location

        loc = default_catalog_location()
    if "://" not in loc:
        loc = os.path.abspath(os.path.expanduser(loc))
    config = ServerConfig(catalog=loc, pools=_parse_pools(pool_specs), max_upload_bytes=parse_size(max_upload_size),
                          anonymous_read=not no_anonymous)
    try:
        run_server(config, host=host, port=port, workers=workers, log_level=log_level)
    except HeadwaterError as err:
        raise click.ClickException(str(err)) from None


@main.command()
@click.argument("pool_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("repo", metavar="OWNER/NAME")
@click.option("--prefix", default="", help="Folder inside the served pool to upload into (e.g. batch2).")
@click.option("--replace", is_flag=True, help="Replace shards that exist there with other bytes (default: refuse).")
@_server_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def upload(pool_dir: str, repo: str, prefix: str, replace: bool, server: str | None, api_key: str | None,
           quiet: bool) -> None:
    """Upload the tar shards under POOL_DIR into pool OWNER/NAME of a headwater server (needs a write key).

    The server indexes each shard and rebuilds the pool manifest. Shards already there with the same
    sha256 are skipped, so running the command again finishes an interrupted upload; shards there with
    other bytes are refused unless --replace. Prints a JSON report.

    \b
    headwater upload pool/ acme/images --server http://127.0.0.1:8000 --api-key $KEY
    """
    from .client import HttpTransport, upload_pool

    if not server:
        raise click.UsageError("upload needs --server (or $HEADWATER_SERVER)")
    try:
        with HttpTransport(server, api_key) as transport:
            report = upload_pool(transport, repo, pool_dir, prefix=prefix, replace=replace, silent=quiet)
    except HeadwaterError as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps(report.to_dict()))


@main.group()
def keys() -> None:
    """API keys for the server: create (the secret is printed once), list, revoke."""


@keys.command(name="create")
@click.option("--user", "username", required=True, help="The key's user (created if missing).")
@click.option("--email", default="", help="The user's email (when the user is created).")
@click.option("--write", is_flag=True, help="A write key (publish, move tags, upload); default: read-only.")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
def keys_create(username: str, email: str, write: bool, catalog_loc: str | None) -> None:
    """Create an API key. The secret goes to stdout (alone, so it can be captured) and is never shown again."""
    with _open_catalog(catalog_loc, create=True) as cat:
        try:
            cat.create_user(username, email=email, exist_ok=True)
            key_id, secret = cat.create_api_key(username, "write" if write else "read")
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None
    click.echo(f"created {'write' if write else 'read'} key {key_id} for {username} "
               "(store the secret now: it is not shown again)", err=True)
    click.echo(secret)


@keys.command(name="list")
@click.option("--user", "username", help="Only this user's keys.")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
def keys_list(username: str | None, catalog_loc: str | None) -> None:
    """List keys: id, user, permission, created, revoked (never the secrets)."""
    with _open_catalog(catalog_loc) as cat:
        try:
            found = cat.api_keys(username)
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None
    for key in found:
        state = f"revoked {_when(key.revoked_at)}" if key.revoked else "active"
        click.echo(f"{key.key_id}\t{key.username}\t{key.permission}\t{_when(key.created_at)}\t{state}")
    click.echo(f"{len(found)} key(s)", err=True)


@keys.command(name="revoke")
@click.argument("key_id")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
def keys_revoke(key_id: str, catalog_loc: str | None) -> None:
    """Revoke key KEY_ID (it stops working at once, on every server process)."""
    with _open_catalog(catalog_loc) as cat:
        try:
            key = cat.revoke_api_key(key_id)
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None
    click.echo(f"revoked {key.key_id} ({key.username}, {key.permission}) at {_when(key.revoked_at)}")


@main.group()
def database() -> None:
    """Databases: create with an owner, make public or private, list with their access settings."""


def _describe_db(cat: Any, db: Any) -> str:
    owner = cat.user(db.owner).username if db.owner else "(no owner: every key holder)"
    return f"{db.name}\t{db.uid}\towner={owner}\t{'public' if db.public else 'private'}"


@database.command(name="create")
@click.argument("name")
@click.option("--owner", help="The owning user (only they see it while it is private; created if missing).")
@click.option("--public", is_flag=True, help="Readable by everyone (anonymously too unless --no-anonymous).")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
def database_create(name: str, owner: str | None, public: bool, catalog_loc: str | None) -> None:
    """Create database NAME (also the owner's default database if they have none)."""
    with _open_catalog(catalog_loc, create=True) as cat:
        try:
            if owner is not None:
                user = cat.create_user(owner, exist_ok=True)
            db = cat.create_database(name, public=public, owner=owner)
            if owner is not None and user.default_database is None:
                cat.choose_default_database(owner, db.uid)
            click.echo(_describe_db(cat, db))
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None


@database.command(name="set")
@click.argument("name")
@click.option("--owner", help="Give the database to this user (created if missing).")
@click.option("--no-owner", is_flag=True, help="Remove the owner (every key holder may then read it).")
@click.option("--public/--private", default=None, help="Readable by everyone, or only by who may see it.")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
def database_set(name: str, owner: str | None, no_owner: bool, public: bool | None, catalog_loc: str | None) -> None:
    """Change who owns database NAME and whether it is public."""
    if owner is not None and no_owner:
        raise click.UsageError("--owner and --no-owner exclude each other")
    if owner is None and not no_owner and public is None:
        raise click.UsageError("nothing to change: give --owner USER, --no-owner, --public or --private")
    with _open_catalog(catalog_loc) as cat:
        try:
            from .catalog.users import KEEP

            if owner is not None:
                cat.create_user(owner, exist_ok=True)
            db = cat.change_database_access(name, owner=None if no_owner else (owner or KEEP), public=public)
            click.echo(_describe_db(cat, db))
        except HeadwaterError as err:
            raise click.ClickException(str(err)) from None


@database.command(name="list")
@click.option("--catalog", "catalog_loc", metavar="PATH_OR_URL", help=_CATALOG_HELP)
def database_list(catalog_loc: str | None) -> None:
    """List databases with uid, owner and public flag."""
    with _open_catalog(catalog_loc) as cat:
        for db in cat.databases():
            click.echo(_describe_db(cat, db))


if __name__ == "__main__":  # pragma: no cover
    main()
