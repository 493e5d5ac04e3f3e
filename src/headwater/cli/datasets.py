"""Dataset commands: ``publish``, ``tag``, ``stream`` — against a local catalog or a server alike.

Each opens one :class:`~headwater.client.Api` (:func:`~headwater.cli.context.open_api`): the local catalog
by default, a headwater server with ``--server`` — the same code path either way, so a command behaves
the same in both modes and only the options that make sense for one mode alone (where to write a new
image pool, creating the database) are refused for the other.

Example:
    >>> parse_split_specs(("validation=5%", "test=0.1", "train"))
    ({'validation': 0.05, 'test': 0.1}, 'train')
"""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from ..catalog import NotFoundError
from .context import open_api
from .options import (
    NAME_URL,
    REPO_REF,
    SIZE,
    HeadwaterCommand,
    RepoRef,
    catalog_option,
    database_option,
    progress_option,
    renamed,
    server_options,
    silent_of,
)
from .output import echo_published, splits_text, when, write_stdout

__all__ = ["COMMANDS", "publish", "tag", "stream", "parse_split_specs"]


def parse_split_specs(specs: tuple[str, ...]) -> tuple[dict[str, float] | None, str]:
    """``--split`` values → (the fractions, or None; the split that takes the rest)."""
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
        raise click.BadParameter(f"split {default!r} is given both with and without a fraction", param_hint="--split")
    return (fractions or None), default


def _given(ctx: click.Context, *names: str) -> list[str]:
    """The options among ``names`` that were given on the command line (as ``--flag`` spellings)."""
    return ["--" + n.replace("_", "-") for n in names if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]


@click.command(cls=HeadwaterCommand)
@click.argument("source", type=click.Path(exists=True))
@database_option
@click.option("--repo", "repo", type=REPO_REF, required=True, metavar="DB/NS/NAME",
              help="Where to publish: database/namespace/name (or NS/NAME with --database).")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "coco", "yolo"]), default="auto",
              show_default=True, help="auto: a folder is YOLO, *.json COCO, *.jsonl/*.ndjson droplets.")
@click.option("--images", type=click.Path(exists=True, file_okay=False),
              help="Folder local image paths are relative to (JSONL: default its folder; COCO: default the "
                   "JSON's folder).")
@click.option("--pool-dir", type=click.Path(file_okay=False),
              help="Local catalog: new folder for the image pool [default: <catalog folder>/pools/DB/NS/NAME/<time>].")
@renamed("--pool", "--pool-dir", "pool_dir", type=click.Path(file_okay=False))
@click.option("--pool-name", default="images", show_default=True, help="Name of the new pool in pool:// refs.")
@click.option("--pool-url", "pool_urls", type=NAME_URL, multiple=True,
              help="Repeatable: a pool the droplets' pool://NAME/… refs point at (required for refs with --server).")
@click.option("--split", "split_specs", multiple=True, metavar="NAME[=FRACTION]",
              help="Repeatable. NAME=0.05 (or 5%) sends that fraction to NAME by a seeded hash; a bare NAME "
                   "takes the rest [train]. Explicit splits (YOLO folders, JSONL \"split\") win.")
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the split hash.")
@click.option("--template", "template_path", type=click.Path(exists=True, dir_okay=False),
              help="Template JSON every droplet must satisfy [default: inferred].")
@click.option("--tag", "tags", multiple=True, help="Repeatable: tags to point at the new dataset [latest].")
@click.option("--no-tag", is_flag=True, help="Point no tag at it (reach it by uid).")
@click.option("--create-database", is_flag=True,
              help="Local catalog: create the database (and the catalog file) if missing, in the same transaction.")
@click.option("--max-shard-size", type=SIZE, default="1GB", show_default=True, help="Cap per image pool shard.")
@click.option("--max-problems", type=click.IntRange(1), default=100, show_default=True,
              help="Problems listed when refusing.")
@catalog_option
@server_options
@progress_option
@click.pass_context
def publish(ctx: click.Context, source: str, database: str | None, repo: RepoRef, fmt: str, images: str | None,
            pool_dir: str | None, pool_name: str, pool_urls: tuple[tuple[str, str], ...], split_specs: tuple[str, ...],
            split_seed: int, template_path: str | None, tags: tuple[str, ...], no_tag: bool, create_database: bool,
            max_shard_size: int, max_problems: int, catalog: str | None, server: str | None, api_key: str | None,
            retry_for: float | None, progress: bool | None) -> None:
    """Publish SOURCE (JSONL droplets, a COCO instances JSON or a YOLO folder) as a new dataset.

    Every droplet is validated first; any problem is listed (with its line, image id or label file and
    line) and nothing is written. Locally, images are packed into a new pool and referenced as
    pool://NAME/KEY; the dataset, its splits and tags are committed in one transaction. With --server the
    droplets are validated here, then sent; their images must already be URLs or pool:// refs.

    \b
    headwater publish cats.jsonl --repo main/acme/cats --split validation=10% --create-database
    headwater publish instances_val2017.json --images val2017/ --repo main/coco/val
    """
    from ..publish import open_source

    if repo.tag is not None:
        raise click.BadParameter("give tags with --tag, not in --repo", param_hint="--repo")
    if no_tag and tags:
        raise click.UsageError("--no-tag and --tag exclude each other")
    local_only = _given(ctx, "pool_dir", "pool_name", "create_database", "max_shard_size")
    if server and local_only:
        raise click.UsageError(f"{', '.join(local_only)}: only for a local catalog, not with --server")
    splits, default_split = parse_split_specs(split_specs)
    src = open_source(source, format=None if fmt == "auto" else fmt, images=images)
    chosen_tags = () if no_tag else (tags or ("latest",))
    options: dict[str, Any] = {"pools": dict(pool_urls) or None, "splits": splits, "split_seed": split_seed,
                               "default_split": default_split, "template": template_path, "tags": chosen_tags,
                               "max_problems": max_problems, "silent": silent_of(progress)}
    if not server:
        options |= {"pool_dir": pool_dir, "pool_name": pool_name, "max_shard_size": max_shard_size,
                    "create_database": create_database}
    with open_api(catalog, server, api_key, create=create_database,
                  missing_hint="add --create-database to create it", retry_for=retry_for) as api:
        if not server and not create_database:
            try:
                api.get_database_by_name(repo.database)
            except NotFoundError as err:
                raise NotFoundError(f"{err} (add --create-database to create it)") from None
        ds = api.publish(repo.database, repo.slug, src, **options)
        counts = {s: ds.split_count(s) for s in ds.splits}
    where = f"{ds.uid} to {repo}" + (f" on {server}" if server else "")
    echo_published(where, counts, chosen_tags, ds.pools)
    for note, count in sorted(getattr(src, "notes", {}).items()):
        click.echo(f"note: {note}: {count}", err=True)


