"""The two statements that read split contents, shared by the catalog and by the tests that EXPLAIN them.

Why keyset pages: ``OFFSET k`` makes the database walk k rows before the first one it returns; a
predicate on the primary key, ``ordinal >= :start``, is one B-tree descent whatever ``start`` is, so
chunk k of n begins as fast as chunk 0 and each next page continues from the last ordinal seen.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Dialect, Select, bindparam, select

from .models import droplets

__all__ = ["range_page", "ordinals_select", "driver_sql"]


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
