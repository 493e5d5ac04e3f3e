"""Running a server and administering its catalog: ``serve``, ``keys``, ``database``, ``pool``.

Example:
    >>> from click.testing import CliRunner
    >>> sorted(keys.commands), sorted(database.commands), sorted(pool.commands)
    (['create', 'list', 'revoke'], ['create', 'list', 'set'], ['grant', 'list', 'revoke', 'set'])
"""

from __future__ import annotations

import os
from typing import Any

import click

from ..catalog import NotFoundError
from ..errors import require_extra
from .context import catalog_location, open_catalog
from .options import SERVED_POOL, SIZE, HeadwaterCommand, catalog_option
from .output import when

__all__ = ["COMMANDS", "serve", "keys", "database", "pool"]

_SECONDS = click.FloatRange(min=0, min_open=True)
# the defaults of the limit options are those of headwater.server.limits.Limits (a test keeps them equal);
# they are repeated here because this module must import without the server extra


@click.command(cls=HeadwaterCommand)
@catalog_option
@click.option("--pool", "pools", type=SERVED_POOL, multiple=True,
              help="Serve a pool (local dir, s3://…, http(s)://…) as Hub dataset repo OWNER/REPO. Repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 512), help="Server processes.")
@click.option("--max-upload-size", type=SIZE, default="2GB", show_default=True,
              help="Largest request body a write may send.")
@click.option("--no-anonymous", is_flag=True, help="Require an API key for every request (public databases too).")
@click.option("--public-url", help="The URL clients reach this server at (written into pool URLs); default: "
                                   "http://HOST:PORT. Needed with --host 0.0.0.0 or behind a proxy.")
@click.option("--docs/--no-docs", default=None,
              help="Serve /docs and /openapi.json. Default: only when anonymous reads are on.")
@click.option("--allow-pool-scheme", "pool_schemes", multiple=True, metavar="SCHEME",
              help="Let publishers name pools and images with SCHEME:// URLs besides this server's own pools "
                   "(default: https and s3; readers' clients open them). Repeatable; replaces the default.")
@click.option("--max-droplet-size", type=SIZE, default="4MB", show_default=True,
              help="Largest droplet (one line of a published body).")
@click.option("--max-shard-members", type=click.IntRange(1), default=200_000, show_default=True,
              help="Most members an uploaded shard may hold.")
@click.option("--spool-dir", type=click.Path(file_okay=False),
              help="Where publish bodies wait while validated (emptied of dead servers' files at start); "
                   "default: .headwater-spool beside a SQLite catalog, else in the temp dir.")
@click.option("--spool-budget", type=SIZE, default="8GB", show_default=True,
              help="Disk the spooled bodies may take together (more is refused with 507).")
@click.option("--timeout-header", type=_SECONDS, default=10.0, show_default=True,
              help="Seconds to send a complete request head, from connecting or from the previous response "
                   "(then 408 and close).")
@click.option("--timeout-keep-alive", type=_SECONDS, default=5.0, show_default=True,
              help="Seconds an idle connection is kept open for its next request.")
@click.option("--timeout-body", type=_SECONDS, default=60.0, show_default=True,
              help="Seconds a request body may pause between two pieces (then 408 and close).")
@click.option("--timeout-send", type=_SECONDS, default=60.0, show_default=True,
              help="Seconds a client may leave a response unread before its connection is cut (any progress "
                   "resets it).")
@click.option("--limit-concurrency", type=click.IntRange(min=1), default=1024,
              show_default=True, help="Open connections (idle ones too) or running requests per process at which "
                                      "further requests get 503.")
@click.option("--max-header-size", type=SIZE, default="16KiB", show_default=True,
              help="Largest request head (request line + headers; then 431).")
@click.option("--rate-limit", metavar="RATE/UNIT[,burst=N]|off",
              help="Requests per API key, and per client address for anonymous requests (token bucket: RATE/s "
                   "on average, N at once); over it: 429 with Retry-After. Default: off when listening on "
                   "loopback (127.0.0.1, ::1, localhost), else 100/s,burst=200. Per process: with --workers N a "
                   "client may get up to N times the rate. E.g. 50/s,burst=100, 3000/min, off.")
@click.option("--catalog-busy-timeout", type=_SECONDS, default=60.0, show_default=True,
              help="Seconds a write waits for a SQLite catalog's write lock (another process publishing) before "
                   "it is answered 503 with Retry-After.")
@click.option("--thumbnail-cache", type=SIZE, default="256MiB", show_default=True,
              help="Memory each server process keeps rendered viewer thumbnails in (LRU; 0: none).")
@click.option("--thumbnail-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Viewer thumbnails rendered at once per process (0: one per CPU).")
@click.option("--session-secret-file", type=click.Path(dir_okay=False),
              help="File holding the key that signs viewer sign-in cookies (created once if missing). Default: "
                   "CATALOG.session-secret beside a SQLite catalog, else ~/.config/headwater/session-secret; "
                   "servers of one catalog on several machines must share it.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(catalog: str | None, pools: tuple[tuple[str, str], ...], host: str, port: int, workers: int,
          max_upload_size: int, no_anonymous: bool, public_url: str | None, docs: bool | None,
          pool_schemes: tuple[str, ...], max_droplet_size: int, max_shard_members: int, spool_dir: str | None,
          spool_budget: int, timeout_header: float, timeout_keep_alive: float, timeout_body: float,
          timeout_send: float, limit_concurrency: int, max_header_size: int, rate_limit: str | None,
          catalog_busy_timeout: float, thumbnail_cache: int, thumbnail_workers: int, session_secret_file: str | None,
          log_level: str) -> None:
    """Serve the datatap API (/api/…), pools as Hub dataset repos (/datasets/…), the web viewer (/view/) and
    the OpenAPI docs (/docs).

    Needs the server extra: pip install 'headwater[server]'.

    \b
    headwater serve --catalog catalog.sqlite --pool acme/images=pool/ --port 8000
    headwater serve --catalog postgresql://u@db/cat --pool acme/images=s3://bucket/pool --workers 8

    The --timeout-*, --limit-concurrency and --max-header-size options bound what one client can cost a
    server process (each applies per process): slow or stalled clients are cut, not waited for. A client
    that stops reading holds at most ~4 MiB of a response in memory until --timeout-send cuts it.
    """
    for module in ("fastapi", "uvicorn", "jinja2"):
        require_extra("server", module, "headwater serve")
    from ..server.app import ServerConfig
    from ..server.rate_limits import RateLimit, default_rate_limit
    from ..server.runner import check_port, listen_url
    from ..server.runner import serve as run_server
    from ..server.viewer.sessions import default_session_secret_file, load_session_secret

    served: dict[str, str] = {}
    for repo, url in pools:
        if repo in served:
            raise click.BadParameter(f"pool {repo!r} given twice", param_hint="--pool")
        served[repo] = url
    loc = catalog_location(catalog)
    rate_limit = rate_limit if rate_limit is not None else default_rate_limit(host)
    RateLimit.parse(rate_limit)  # a bad value is named before anything starts
    if public_url is None:
        listen_url(host, port)  # a wildcard address needs --public-url: say so before anything starts
    check_port(host, port)
    if "://" not in loc and not os.path.exists(loc):
        click.echo(f"warning: no catalog at {loc}: serving a new, empty one (give --catalog or $HEADWATER_CATALOG "
                   "to serve an existing catalog)", err=True)
    click.echo(f"serving catalog {loc}" + "".join(f"\n  pool {r} = {u}" for r, u in served.items()), err=True)
    config = ServerConfig(catalog=loc, pools=served, max_upload_bytes=max_upload_size, anonymous_read=not no_anonymous,
                          public_url=public_url or listen_url(host, port), docs=docs,
                          pool_url_schemes=pool_schemes or ServerConfig.pool_url_schemes,
                          max_droplet_bytes=max_droplet_size, max_shard_members=max_shard_members,
                          spool_dir=spool_dir, spool_budget_bytes=spool_budget,
                          timeout_header=timeout_header, timeout_keep_alive=timeout_keep_alive,
                          timeout_body=timeout_body, timeout_send=timeout_send, limit_concurrency=limit_concurrency,
                          max_header_size=max_header_size,
                          rate_limit=rate_limit, catalog_busy_timeout=catalog_busy_timeout,
                          thumbnail_cache_bytes=thumbnail_cache, thumbnail_workers=thumbnail_workers,
                          session_secret_file=session_secret_file and os.path.abspath(session_secret_file))
    # made (or read) once here: a bad file is named before anything starts, and the workers all read one file
    load_session_secret(config.session_secret_file or default_session_secret_file(loc))
    click.echo(f"viewer: {config.public_url}/view/", err=True)
    run_server(config, host=host, port=port, workers=workers, log_level=log_level)


@click.group()
def keys() -> None:
    """API keys for the server: create (the secret is printed once), list, revoke."""


@keys.command(name="create", cls=HeadwaterCommand)
@click.option("--user", "username", required=True, help="The key's user (created if missing).")
@click.option("--email", default="", help="The user's email (when the user is created).")
@click.option("--write", is_flag=True, help="A write key (publish, move tags, upload); default: read-only.")
@catalog_option
def keys_create(username: str, email: str, write: bool, catalog: str | None) -> None:
    """Create an API key. The secret goes to stdout (alone, so it can be captured) and is never shown again."""
    with open_catalog(catalog, create=True) as cat:
        cat.create_user(username, email=email, exist_ok=True)
        key_id, secret = cat.create_api_key(username, "write" if write else "read")
    click.echo(f"created {'write' if write else 'read'} key {key_id} for {username} "
               "(store the secret now: it is not shown again)", err=True)
    click.echo(secret)


@keys.command(name="list", cls=HeadwaterCommand)
@click.option("--user", "username", help="Only this user's keys.")
@catalog_option
def keys_list(username: str | None, catalog: str | None) -> None:
    """List keys: id, user, permission, created, revoked (never the secrets)."""
    with open_catalog(catalog) as cat:
        found = cat.api_keys(username)
    for key in found:
        state = f"revoked {when(key.revoked_at)}" if key.revoked else "active"
        click.echo(f"{key.key_id}\t{key.username}\t{key.permission}\t{when(key.created_at)}\t{state}")
    click.echo(f"{len(found)} key(s)", err=True)


@keys.command(name="revoke", cls=HeadwaterCommand)
@click.argument("key_id")
@catalog_option
def keys_revoke(key_id: str, catalog: str | None) -> None:
    """Revoke key KEY_ID (it stops working at once, on every server process)."""
    with open_catalog(catalog) as cat:
        key = cat.revoke_api_key(key_id)
    click.echo(f"revoked {key.key_id} ({key.username}, {key.permission}) at {when(key.revoked_at)}")


@click.group()
def database() -> None:
    """Databases: create with an owner, make public or private, list with their access settings."""


def _describe_db(cat: Any, db: Any) -> str:
    owner = cat.user(db.owner).username if db.owner else "(no owner: every key holder)"
    return f"{db.name}\t{db.uid}\towner={owner}\t{'public' if db.public else 'private'}"


def _owner_change(owner: str | None, no_owner: bool, public: bool | None) -> Any:
    """What ``--owner``/``--no-owner`` ask for (a username, None, or KEEP); a usage error if nothing changes."""
    from ..catalog.users import KEEP

    if owner is not None and no_owner:
        raise click.UsageError("--owner and --no-owner exclude each other")
    if owner is None and not no_owner and public is None:
        raise click.UsageError("nothing to change: give --owner USER, --no-owner, --public or --private")
    return None if no_owner else (owner or KEEP)


def _existing_user(cat: Any, username: str) -> Any:
    try:
        return cat.user(username)
    except NotFoundError:
        raise NotFoundError(f"user {username!r} not found (create it with: headwater keys create --user "
                            f"{username})") from None


@database.command(name="create", cls=HeadwaterCommand)
@click.argument("name")
@click.option("--owner", help="The owning user (only they see it while it is private); must exist.")
@click.option("--public", is_flag=True, help="Readable by everyone (anonymously too unless --no-anonymous).")
@catalog_option
def database_create(name: str, owner: str | None, public: bool, catalog: str | None) -> None:
    """Create database NAME (also the owner's default database if they have none)."""
    with open_catalog(catalog, create=True) as cat:
        user = _existing_user(cat, owner) if owner is not None else None
        db = cat.create_database(name, public=public, owner=owner)
        if user is not None and user.default_database is None:
            cat.choose_default_database(user.username, db.uid)
        click.echo(_describe_db(cat, db))


@database.command(name="set", cls=HeadwaterCommand)
@click.argument("name")
@click.option("--owner", help="Give the database to this user (must exist).")
@click.option("--no-owner", is_flag=True, help="Remove the owner (every key holder may then read it).")
@click.option("--public/--private", default=None, help="Readable by everyone, or only by who may see it.")
@catalog_option
def database_set(name: str, owner: str | None, no_owner: bool, public: bool | None, catalog: str | None) -> None:
    """Change who owns database NAME and whether it is public."""
    new_owner = _owner_change(owner, no_owner, public)
    with open_catalog(catalog) as cat:
        if owner is not None:
            _existing_user(cat, owner)
        db = cat.change_database_access(name, owner=new_owner, public=public)
        click.echo(_describe_db(cat, db))


@database.command(name="list", cls=HeadwaterCommand)
@catalog_option
def database_list(catalog: str | None) -> None:
    """List databases with uid, owner and public flag."""
    with open_catalog(catalog) as cat:
        for db in cat.databases():
            click.echo(_describe_db(cat, db))


@click.group()
def pool() -> None:
    """Who may read and write the pools a server serves: owner, public flag, grants.

    \b
    A pool the catalog has no record of has no owner and is private: nobody may upload to it, and only
    those who may read a database whose datasets use it may read it.
    headwater pool set acme/images --owner alice --public
    headwater pool grant acme/images bob --write
    """


def _describe_pool(cat: Any, access: Any) -> str:
    owner = cat.user(access.owner).username if access.owner else "(no owner: takes no uploads)"
    grants = ",".join(f"{cat.user(uid).username}:{perm}" for uid, perm in sorted(access.grants.items()))
    return (f"{access.repo_id}\towner={owner}\t{'public' if access.public else 'private'}"
            f"\tgrants={grants or '-'}")


@pool.command(name="set", cls=HeadwaterCommand)
@click.argument("repo", metavar="OWNER/NAME")
@click.option("--owner", help="Give the pool to this user (must exist): their write keys may upload to it.")
@click.option("--no-owner", is_flag=True, help="Remove the owner (the pool then takes no uploads).")
@click.option("--public/--private", default=None,
              help="Readable by everyone, or only by its owner, grantees and readers of databases that use it.")
@catalog_option
def pool_set(repo: str, owner: str | None, no_owner: bool, public: bool | None, catalog: str | None) -> None:
    """Change who owns pool REPO (as served: serve --pool REPO=URL) and whether it is public."""
    new_owner = _owner_change(owner, no_owner, public)
    with open_catalog(catalog, create=True) as cat:
        if owner is not None:
            _existing_user(cat, owner)
        access = cat.change_pool_access(repo, owner=new_owner, public=public)
        click.echo(_describe_pool(cat, access))


@pool.command(name="grant", cls=HeadwaterCommand)
@click.argument("repo", metavar="OWNER/NAME")
@click.argument("username", metavar="USER")
@click.option("--write", is_flag=True, help="Also let them upload and delete shards (default: read only).")
@catalog_option
def pool_grant(repo: str, username: str, write: bool, catalog: str | None) -> None:
    """Let USER read (or, with --write, also change) pool REPO."""
    with open_catalog(catalog, create=True) as cat:
        _existing_user(cat, username)
        click.echo(_describe_pool(cat, cat.grant_pool_access(repo, username, "write" if write else "read")))


@pool.command(name="revoke", cls=HeadwaterCommand)
@click.argument("repo", metavar="OWNER/NAME")
@click.argument("username", metavar="USER")
@catalog_option
def pool_revoke(repo: str, username: str, catalog: str | None) -> None:
    """Take back what `pool grant` gave USER on pool REPO."""
    with open_catalog(catalog) as cat:
        _existing_user(cat, username)
        click.echo(_describe_pool(cat, cat.revoke_pool_access(repo, username)))


@pool.command(name="list", cls=HeadwaterCommand)
@catalog_option
def pool_list(catalog: str | None) -> None:
    """List the pools the catalog records access settings for."""
    with open_catalog(catalog) as cat:
        found = cat.pool_accesses()
        for access in found:
            click.echo(_describe_pool(cat, access))
    click.echo(f"{len(found)} pool(s) recorded (a pool not listed has no owner and is private)", err=True)


COMMANDS = [serve, keys, database, pool]