@click.command(cls=HeadwaterCommand)
@database_option
@click.argument("repo", type=REPO_REF)
@click.argument("tag_name", metavar="[TAG]", required=False)
@click.argument("target", metavar="[UID_OR_TAG]", required=False)
@click.option("--history", is_flag=True, help="Show every move of the repository's tags (or of TAG).")
@catalog_option
@server_options
def tag(repo: RepoRef, tag_name: str | None, target: str | None, history: bool, database: str | None,
        catalog: str | None, server: str | None, api_key: str | None, retry_for: float | None) -> None:
    """Move a tag, list tags, or show their history (a local catalog or --server).

    \b
    headwater tag DB/NS/NAME TAG UID_OR_TAG   point TAG at a dataset (uid, or where another tag points)
    headwater tag DB/NS/NAME                  list the tags
    headwater tag --history DB/NS/NAME [TAG]  every move, oldest first
    """
    from datetime import UTC, datetime

    if repo.tag is not None:
        raise click.BadParameter("give the tag as the second argument, not after ':'", param_hint="REPO")
    if history and target is not None:
        raise click.UsageError("--history takes REPO and at most one TAG")
    if not history and tag_name is not None and target is None:
        raise click.UsageError("give the dataset to point the tag at: headwater tag DB/NS/NAME TAG UID_OR_TAG")
    with open_api(catalog, server, api_key, retry_for=retry_for) as api:
        repository = api.get_database_by_name(repo.database).get_repository(repo.namespace, repo.name)
        if history:
            events = repository.tag_history(tag_name)
            for ev in events:
                moved = datetime.fromtimestamp(ev["movedAt"] / 1000, tz=UTC)
                click.echo(f"{when(moved)}\t{ev['tag']}\t{ev['previous'] or '(new)'} -> {ev['dataset']}")
            click.echo(f"{len(events)} move(s)")
            return
        if tag_name is None:
            for t in repository.tags:
                counts = {s.split: s.annotation_count for s in t.splits}
                click.echo(f"{t.tag}\t{t.dataset}\t{splits_text(counts)}\t{when(t.updated_at)}")
            return
        assert target is not None
        moved_tag = repository.move_tag(tag_name, target)
    if moved_tag.previous == moved_tag.dataset:
        click.echo(f"{tag_name}: already at {moved_tag.dataset}")
    else:
        click.echo(f"{tag_name}: {moved_tag.previous or '(new tag)'} -> {moved_tag.dataset}")


@click.command(cls=HeadwaterCommand)
@database_option
@click.argument("dataset", type=REPO_REF)
@click.argument("split")
@click.option("--chunk", type=click.IntRange(0), default=0, show_default=True, help="Which chunk (0-based) …")
@click.option("--nchunks", type=click.IntRange(1), default=1, show_default=True, help="… of how many equal chunks.")
@click.option("--shuffle-seed", type=int, help="Chunk a seeded permutation of the split instead of its stored order.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True,
              help="Skip this many droplets of the chunk.")
@click.option("--limit", type=click.IntRange(0), help="Stop after this many droplets.")
@click.option("--cache/--no-cache", default=False, show_default=True,
              help="Keep the chunk in the stream cache ($HEADWATER_CACHE) and replay it from there.")
@catalog_option
@server_options
def stream(dataset: RepoRef, split: str, chunk: int, nchunks: int, shuffle_seed: int | None, offset: int,
           limit: int | None, cache: bool, database: str | None, catalog: str | None, server: str | None,
           api_key: str | None, retry_for: float | None) -> None:
    """Write chunk CHUNK of NCHUNKS of SPLIT as NDJSON (one droplet a line) to stdout.

    TAG defaults to "latest"; a dataset uid works in its place. Chunk k of n is the same contiguous
    run (or, with --shuffle-seed, the same run of a seeded permutation) every time. Safe to pipe
    into head.
    """
    from ..client import StreamCache

    with open_api(catalog, server, api_key, cache=StreamCache() if cache else False, retry_for=retry_for) as api:
        ds = api.get_database_by_name(dataset.database).get_dataset(dataset.namespace, dataset.name,
                                                                    dataset.tag or "latest")
        if split not in ds.splits:
            raise NotFoundError(f"split {split!r} not found in dataset {ds.uid} (splits: "
                                f"{', '.join(sorted(ds.splits)) or 'none'})")
        blocks = ds.stream_blocks(split, chunk, nchunks, shuffle_seed=shuffle_seed, offset=offset, cache=cache)
        if limit != 0:
            write_stdout(iter(blocks), limit)


COMMANDS = [publish, tag, stream]
