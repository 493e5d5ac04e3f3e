"""Layer 10: the ``headwater`` command — one group, a module per command group, one error handler.

* :mod:`.pools` — ``pack``, ``index``, ``verify``, ``download``, ``extract``, ``upload``;
* :mod:`.datasets` — ``publish``, ``tag``, ``stream`` (a local catalog or a server, through one ``Api``);
* :mod:`.listing` — ``ls`` (a pool, or what a catalog or server holds);
* :mod:`.render` — ``render`` (droplets drawn on their images: files or a contact sheet);
* :mod:`.admin` — ``serve``, ``keys``, ``database``, ``pool``;
* :mod:`.demo` — ``demo``;
* :mod:`.options` — the options and argument types every command shares.

Why one error handler: commands raise (:class:`~headwater.errors.HeadwaterError`, click's usage errors),
they never print an error and exit themselves, so every failure reads the same — one ``error: …`` line on
stderr — and exits with the code its class carries (see :data:`EXIT_CODES`).

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(main, ["verify", "/no/such/pool"])
    >>> result.exit_code, result.output.strip()
    (2, 'error: no pool at /no/such/pool: no such folder')
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from ..errors import UNAVAILABLE, USAGE, HeadwaterError
from . import admin, datasets, demo, listing, pools, render
from .options import HeadwaterCommand, parse_ids, parse_size

__all__ = ["main", "HeadwaterGroup", "HeadwaterCommand", "EXIT_CODES", "parse_ids", "parse_size"]

EXIT_CODES = {
    0: "done",
    1: "done, but some items failed (the report above names each)",
    USAGE: "bad usage or input: a wrong argument, a name that does not exist, damaged data",
    UNAVAILABLE: "nothing could be done: a store or server out of reach, credentials refused, the catalog busy, "
                 "a full disk",
    130: "interrupted (Ctrl-C)",
}
"""What each exit status of ``headwater`` means (shown in ``headwater --help``)."""

_EPILOG = "\b\nExit status:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class HeadwaterGroup(click.Group):
    """The ``headwater`` group: its commands and subgroups share :class:`HeadwaterCommand` and one error
    handler (:meth:`main`)."""

    command_class = HeadwaterCommand

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as err:
            if err.ctx is not None:
                click.echo(err.ctx.get_usage(), err=True)
                click.echo(f"Try '{err.ctx.command_path} --help' for help.", err=True)
            _fail(err.format_message(), err.exit_code)
        except click.ClickException as err:
            _fail(err.format_message(), err.exit_code)
        except HeadwaterError as err:
            _fail(str(err), err.exit_code)
        except click.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort)
            _fail("interrupted", 130)
        sys.exit(code if isinstance(code, int) else 0)


HeadwaterGroup.group_class = HeadwaterGroup


@click.group(cls=HeadwaterGroup, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="headwater")
def main() -> None:
    """headwater: indexed tar pools and versioned annotation datasets.

    \b
    Pools:     pack, index, verify, ls POOL, download, extract, upload
    Datasets:  publish, ls [DB[/NS/NAME[:TAG]]], tag, stream, render
    Server:    serve, keys, database, pool
    Try:       headwater demo
    """


for _module in (pools, datasets, listing, render, admin, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)
