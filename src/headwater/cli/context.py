"""What commands open: the catalog, or the one :class:`~headwater.client.Api` that reads and writes a local
catalog or a server alike — so ``publish``, ``tag``, ``stream`` and ``ls`` have one code path, not a
local and a remote copy.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "catalog.sqlite")
    >>> with open_catalog(path, create=True) as cat:
    ...     cat.backend
    'sqlite'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from ..catalog import NotFoundError, default_catalog_location

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..client import Api

__all__ = ["catalog_location", "open_catalog", "open_api"]


def catalog_location(location: str | None) -> str:
    """The catalog a command uses: ``--catalog``/``$HEADWATER_CATALOG``, else the XDG default (paths absolute)."""
    loc = location or default_catalog_location()
    return loc if "://" in loc else os.path.abspath(os.path.expanduser(loc))


@contextmanager
def open_catalog(location: str | None, *, create: bool = False, missing_hint: str | None = None) -> Iterator[Catalog]:
    """Open the catalog. A SQLite file that does not exist is an error (``missing_hint`` says what to do)
    unless ``create``: then it is made, and removed again if the command fails, so a refused command
    leaves no empty catalog behind."""
    from ..catalog import Catalog

    loc = catalog_location(location)
    created = False
    if "://" not in loc and not os.path.exists(loc):
        if not create:
            hint = missing_hint or "publish a dataset first, or give --catalog or $HEADWATER_CATALOG"
            raise NotFoundError(f"no catalog at {loc} ({hint})")
        created = True
    cat = Catalog(loc)
    try:
        yield cat
    except BaseException:
        cat.close()
        if created:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(loc + suffix)
        raise
    else:
        if created:
            click.echo(f"note: created a new catalog at {loc}", err=True)
    finally:
        cat.close()


@contextmanager
def open_api(catalog: str | None, server: str | None, api_key: str | None, *, create: bool = False,
             missing_hint: str | None = None, cache: Any = False, retry_for: float | None = None) -> Iterator[Api]:
    """The :class:`~headwater.client.Api` of a server (``--server``, retried for ``retry_for`` seconds) or of
    the local catalog."""
    from ..client import Api

    if server:
        ctx = click.get_current_context(silent=True)
        if ctx is not None and ctx.get_parameter_source("catalog") == ParameterSource.COMMANDLINE:
            raise click.UsageError("give --catalog (a local catalog) or --server, not both")
        yield Api(url=server, api_key=api_key, cache=cache, retry_for=retry_for)
        return
    with open_catalog(catalog, create=create, missing_hint=missing_hint) as cat:
        yield Api(catalog=cat, cache=cache)
