"""Split storage: chunk k of n starts with a primary-key seek (checked in the query plans of both
backends and by counting SQLite VM steps), and contents survive many batches byte for byte."""

from __future__ import annotations

import sqlite3

from sqlalchemy import select

from headwater.catalog import Catalog
from headwater.catalog.models import datasets, splits
from headwater.catalog.queries import driver_sql

N = 20_000


def _publish(cat: Catalog, n: int = N) -> tuple[str, int]:
    cat.create_database("main")
    ds = cat.publish("main", "acme", "cats", template={}, splits={"train": [b"%08d" % i for i in range(n)]})
    with cat.engine.connect() as conn:
        split_id = conn.execute(select(splits.c.id).join(datasets, datasets.c.id == splits.c.dataset_id)
                                .where(datasets.c.uid == ds.uid, splits.c.name == "train")).scalar_one()
    return ds.uid, split_id


def _chunk_start(k: int, n: int, total: int = N) -> int:
    return total * k // n


def test_sqlite_chunk_start_is_a_primary_key_search(tmp_path: object) -> None:
    path = f"{tmp_path}/catalog.sqlite"
    cat = Catalog(path)
    _uid, split_id = _publish(cat)
    conn = sqlite3.connect(path)
    pk_index = [row[1] for row in conn.execute("PRAGMA index_list(droplets)") if row[3] == "pk"]
    assert pk_index, "droplets has a primary-key index"
    for k in (0, 5, 9):
        sql, params = driver_sql(cat.engine.dialect, {"split_id": split_id, "start": _chunk_start(k, 10),
                                                      "stop": _chunk_start(k + 1, 10), "limit": 2048})
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert plan.startswith("SEARCH droplets USING") and pk_index[0] in plan, plan
        assert "ordinal>?" in plan and "SCAN" not in plan and "TEMP B-TREE" not in plan, plan
    conn.close()
    cat.close()


def test_sqlite_last_chunk_costs_what_the_first_costs(tmp_path: object) -> None:
    """Count SQLite virtual-machine steps (deterministic, unlike time) to fetch the first page of a chunk:
    the keyset query costs the same at ordinal 0 and at ordinal 19,000; OFFSET would cost ~k."""
    path = f"{tmp_path}/catalog.sqlite"
    cat = Catalog(path)
    _uid, split_id = _publish(cat)
    conn = sqlite3.connect(path)

    def steps(sql: str, params: tuple[object, ...]) -> int:
        count = [0]

        def tick() -> int:
            count[0] += 1
            return 0

        conn.set_progress_handler(tick, 10)
        rows = conn.execute(sql, params).fetchall()
        conn.set_progress_handler(None, 10)
        assert len(rows) == 100
        return count[0]

    cost = {}
    for k in (0, 19):
        start = _chunk_start(k, 20)
        cost[k] = steps(*driver_sql(cat.engine.dialect, {"split_id": split_id, "start": start, "stop": N,
                                                          "limit": 100}))
    offset_sql = "SELECT ordinal, data FROM droplets WHERE split_id = ? ORDER BY ordinal LIMIT 100 OFFSET ?"
    offset_cost = steps(offset_sql, (split_id, _chunk_start(19, 20)))
    assert cost[19] <= cost[0] * 1.5 + 5
    assert offset_cost > 20 * cost[19]  # the control: the same page by OFFSET walks the skipped rows
    conn.close()
    cat.close()


def test_postgresql_chunk_start_is_an_index_scan(postgres_catalog_url: str) -> None:
    cat = Catalog(postgres_catalog_url)
    _uid, split_id = _publish(cat)
    with cat.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE droplets")
        for k in (0, 9):
            sql, params = driver_sql(conn.dialect, {"split_id": split_id, "start": _chunk_start(k, 10),
                                                    "stop": _chunk_start(k + 1, 10), "limit": 2048})
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.close()
            assert "Index Scan using pk_droplets on droplets" in plan or "Index Only Scan" in plan, plan
            assert "Seq Scan" not in plan and "Sort" not in plan and "Rows Removed by Filter" not in plan, plan
    cat.close()


def test_batches_keep_every_byte(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    cat.create_database("main")
    data = [bytes([11 + i % 240]) * (1 + i % 700) + b"\x00\xff\\\t\r" for i in range(3001)]
    for batch_size in (1, 999, 5000):
        with cat.publisher("main", "acme", "cats", template={}, batch_size=batch_size) as pub:
            assert pub.add_many("train", iter(data)) == len(data)
            pub.add("other", b"x")
        uid = pub.record.uid
        assert cat.split_count(uid, "train") == len(data)
        assert list(cat.read_range(uid, "train", batch_size=1000)) == data
        assert b"".join(cat.read_range_blocks(uid, "train", batch_size=1000)) == b"".join(d + b"\n" for d in data)
        assert cat.read_ordinals(uid, "train", [3000, 0, 1500]) == [data[3000], data[0], data[1500]]
        assert list(cat.read_range(uid, "other")) == [b"x"]
    cat.close()
