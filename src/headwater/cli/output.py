"""How commands print what they did: times, split counts, a published dataset, NDJSON to stdout.

Example:
    >>> splits_text({"validation": 3, "train": 9})
    'train=9 validation=3'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

import click

from ..droplet.ndjson import count_lines, take_lines

__all__ = ["when", "splits_text", "echo_published", "write_stdout"]


def when(dt: datetime | None) -> str:
    """``2024-03-01 12:00:00 UTC`` (``-`` for none)."""
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt is not None else "-"


def splits_text(splits: Mapping[str, int]) -> str:
    """``train=9 validation=3`` (sorted), or ``(no splits)``."""
    return " ".join(f"{k}={v}" for k, v in sorted(splits.items())) or "(no splits)"


def echo_published(what: str, splits: Mapping[str, int], tags: Iterable[str], pools: Mapping[str, str]) -> None:
    """The summary of a publish, local or remote."""
    click.echo(f"published dataset {what}")
    click.echo(f"  splits: {splits_text(splits)}")
    click.echo(f"  tags:   {', '.join(tags) or '(none)'}")
    for pool, url in sorted(pools.items()):
        click.echo(f"  pool:   {pool} = {url}")


def write_stdout(blocks: Iterator[bytes], limit: int | None) -> int:
    """Write NDJSON blocks to stdout, stopping after ``limit`` lines; returns lines written.

    A closed pipe (``headwater stream … | head``) ends the command quietly: the rest of the output
    is pointed at /dev/null so Python's exit-time flush does not raise again.
    """
    out = sys.stdout.buffer
    written = 0
    try:
        for block in take_lines(blocks, limit):
            out.write(block)
            written += count_lines(block)
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
