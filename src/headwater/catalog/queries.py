"""The statements that read split contents, shared by the catalog and by the tests that EXPLAIN them.

Why keyset pages: ``OFFSET k`` makes the database walk k rows before the first one it returns; a
predicate on the primary key, ``ordinal >= :start``, is one B-tree descent whatever ``start`` is, so
chunk k of n begins as fast as chunk 0 and each next page continues from the last ordinal seen.

Why a page can come back as one value (:func:`block_sql`): a stream wants the page as one NDJSON block,
and a row per droplet costs Python a tuple and a ``bytes`` per row plus the join — and, worse, the
sqlite3 module releases and re-takes the GIL around every row, so a reader thread beside a busy decoder
waits for the GIL once per row. Concatenated by SQLite (``group_concat``), the page is one row: one
call, the GIL released for all of it.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Dialect, Select, bindparam, select

from .models import droplets

__all__ = ["range_page", "ordinals_select", "driver_sql", "block_sql"]


def range_page() -> Select[int, bytes]:
    """``(ordinal, data)`` rows of split ``:split_id`` with ``:start <= ordinal < :stop``, in order,
    at most ``:limit`` of them."""
    return (
        select(droplets.c.ordinal, droplets.c.data)
        .where(droplets.c.split_id == bindparam("split_id"))
        .where(droplets.c.ordinal >= bindparam("start"))
        .where(droplets.c.ordinal < bindparam("stop"))
        .order_by(droplets.c.ordinal)
        .limit(bindparam("limit"))
    )


def ordinals_select() -> Select[int, bytes]:
    """``(ordinal, data)`` rows of split ``:split_id`` whose ordinal is in the expanding ``:ordinals``."""
    return select(droplets.c.ordinal, droplets.c.data).where(
        droplets.c.split_id == bindparam("split_id"),
        droplets.c.ordinal.in_(bindparam("ordinals", expanding=True)),
    )


@functools.cache
def _compiled(dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
    compiled = range_page().compile(dialect=dialect)
    order = compiled.positiontup
    defaults = {k: v for k, v in compiled.params.items() if v is not None}  # e.g. SQLite's OFFSET 0
    return compiled.string, (tuple(order) if order is not None else None), defaults


def driver_sql(dialect: Dialect, params: dict[str, Any]) -> tuple[str, Any]:
    """:func:`range_page` as driver SQL text plus parameters in the driver's paramstyle.

    Why: a stream page is thousands of rows, and building SQLAlchemy ``Row`` objects for them costs
    more than the database read itself; the catalog executes this text on the raw DB-API cursor.
    """
    sql, order, defaults = _compiled(dialect)
    if defaults:
        params = {**defaults, **params}
    return sql, (tuple(params[name] for name in order) if order is not None else params)


_BLOCK_SQL = {
    # group_concat's order is the order its input arrives in: the ordered subquery (SQLite does not flatten
    # an ORDER BY subquery into an aggregate). The documentation calls the order arbitrary, so the ordinals
    # come back too and the caller checks them. `data || char(10)` is TEXT over the same bytes; CAST gives
    # them back as a BLOB without a conversion.
    "sqlite": ("SELECT count(*), group_concat(ordinal), CAST(group_concat(data || char(10), '') AS BLOB) "
               "FROM (SELECT ordinal, data FROM droplets WHERE split_id = ? AND ordinal >= ? AND ordinal < ? "
               "ORDER BY ordinal)"),
    # Not PostgreSQL: psycopg converts a page of rows in one call without giving up the GIL per row, while
    # string_agg(... ORDER BY ordinal) makes the server sort the page again inside the aggregate (on disk
    # beyond work_mem): measured slower end to end than the rows.
}


def block_sql(dialect: Dialect) -> str | None:
    """Driver SQL reading droplets ``start <= ordinal < stop`` of a split (parameters: split id, start, stop,
    positional) as one row ``(count, ordinals, block)``: ``block`` is the droplets, each followed by ``\\n``;
    ``ordinals`` is a comma-separated text of their ordinals in block order, for the caller to check. None for
    a dialect where reading the rows is faster (PostgreSQL)."""
    return _BLOCK_SQL.get(dialect.name)
