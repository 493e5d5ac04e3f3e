"""Options and argument types declared once and meaning one thing in every command.

Why: the same flag spelled or typed differently across commands is a trap (``--pool`` was a folder in one
command and ``OWNER/REPO=URL`` in another; ``--workers`` threads in one and processes in another). Each
shared option is one decorator here; each value with a syntax is a :class:`click.ParamType`, so commands
receive checked values and never parse in their bodies. Old spellings stay as hidden, deprecated aliases
for one release (:func:`renamed`).

Example:
    >>> SIZE.convert("64MiB", None, None), RepoRef.parse("main/acme/cats:stable")
    (67108864, RepoRef(database='main', namespace='acme', name='cats', tag='stable'))
    >>> SECONDS.convert("90", None, None)
    90.0
    >>> GRID.convert("8x4", None, None)
    (8, 4)
    >>> list(parse_ids(["3-5", "9,abc"]))
    [3, 4, 5, 9, 'abc']
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from click.core import ParameterSource

__all__ = [
    "SIZE", "SizeType", "RepoRef", "RepoRefType", "REPO_REF", "NameUrl", "NAME_URL", "ServedPool", "SERVED_POOL",
    "SECONDS", "SecondsType", "GRID", "GridType",
    "parse_size", "parse_ids", "renamed", "catalog_option", "server_options", "retry_for_option", "progress_option",
    "layout_options", "database_option", "silent_of", "HeadwaterCommand",
]

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def parse_size(text: str) -> int:
    """``"1GB"`` → 1000000000, ``"64MiB"`` → 67108864, ``"4096"`` → 4096 (ValueError otherwise)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 512MB, 1GiB, 4096)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class SizeType(click.ParamType[int]):
    """A byte size: ``4096``, ``512MB``, ``1GiB``."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


SIZE = SizeType()


class SecondsType(click.ParamType[float]):
    """A duration in seconds: a finite number >= 0 (``90``, ``2.5``)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not 0 <= seconds < float("inf"):
            self.fail(f"{value!r}: give a number of seconds >= 0", param, ctx)
        return seconds


SECONDS = SecondsType()


class GridType(click.ParamType[tuple[int, int]]):
    """``COLSxROWS``: a grid of cells (``8x4``; each side 1–100)."""

    name = "COLSxROWS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(value))
        if not match:
            self.fail(f"{value!r} is not COLSxROWS (e.g. 8x4)", param, ctx)
        cols, rows = int(match.group(1)), int(match.group(2))
        if not (1 <= cols <= 100 and 1 <= rows <= 100):
            self.fail(f"{value!r}: columns and rows must be in [1, 100]", param, ctx)
        return cols, rows


GRID = GridType()


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


@dataclass(frozen=True)
class RepoRef:
    """``DB/NS/NAME[:TAG]``: a repository, and optionally a tag (or dataset uid) in it."""

    database: str
    namespace: str
    name: str
    tag: str | None = None

    @classmethod
    def parse(cls, text: str, database: str | None = None) -> RepoRef:
        """Parse ``DB/NS/NAME[:TAG]`` (or ``NS/NAME[:TAG]`` when ``database`` is given); ValueError otherwise."""
        body, sep, tag = text.partition(":")
        parts = body.split("/")
        if database is not None and len(parts) == 2:
            parts = [database, *parts]
        if len(parts) != 3 or not all(parts) or (sep and not tag):
            want = "NS/NAME[:TAG] (with --database)" if database is not None else "DB/NS/NAME[:TAG]"
            raise ValueError(f"{text!r} is not {want}")
        return cls(parts[0], parts[1], parts[2], tag if sep else None)

    @property
    def slug(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.database}/{self.slug}" + (f":{self.tag}" if self.tag else "")


class RepoRefType(click.ParamType[RepoRef]):
    """``DB/NS/NAME[:TAG]``; ``NS/NAME[:TAG]`` too when the command was given ``--database``."""

    name = "DB/NS/NAME[:TAG]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> RepoRef:
        if isinstance(value, RepoRef):
            return value
        database = ctx.params.get("database") if ctx is not None else None  # --database is eager: parsed first
        try:
            return RepoRef.parse(str(value), database if isinstance(database, str) else None)
        except ValueError as err:
            self.fail(str(err), param, ctx)


REPO_REF = RepoRefType()


class NameUrl(click.ParamType[tuple[str, str]]):
    """``NAME=URL``: a pool name in ``pool://NAME/…`` refs and where that pool is."""

    name = "NAME=URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        name, sep, url = str(value).partition("=")
        if not sep or not re.fullmatch(_NAME, name) or not url:
            self.fail(f"{value!r} is not NAME=URL", param, ctx)
        return name, url


NAME_URL = NameUrl()


class ServedPool(click.ParamType[tuple[str, str]]):
    """``OWNER/REPO=URL``: a pool served as the Hub dataset repo ``OWNER/REPO`` (local paths made absolute)."""

    name = "OWNER/REPO=URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        repo, sep, url = str(value).partition("=")
        if not sep or not url or not re.fullmatch(f"{_NAME}/{_NAME}", repo):
            self.fail(f"{value!r} is not OWNER/REPO=URL", param, ctx)
        return repo, url if "://" in url else os.path.abspath(os.path.expanduser(url))


