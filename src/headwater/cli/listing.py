"""``ls``: the shards of a pool, or what a catalog holds (databases, repositories, tags, datasets).

Example:
    >>> from click.testing import CliRunner
    >>> "TARGET is a pool" in CliRunner().invoke(ls, ["--help"]).output
    True
"""

from __future__ import annotations

import os
from typing import Any

import click

from .context import open_catalog
from .options import HeadwaterCommand, RepoRef, catalog_option, retry_for_option
from .output import splits_text, when

__all__ = ["COMMANDS", "ls"]


def _ls_pool(pool_url: str, files: bool, retry_for: float | None) -> None:
    from ..archive import MANIFEST_NAME, find_shards, load_index
    from ..pool import PoolNotFoundError
    from .pools import open_pool

    pool = open_pool(pool_url, retry_for=retry_for)
    manifest = pool.manifest()
    if manifest is None and pool.index_store.root_exists() is None:  # plain HTTP: nothing to list without it
        raise PoolNotFoundError(f"no {MANIFEST_NAME} at {pool.index_store.url}, and an HTTP pool cannot be "
                                "listed without it: check the URL, or run `headwater index` where the pool "
                                "is stored")
    rows: list[tuple[str, int, int]] = []
    if manifest is not None and not files:
        rows = [(s.path, s.files, s.filesize) for s in manifest.shards()]
    else:
        for shard in find_shards(pool.index_store):
            idx = load_index(pool.index_store, shard)
            rows.append((shard, len(idx.files), idx.filesize))
            if files:
                for name, entry in idx.files.items():
                    click.echo(f"{shard}\t{name}\t{entry.offset}\t{entry.size}")
    for shard, count, size in rows:
        click.echo(f"{shard}\t{count} files\t{size} bytes")
    click.echo(f"{len(rows)} shard(s), {sum(r[1] for r in rows)} files, {sum(r[2] for r in rows)} bytes")


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
        for t in cat.tags(db, repo.namespace, repo.name):
            click.echo(f"  {t.tag}\t{t.dataset}\t{splits_text(t.splits)}\t{when(t.updated_at)}")
    click.echo(f"{len(repos)} repositories in database {db!r}")


def _ls_repository(cat: Any, ref: RepoRef) -> None:
    tags = cat.tags(ref.database, ref.namespace, ref.name)
    click.echo("tags:")
    for t in tags:
        click.echo(f"  {t.tag}\t{t.dataset}\t{splits_text(t.splits)}\t{when(t.updated_at)}")
    datasets = cat.datasets(ref.database, ref.namespace, ref.name)
    click.echo("datasets:")
    by_uid: dict[str, list[str]] = {}
    for t in tags:
        by_uid.setdefault(t.dataset, []).append(t.tag)
    for ds in datasets:
        labels = ",".join(by_uid.get(ds.uid, [])) or "-"
        click.echo(f"  {ds.uid}\t{when(ds.created_at)}\t{splits_text(ds.splits)}\ttags: {labels}")
    click.echo(f"{len(datasets)} dataset(s), {len(tags)} tag(s)")


def _ls_dataset(ds: Any) -> None:
    click.echo(f"dataset {ds.uid}")
    click.echo(f"  repository: {ds.database_name or ds.database}/{ds.namespace}/{ds.name}")
    click.echo(f"  created:    {when(ds.created_at)}")
    click.echo(f"  splits:     {splits_text(ds.splits)}")
    for pool, url in sorted(ds.pools.items()):
        click.echo(f"  pool:       {pool} = {url}")
    classes = (ds.template or {}).get("classes") or {}
    click.echo(f"  classes ({len(classes)}): {', '.join(classes)}")


@click.command(cls=HeadwaterCommand)
@click.argument("target", required=False)
@click.option("--files", is_flag=True, help="Pools: list every member, not just shards.")
@catalog_option
@retry_for_option
@click.pass_context
def ls(ctx: click.Context, target: str | None, files: bool, catalog: str | None, retry_for: float | None) -> None:
    """List a pool's shards, or what a catalog holds.

    \b
    headwater ls POOL                  shards of a pool (a folder or a URL)
    headwater ls                       databases of the catalog
    headwater ls DB                    repositories of a database, with their tags
    headwater ls DB/NS/NAME            tags and every dataset of a repository
    headwater ls DB/NS/NAME:TAG        one dataset (TAG may be a dataset uid): splits, pools, classes

    TARGET is a pool when it is an existing path or a URL and --catalog is not given.
    """
    from click.core import ParameterSource

    explicit_catalog = ctx.get_parameter_source("catalog") == ParameterSource.COMMANDLINE
    if not explicit_catalog and target is not None and (os.path.exists(target) or "://" in target):
        _ls_pool(target, files, retry_for)
        return
    with open_catalog(catalog) as cat:
        if target is None:
            _ls_databases(cat)
        elif "/" not in target:
            _ls_repositories(cat, cat.database(target).name)
        else:
            try:
                ref = RepoRef.parse(target)
            except ValueError as err:
                raise click.BadParameter(str(err), param_hint="TARGET") from None
            if ref.tag is None:
                _ls_repository(cat, ref)
            else:
                _ls_dataset(cat.dataset(ref.database, ref.namespace, ref.name, ref.tag))


COMMANDS = [ls]