SERVED_POOL = ServedPool()


# -- old spellings ------------------------------------------------------------------------------------------
class HeadwaterCommand(click.Command):
    """A command whose hidden, renamed options (:func:`renamed`) feed the options that replaced them."""

    def invoke(self, ctx: click.Context) -> Any:
        for name, value in ctx.meta.get("headwater.renamed", {}).items():
            if ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
                ctx.params[name] = value
        return super().invoke(ctx)


def renamed(old: str, new: str, param: str, **kwargs: Any) -> Callable[[F], F]:
    """A hidden option ``old`` kept for one release: its value goes to parameter ``param`` (the option now
    spelled ``new``), with a warning on stderr. Needs :class:`HeadwaterCommand` (every command has it)."""

    def keep(ctx: click.Context, option: click.Parameter, value: Any) -> Any:
        if option.name is not None and ctx.get_parameter_source(option.name) == ParameterSource.COMMANDLINE:
            click.echo(f"warning: {old} is deprecated and will be removed; use {new}", err=True)
            ctx.meta.setdefault("headwater.renamed", {})[param] = value
        return value

    return click.option(old, f"_renamed_{param}", hidden=True, expose_value=False, callback=keep, **kwargs)


# -- shared options ---------------------------------------------------------------------------------------
def catalog_option(fn: F) -> F:
    """``--catalog PATH_OR_URL`` (``$HEADWATER_CATALOG``; default: the XDG data dir's catalog.sqlite)."""
    return click.option(
        "--catalog", "catalog", metavar="PATH_OR_URL", envvar="HEADWATER_CATALOG", show_envvar=True,
        help="Catalog: a SQLite file path or a postgresql:// URL [default: $XDG_DATA_HOME/headwater/catalog.sqlite].",
    )(fn)


def retry_for_option(fn: F) -> F:
    """``--retry-for SECONDS`` (``$HEADWATER_RETRY_FOR``): how long to keep retrying a server that does not
    answer (refused connections, resets, 429/5xx) before giving up; None when not given (then the client's
    default, 60 s, or for a pool download the store's six attempts)."""
    return click.option("--retry-for", type=SECONDS, envvar="HEADWATER_RETRY_FOR", show_envvar=True,
                        metavar="SECONDS", help="Keep retrying a server that does not answer (refused, reset, "
                                                "429/5xx) this long before giving up [default: 60; download: "
                                                "six attempts].")(fn)


def server_options(fn: F) -> F:
    """``--server URL``, ``--api-key KEY`` and ``--retry-for SECONDS`` (``$HEADWATER_SERVER`` /
    ``$HEADWATER_API_KEY`` / ``$HEADWATER_RETRY_FOR``)."""
    fn = retry_for_option(fn)
    fn = click.option("--api-key", envvar="HEADWATER_API_KEY", show_envvar=True, metavar="KEY",
                      help="API key for --server (sent as a bearer token).")(fn)
    return click.option("--server", envvar="HEADWATER_SERVER", show_envvar=True, metavar="URL",
                        help="Work against this headwater server instead of a local catalog.")(fn)


def database_option(fn: F) -> F:
    """``--database NAME``: lets repository arguments be ``NS/NAME[:TAG]`` (is_eager: parsed before them)."""
    return click.option("--database", is_eager=True, help="The database, when a repository is given as NS/NAME.")(fn)


def progress_option(fn: F) -> F:
    """``--progress/--no-progress``: progress bars (default: only when stderr is a terminal); ``-q`` is
    ``--no-progress``."""
    fn = renamed("--quiet", "--no-progress", "progress", is_flag=True, flag_value=False, default=None)(fn)
    return click.option("--progress/--no-progress", " /-q", default=None,
                        help="Progress bars on stderr [default: only when stderr is a terminal].")(fn)


def silent_of(progress: bool | None) -> bool | None:
    """The library's ``silent=`` for a ``--progress/--no-progress`` value (None: when stderr is a terminal)."""
    return None if progress is None else not progress


def layout_options(*, reading: bool) -> Callable[[F], F]:
    """``--layout``, ``--base-level`` (repeatable) and ``--base-dir``, the same for ``pack`` and ``download``.

    ``sequential``: shards filled in file order, ids are file stems (read through the manifest);
    ``increment-id``: cheesechaser's rule, ``id % 10**base_level``. Reading also accepts ``scan`` (the old
    name of ``sequential`` there) and a ``--table``.
    """
    choices = ["sequential", "increment-id"] + (["scan"] if reading else [])

    def apply(fn: F) -> F:
        fn = click.option("--base-dir", default="images", show_default=True,
                          help="Folder of the shards (increment-id).")(fn)
        fn = click.option("--base-level", type=click.IntRange(1, 18), multiple=True, metavar="N",
                          help="Digits of id % 10**N (increment-id) [default: 3]"
                               + ("; repeat to look in several levels." if reading else "."))(fn)
        return click.option("--layout", type=click.Choice(choices), default="sequential", show_default=True,
                            help="How ids map to shards.")(fn)

    return apply
